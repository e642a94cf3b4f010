// The peer store's file format (p2p/peer_store.h): contacts round-trip,
// unreadable lines are skipped and counted, host names are never resolved,
// and a missing file is an empty store.
#include "p2p/peer_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "support/support.h"

namespace bzzz::p2p::internal {
namespace {

const std::string kId1 = "0123456789abcdef0123456789abcdef01234567";
const std::string kId2 = "fedcba9876543210fedcba9876543210fedcba98";

TEST(PeerStoreTest, ContactsRoundTripAndBadLinesAreCounted) {
  const std::string text = kId1 + " 127.0.0.1 4222\n" + kId2 + " ::1 4223\n";
  int bad = -1;
  auto nodes = ParsePeerStore(text, &bad);
  EXPECT_EQ(bad, 0);
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].id.toString(), kId1);
  EXPECT_EQ(nodes[0].ss.ss_family, AF_INET);
  EXPECT_EQ(nodes[1].ss.ss_family, AF_INET6);
  EXPECT_EQ(FormatPeerStore(nodes), text);

  const std::string mixed = text + "garbage\n" + kId1 + " localhost 4222\n" + kId1 + " 127.0.0.1 0\n" + kId1 +
                            " 127.0.0.1 70000\n" + kId1 + " 127.0.0.1 4222 extra\n" + "ABCDEF" + kId1.substr(6) +
                            " 127.0.0.1 1\n\n";
  nodes = ParsePeerStore(mixed, &bad);
  EXPECT_EQ(nodes.size(), 2u);
  EXPECT_EQ(bad, 7);  // garbage, a host name, port 0, port 70000, extra field, upper-case id, the empty line
}

TEST(PeerStoreTest, SavedFileIsPrivateAndLoadsBack) {
  testing::TempDir dir;
  const std::string path = dir.File("peers");
  EXPECT_TRUE(LoadPeerStore(path).empty());  // missing: empty
  int bad = 0;
  const auto nodes = ParsePeerStore(kId1 + " 10.0.0.7 5000\n", &bad);
  ASSERT_TRUE(SavePeerStore(path, nodes).ok());
  EXPECT_EQ((std::filesystem::status(path).permissions() & std::filesystem::perms::all),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto loaded = LoadPeerStore(path);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(FormatPeerStore(loaded), kId1 + " 10.0.0.7 5000\n");
}

}  // namespace
}  // namespace bzzz::p2p::internal
