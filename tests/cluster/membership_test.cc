// Credentials, join tokens and revocations: what the admission authority
// signs, what every node checks, and what a forger cannot get past.
#include <gtest/gtest.h>

#include <fstream>

#include "cluster/credential.h"
#include "cluster/membership.h"
#include "support/support.h"

namespace bzzz::cluster {
namespace {

using namespace std::chrono_literals;

Key KeyOf(const ClusterAuthority& ca) { return ca.public_key(); }

Key NodeKey(std::uint8_t b) {
  // Any 32 bytes serve as a node key for the membership checks.
  Key k{};
  k.fill(b);
  return k;
}

TEST(CredentialTest, RoundTripsAndRefusesForgeries) {
  const ClusterAuthority ca = ClusterAuthority::Generate();
  const ClusterAuthority other = ClusterAuthority::Generate();
  Credential c;
  c.node_key = NodeKey(7);
  c.role = NodeRole::kAdminCapable;
  c.serial = 42;
  c.issued_at_ms = 1000;
  c.expires_at_ms = 2000;
  c.name = "n1";
  const std::string encoded = EncodeCredential(c, ca);
  auto back = DecodeCredential(encoded, KeyOf(ca));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->node_key, c.node_key);
  EXPECT_EQ(back->role, NodeRole::kAdminCapable);
  EXPECT_EQ(back->serial, 42u);
  EXPECT_EQ(back->name, "n1");
  // Another cluster's key, a flipped byte anywhere, truncation: refused.
  EXPECT_FALSE(DecodeCredential(encoded, KeyOf(other)).ok());
  EXPECT_FALSE(DecodeCredential(EncodeCredential(c, other), KeyOf(ca)).ok());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    std::string bad = encoded;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(DecodeCredential(bad, KeyOf(ca)).ok()) << "byte " << i;
  }
  EXPECT_FALSE(DecodeCredential(encoded.substr(0, encoded.size() - 1), KeyOf(ca)).ok());
  EXPECT_FALSE(DecodeCredential("", KeyOf(ca)).ok());
}

TEST(JoinTokenTest, RoundTripsAndRefusesTampering) {
  const ClusterAuthority ca = ClusterAuthority::Generate();
  JoinToken t;
  t.id = "0123456789abcdef";
  t.role = NodeRole::kBootstrap;
  t.expires_at_ms = 123456789;
  t.uses = 3;
  const std::string text = EncodeJoinToken(t, ca);
  ASSERT_TRUE(text.starts_with("bzzz-join-1."));
  auto back = DecodeJoinToken(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, t.id);
  EXPECT_EQ(back->role, NodeRole::kBootstrap);
  EXPECT_EQ(back->uses, 3u);
  EXPECT_EQ(back->cluster_key, KeyOf(ca));
  // Changing one character of the payload breaks the signature.
  for (std::size_t i = std::string("bzzz-join-1.").size(); i < text.size(); i += 7) {
    std::string bad = text;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(DecodeJoinToken(bad).ok()) << "char " << i;
  }
  EXPECT_FALSE(DecodeJoinToken("bzzz-join-1.").ok());
  EXPECT_FALSE(DecodeJoinToken("not a token").ok());
  EXPECT_FALSE(DecodeJoinToken(std::string(1000, 'x')).ok());
}

TEST(MembershipTest, FoundAdmitAndCheck) {
  testing::TempDir dir;
  auto founder = Membership::Open(dir.File("a")).value();
  ASSERT_TRUE(founder->Found(NodeKey(1), NodeRole::kAdminCapable, "a", 1h).ok());
  EXPECT_TRUE(founder->IsAuthority());
  EXPECT_TRUE(founder->Founder());
  EXPECT_FALSE(founder->Found(NodeKey(1), NodeRole::kAdminCapable, "a", 1h).ok());  // once
  const std::int64_t now = NowMs();

  // A one-time token admits one node; asking again for the same node is
  // answered the same way; a second node is refused.
  const std::string token = founder->CreateToken(NodeRole::kWorker, 1h, 1).value();
  auto first = founder->AdmitWithToken(token, NodeKey(2), "b", 1h, now);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->repeated);
  auto again = founder->AdmitWithToken(token, NodeKey(2), "b", 1h, now);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->repeated);
  auto reused = founder->AdmitWithToken(token, NodeKey(3), "c", 1h, now);
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(reused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(reused.status().message().find("used 1 time"), std::string::npos) << reused.status().message();

  // Expired and foreign tokens.
  const std::string short_lived = founder->CreateToken(NodeRole::kWorker, 1ms, 5).value();
  EXPECT_FALSE(founder->AdmitWithToken(short_lived, NodeKey(4), "d", 1h, now + 1000).ok());
  auto stranger = Membership::Open("").value();
  ASSERT_TRUE(stranger->Found(NodeKey(9), NodeRole::kAdminCapable, "x", 1h).ok());
  const std::string foreign = stranger->CreateToken(NodeRole::kAdminCapable, 1h, 5).value();
  EXPECT_EQ(founder->AdmitWithToken(foreign, NodeKey(5), "e", 1h, now).status().code(),
            StatusCode::kPermissionDenied);

  // The joiner stores what it was given; every node checks every frame's credential.
  auto joiner = Membership::Open(dir.File("b")).value();
  ASSERT_TRUE(joiner->Adopt(founder->cluster_key()).ok());
  EXPECT_FALSE(joiner->Admit(first->credential, "", NodeKey(3)).ok());  // someone else's credential
  ASSERT_TRUE(joiner->Admit(first->credential, "", NodeKey(2)).ok());
  EXPECT_TRUE(joiner->Check(first->credential, NodeKey(2), now).ok());
  EXPECT_EQ(joiner->Check(first->credential, NodeKey(3), now).refused, "key_mismatch");
  EXPECT_EQ(joiner->Check("", NodeKey(2), now).refused, "no_credential");
  EXPECT_EQ(joiner->Check(first->credential, NodeKey(2), now + 2 * 3600 * 1000).refused, "expired");
  EXPECT_EQ(joiner->Check(stranger->credential(), NodeKey(9), now).refused, "foreign_cluster");
  EXPECT_EQ(joiner->Check("garbage-credential-bytes", NodeKey(2), now).refused, "bad_credential");

  // Revocation: only the cluster key signs one; every node applies it.
  EXPECT_FALSE(joiner->Revoke(NodeIdOfKey(NodeKey(2)), "no key", now).ok());  // not an authority
  const std::string revocation = founder->Revoke(NodeIdOfKey(NodeKey(2)), "compromised", now).value();
  EXPECT_FALSE(joiner->ApplyRevocation(stranger->Revoke(NodeIdOfKey(NodeKey(2)), "forged", now).value()).ok());
  EXPECT_TRUE(joiner->ApplyRevocation(revocation).value());
  EXPECT_FALSE(joiner->ApplyRevocation(revocation).value());  // already known
  EXPECT_EQ(joiner->Check(first->credential, NodeKey(2), now).refused, "revoked");
  // A revoked node is not admitted again, whatever token it brings.
  const std::string fresh = founder->CreateToken(NodeRole::kWorker, 1h, 1).value();
  EXPECT_FALSE(founder->AdmitWithToken(fresh, NodeKey(2), "b", 1h, now).ok());

  // Everything survives a restart; a damaged file is an error, not a reset.
  auto reopened = Membership::Open(dir.File("b")).value();
  EXPECT_TRUE(reopened->Admitted());
  EXPECT_TRUE(reopened->IsRevoked(NodeIdOfKey(NodeKey(2))));
  auto founder_again = Membership::Open(dir.File("a")).value();
  EXPECT_TRUE(founder_again->IsAuthority());
  EXPECT_FALSE(founder_again->AdmitWithToken(token, NodeKey(6), "f", 1h, now).ok());  // uses are remembered
  {
    std::ofstream out(dir.File("b") + "/membership.json", std::ios::trunc);
    out << "{not json";
  }
  EXPECT_FALSE(Membership::Open(dir.File("b")).ok());
}

TEST(MembershipTest, RenewalKeepsRoleAndRefusesTheRevoked) {
  auto ca = Membership::Open("").value();
  ASSERT_TRUE(ca->Found(NodeKey(1), NodeRole::kAdminCapable, "a", 1h).ok());
  const std::int64_t now = NowMs();
  auto admitted = ca->AdmitWithToken(ca->CreateToken(NodeRole::kWorker, 1h, 1).value(), NodeKey(2), "b", 1h, now);
  ASSERT_TRUE(admitted.ok());
  auto current = DecodeCredential(admitted->credential, ca->cluster_key()).value();
  auto renewed = ca->Renew(current, 2h, now + 1000);
  ASSERT_TRUE(renewed.ok());
  auto r = DecodeCredential(*renewed, ca->cluster_key()).value();
  EXPECT_EQ(r.role, NodeRole::kWorker);
  EXPECT_GT(r.expires_at_ms, current.expires_at_ms);
  EXPECT_FALSE(ca->Renew(current, 2h, current.expires_at_ms + 1).ok());  // expired: join again
  ASSERT_TRUE(ca->Revoke(NodeIdOfKey(NodeKey(2)), "", now).ok());
  EXPECT_FALSE(ca->Renew(current, 2h, now).ok());
}

TEST(ClusterIdTest, NetworkIdIsNeverPublicAndDiffersPerCluster) {
  const auto a = ClusterAuthority::Generate(), b = ClusterAuthority::Generate();
  EXPECT_NE(NetworkIdOf(a.public_key()), 0u);
  EXPECT_NE(NetworkIdOf(a.public_key()), NetworkIdOf(b.public_key()));
  EXPECT_EQ(ClusterIdOf(a.public_key()).size(), 20u);
}

}  // namespace
}  // namespace bzzz::cluster
