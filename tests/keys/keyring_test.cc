// Role keys and envelopes: sealing and opening per role, what a stranger,
// a reader without the role and a node without the key get, grants that
// cannot plant or swap a key, a ring only the cluster key signs, rotation
// with re-wrap and min_decryption_version, and persistence (0600).
#include "keys/keyring.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <random>

#include "cluster/credential.h"
#include "keys/envelope.h"
#include "p2p/identity.h"
#include "support/support.h"

namespace bzzz::keys {
namespace {

const std::string kKey = "ucxl://alice:developer@bzzz:t1/notes.md";
const std::string kSecret = "the launch code is PLANTED-MARKER-7731";

// A cluster authority and the signer of its rings.
struct Cluster {
  cluster::ClusterAuthority ca = cluster::ClusterAuthority::Generate();
  ClusterSigner signer() const {
    return [this](std::string_view m) -> Result<std::array<std::uint8_t, 64>> { return ca.Sign(m); };
  }
};

std::shared_ptr<Keyring> MustOpen(const std::string& dir, const p2p::NodeIdentity& id, const Cluster& c) {
  auto k = Keyring::Open(dir, id, c.ca.public_key());
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return k.ok() ? *k : nullptr;
}

auto Roles(std::vector<std::string> roles) {
  return [roles](const std::string& r) { return std::find(roles.begin(), roles.end(), r) != roles.end(); };
}

TEST(Envelope, SealsForEachRecipientAndBindsTheAddress) {
  PublicKey pa{}, pb{};
  SecretKey sa{}, sb{};
  NewKeyPair(pa, sa);
  NewKeyPair(pb, sb);
  auto sealed = Seal(kKey, kSecret, {{WrapKind::kRole, "developer", 1, pa}, {WrapKind::kRole, "master", 1, pb}});
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("PLANTED-MARKER"), std::string::npos);
  EXPECT_TRUE(LooksSealed(*sealed));
  auto e = ParseEnvelope(*sealed);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->wraps.size(), 2u);
  EXPECT_EQ(e->wraps[0].name, "developer");
  EXPECT_EQ(e->wraps[1].version, 1u);
  EXPECT_EQ(EncodeEnvelope(*e), *sealed);
  for (const auto& [pk, sk, w] : {std::tuple{pa, sa, 0}, std::tuple{pb, sb, 1}}) {
    auto dk = UnwrapDataKey(e->wraps[w], pk, sk);
    ASSERT_TRUE(dk);
    EXPECT_EQ(*OpenPayload(kKey, *e, *dk), kSecret);
    // Moved to another address, it does not open.
    EXPECT_EQ(OpenPayload("ucxl://mallory:developer@bzzz:t1/notes.md", *e, *dk).status().code(),
              StatusCode::kUnavailable);
  }
  // The other key does not open a wrap not sealed to it.
  EXPECT_FALSE(UnwrapDataKey(e->wraps[0], pb, sb));
  // A flipped ciphertext byte fails to authenticate.
  Envelope tampered = *e;
  tampered.ciphertext[3] ^= 1;
  EXPECT_FALSE(OpenPayload(kKey, tampered, *UnwrapDataKey(e->wraps[0], pa, sa)).ok());
}

TEST(Envelope, MalformedBytesAreRefusedNeverRead) {
  EXPECT_FALSE(ParseEnvelope("").ok());
  EXPECT_FALSE(ParseEnvelope("BZE1").ok());
  EXPECT_FALSE(ParseEnvelope(std::string("BZE1\x00", 5)).ok());
  PublicKey pk{};
  SecretKey sk{};
  NewKeyPair(pk, sk);
  const std::string good = *Seal(kKey, "x", {{WrapKind::kRole, "r", 1, pk}});
  // Every truncation is refused (or, past the header, fails to authenticate).
  for (std::size_t n = 0; n < good.size(); ++n) {
    auto e = ParseEnvelope(good.substr(0, n));
    if (e.ok()) {
      auto dk = UnwrapDataKey(e->wraps[0], pk, sk);
      EXPECT_FALSE(dk && OpenPayload(kKey, *e, *dk).ok()) << n;
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk = "BZE1";
    const std::size_t n = rng() % 300;
    for (std::size_t j = 0; j < n; ++j) junk.push_back(static_cast<char>(rng()));
    (void)ParseEnvelope(junk);  // never crashes (ASan/UBSan builds check)
  }
}

TEST(Keyring, ReaderRoleAndNodeKeyBothNeeded) {
  Cluster c;
  auto admin_id = p2p::NodeIdentity::Generate();
  auto worker_id = p2p::NodeIdentity::Generate();
  auto admin = MustOpen("", admin_id, c);
  auto worker = MustOpen("", worker_id, c);
  ASSERT_TRUE(*admin->EnsureRoles({"developer", "master", "qa"}, 1, c.signer()));
  ASSERT_TRUE(*worker->Adopt(admin->signed_ring()));

  // A worker seals with public keys only.
  auto sealed = worker->Seal(kKey, kSecret, {"developer", "master"});
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  EXPECT_EQ(Keyring::ReadersOf(*sealed), (std::vector<std::string>{"developer", "master"}));

  // The admin holds every role: a developer reads, a qa reader does not.
  auto read = admin->Open(kKey, *sealed, Roles({"developer"}));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->plaintext, kSecret);
  EXPECT_EQ(read->role, "developer");
  auto qa = admin->Open(kKey, *sealed, Roles({"qa"}));
  EXPECT_EQ(qa.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(qa.status().message().find("none of the roles"), std::string::npos) << qa.status().message();

  // The worker holds nothing yet: it stores and serves, but cannot read.
  auto blind = worker->Open(kKey, *sealed, Roles({"developer"}));
  EXPECT_EQ(blind.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(blind.status().message().find("holds no key"), std::string::npos) << blind.status().message();

  // Granted developer (not master): it reads for a developer only.
  ASSERT_TRUE(admin->SetHolder("developer", worker->node_id(), true, 1, c.signer()).ok());
  ASSERT_TRUE(*worker->Adopt(admin->signed_ring()));
  auto bundle = admin->GrantBundleFor(worker->node_id(), worker_id.public_key(), /*authority=*/false);
  ASSERT_TRUE(bundle.ok());
  EXPECT_EQ(bundle->find("developer"), std::string::npos);  // sealed: no role names in clear
  EXPECT_EQ(*worker->AcceptBundle(*bundle), 1);
  EXPECT_EQ(*worker->AcceptBundle(*bundle), 0);  // idempotent
  EXPECT_EQ(worker->Open(kKey, *sealed, Roles({"developer"}))->plaintext, kSecret);
  EXPECT_EQ(worker->Open(kKey, *sealed, Roles({"master"})).status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(worker->Holds("developer", 1));
  EXPECT_FALSE(worker->Holds("master", 1));
}

TEST(Keyring, GrantsCannotPlantOrSwapKeysAndRingsNeedTheClusterKey) {
  Cluster c, other;
  auto admin_id = p2p::NodeIdentity::Generate();
  auto worker_id = p2p::NodeIdentity::Generate();
  auto admin = MustOpen("", admin_id, c);
  auto worker = MustOpen("", worker_id, c);
  ASSERT_TRUE(*admin->EnsureRoles({"developer"}, 1, c.signer()));
  ASSERT_TRUE(*worker->Adopt(admin->signed_ring()));

  // A bundle for another node does not open here.
  auto third = p2p::NodeIdentity::Generate();
  auto for_third = admin->GrantBundleFor(third.node_id(), third.public_key(), true);
  EXPECT_FALSE(worker->AcceptBundle(*for_third).ok());

  // A member that seals its own "developer v1" secret to the worker plants nothing.
  auto impostor = MustOpen("", third, other);
  ASSERT_TRUE(*impostor->EnsureRoles({"developer"}, 9, other.signer()));
  auto forged = impostor->GrantBundleFor(worker->node_id(), worker_id.public_key(), true);
  ASSERT_TRUE(forged.ok());
  EXPECT_EQ(*worker->AcceptBundle(*forged), 0);
  EXPECT_FALSE(worker->Holds("developer", 1));

  // A ring signed by another cluster key, or altered, is refused.
  EXPECT_FALSE(worker->Adopt(impostor->signed_ring()).ok());
  std::string altered = admin->signed_ring();
  altered[altered.find("\\\"revision\\\":") + 13] = '7';
  EXPECT_FALSE(worker->Adopt(altered).ok());
  // An older or equal revision is ignored.
  EXPECT_FALSE(*worker->Adopt(admin->signed_ring()));
  // A newer ring that changes an existing version's key is refused.
  Ring swapped = admin->ring();
  swapped.revision += 5;
  swapped.roles["developer"].versions[0].public_key[0] ^= 1;
  auto signed_swap = SignRing(swapped, c.signer());
  auto adopted = worker->Adopt(*signed_swap);
  EXPECT_FALSE(adopted.ok());
}

TEST(Keyring, RotationKeepsOldVersionsReadableRewrapMovesThemAndRetiringNeedsRewrap) {
  Cluster c;
  auto admin_id = p2p::NodeIdentity::Generate();
  auto writer_id = p2p::NodeIdentity::Generate();
  auto admin = MustOpen("", admin_id, c);
  auto writer = MustOpen("", writer_id, c);
  ASSERT_TRUE(*admin->EnsureRoles({"developer", "master"}, 1, c.signer()));
  ASSERT_TRUE(*writer->Adopt(admin->signed_ring()));
  const std::string v1 = *writer->Seal(kKey, "old", {"developer", "master"});

  auto rotated = admin->Rotate("developer", 1, c.signer());
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->version, 2u);
  ASSERT_TRUE(*writer->Adopt(admin->signed_ring()));
  const std::string v2 = *writer->Seal(kKey, "new", {"developer", "master"});
  auto header = ParseEnvelope(v2);
  EXPECT_EQ(header->wraps[0].version, 2u);  // new writes use the new version at once
  // Old content stays readable.
  EXPECT_EQ(admin->Open(kKey, v1, Roles({"developer"}))->version, 1u);
  EXPECT_EQ(admin->Open(kKey, v2, Roles({"developer"}))->version, 2u);

  // Only the writer re-wraps (through its own wrap), without the role key.
  EXPECT_EQ(admin->Rewrap(kKey, v1, {}).status().code(), StatusCode::kFailedPrecondition);
  auto moved = writer->Rewrap(kKey, v1, {});
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  ASSERT_TRUE(moved->has_value());
  EXPECT_EQ(ParseEnvelope(**moved)->wraps[0].version, 2u);
  EXPECT_EQ(ParseEnvelope(**moved)->ciphertext, ParseEnvelope(v1)->ciphertext);  // content untouched
  EXPECT_FALSE(writer->Rewrap(kKey, **moved, {})->has_value());                 // already current

  // Retire v1: what was re-wrapped reads, what was not is refused as retired.
  ASSERT_TRUE(admin->SetMinDecryptionVersion("developer", 2, 1, c.signer()).ok());
  EXPECT_EQ(admin->Open(kKey, **moved, Roles({"developer"}))->plaintext, "old");
  auto stale = admin->Open(kKey, v1, Roles({"developer"}));
  EXPECT_EQ(stale.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(stale.status().message().find("retired"), std::string::npos) << stale.status().message();
  // master v1 was not retired: a master still reads it.
  EXPECT_TRUE(admin->Open(kKey, v1, Roles({"master"})).ok());
  // Out of range, or back down: refused.
  EXPECT_FALSE(admin->SetMinDecryptionVersion("developer", 3, 1, c.signer()).ok());
  EXPECT_FALSE(admin->SetMinDecryptionVersion("developer", 1, 1, c.signer()).ok());

  // Clear content from before encryption is sealed by the re-wrap.
  auto sealed_now = writer->Rewrap(kKey, "legacy text", {"developer"});
  ASSERT_TRUE(sealed_now.ok() && sealed_now->has_value());
  EXPECT_EQ(admin->Open(kKey, **sealed_now, Roles({"developer"}))->plaintext, "legacy text");
}

TEST(Keyring, PersistsRingAndSecretsWithMode0600) {
  testing::TempDir dir;
  Cluster c;
  auto id = p2p::NodeIdentity::Generate();
  std::string sealed;
  {
    auto k = MustOpen(dir.File("keys"), id, c);
    ASSERT_TRUE(*k->EnsureRoles({"developer"}, 3, c.signer()));
    ASSERT_TRUE(k->Rotate("developer", 3, c.signer()).ok());
    sealed = *k->Seal(kKey, kSecret, {"developer"});
  }
  struct stat st {};
  ASSERT_EQ(stat(dir.File("keys/role_keys.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string on_disk = testing::ReadFile(dir.File("keys/role_keys.json"));
  EXPECT_EQ(on_disk.find("PLANTED-MARKER"), std::string::npos);
  auto reopened = MustOpen(dir.File("keys"), id, c);
  EXPECT_EQ(reopened->ring().revision, 2u);
  EXPECT_TRUE(reopened->Holds("developer", 1));
  EXPECT_TRUE(reopened->Holds("developer", 2));
  EXPECT_EQ(reopened->Open(kKey, sealed, Roles({"developer"}))->plaintext, kSecret);
  // A ring file signed by another cluster stops the start (never replaced).
  Cluster other;
  EXPECT_FALSE(Keyring::Open(dir.File("keys"), id, other.ca.public_key()).ok());
}

}  // namespace
}  // namespace bzzz::keys
