// UCXL content sealed per role: the store holds no plaintext, readers get
// what their roles allow (403 otherwise), search shows only what a reader
// may read, reader rules, and the re-wrap job after a rotation: resumable
// from its saved cursor, then min_decryption_version.
#include "ucxl/role_codec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cluster/credential.h"
#include "keys/envelope.h"
#include "keys/keyring.h"
#include "p2p/identity.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"
#include "ucxl/context_store.h"
#include "ucxl/rewrap.h"

namespace bzzz::ucxl {
namespace {

const std::string kMarker = "PLANTED-MARKER-4412";

Address A(const std::string& s) {
  auto a = Parse(s);
  EXPECT_TRUE(a.ok()) << s;
  return *a;
}

Reader As(std::vector<std::string> roles) { return Reader{std::move(roles), false}; }

struct Fixture {
  testing::TempDir dir;
  cluster::ClusterAuthority ca = cluster::ClusterAuthority::Generate();
  p2p::NodeIdentity identity = p2p::NodeIdentity::Generate();
  std::shared_ptr<keys::Keyring> keyring;
  std::shared_ptr<ContextRepository> repo;
  std::shared_ptr<RoleCodec> codec;
  std::unique_ptr<ContextStore> store;

  keys::ClusterSigner Signer() {
    return [this](std::string_view m) -> Result<std::array<std::uint8_t, 64>> { return ca.Sign(m); };
  }

  explicit Fixture(std::vector<std::string> rules = {}) {
    keyring = *keys::Keyring::Open(dir.File("keys"), identity, ca.public_key());
    EXPECT_TRUE(keyring->EnsureRoles({"developer", "master", "qa", "decision"}, 1, Signer()).ok());
    storage::sqlite::SqliteOptions o;
    o.path = dir.File("bzzz.db");
    auto storage = storage::sqlite::Open(o);
    EXPECT_TRUE(storage.ok());
    EXPECT_TRUE(storage->store->Migrate().ok());
    repo = storage->contexts;
    auto parsed = ParseReadRules(rules);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    codec = std::make_shared<RoleCodec>(keyring, *parsed, nullptr);
    store = std::make_unique<ContextStore>(repo, nullptr, ContextStoreOptions{}, codec);
  }
};

TEST(RoleCodec, StoredBytesHoldNoPlaintextAndReadersNeedTheRole) {
  Fixture f;
  const Address at = A("ucxl://alice:developer@bzzz:t1/*^/plan.md");
  auto put = f.store->Put(at, {"alice", "developer"}, "text/plain", "the plan: " + kMarker);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->version.size, ("the plan: " + kMarker).size());  // size and hash describe the plaintext

  auto stored = f.repo->ContextContent(ContentKey(at), 1);
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(keys::LooksSealed(*stored));
  EXPECT_EQ(stored->find(kMarker), std::string::npos);
  EXPECT_EQ(keys::Keyring::ReadersOf(*stored), (std::vector<std::string>{"developer", "master"}));
  // Nor in the database file.
  EXPECT_EQ(testing::ReadFile(f.dir.File("bzzz.db")).find(kMarker), std::string::npos);

  EXPECT_EQ(f.store->Get(at, As({"developer"}))->content, "the plan: " + kMarker);
  EXPECT_EQ(f.store->Get(at, As({"master"}))->content, "the plan: " + kMarker);
  auto denied = f.store->Get(at, As({"qa", "user"}));
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(f.store->Navigate(A("ucxl://alice:developer@bzzz:t1/*~1/plan.md"), 0, As({"qa"})).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(f.store->Get(at, Reader::Everyone())->content, "the plan: " + kMarker);

  // Search: only what the reader may read; content matched after opening.
  ASSERT_TRUE(f.store->Put(A("ucxl://bob:qa@bzzz:t1/*^/tests.md"), {"bob", "qa"}, "text/plain", "qa " + kMarker).ok());
  EXPECT_EQ(f.store->Search(kMarker, 10, As({"developer"}))->size(), 1u);
  EXPECT_EQ(f.store->Search(kMarker, 10, As({"qa"}))->size(), 1u);
  EXPECT_EQ(f.store->Search(kMarker, 10, As({"user"}))->size(), 0u);
  EXPECT_EQ(f.store->Search(kMarker, 10, Reader::Everyone())->size(), 2u);
  EXPECT_EQ(f.store->Discover(A("ucxl://any:any@bzzz:any/*^"), 10, As({"qa"}))->size(), 1u);
  // Pagination: after the first key, the second.
  auto page1 = f.store->Search("", 1, Reader::Everyone());
  ASSERT_EQ(page1->size(), 1u);
  auto page2 = f.store->Search("", 1, Reader::Everyone(), page1->back().key);
  ASSERT_EQ(page2->size(), 1u);
  EXPECT_NE(page2->front().key, page1->front().key);
  EXPECT_TRUE(f.store->Search("", 1, Reader::Everyone(), page2->back().key)->empty());
}

TEST(RoleCodec, ReaderRulesDecideWhoReadsWhatFirstMatchWins) {
  Fixture f({"ucxl://any:any@secret:any/*^ = decision", "ucxl://any:developer@bzzz:any/*^/shared = developer, qa"});
  EXPECT_EQ(f.codec->ReadersOf("ucxl://a:developer@secret:t/x"), (std::vector<std::string>{"decision", "master"}));
  EXPECT_EQ(f.codec->ReadersOf("ucxl://a:developer@bzzz:t/shared/y"),
            (std::vector<std::string>{"developer", "qa", "master"}));
  EXPECT_EQ(f.codec->ReadersOf("ucxl://a:developer@bzzz:t/private"), (std::vector<std::string>{"developer", "master"}));
  EXPECT_FALSE(ParseReadRules({"ucxl://any:any@p:any/*^"}).ok());          // no roles
  EXPECT_FALSE(ParseReadRules({"not-an-address = developer"}).ok());
  EXPECT_FALSE(ParseReadRules({"ucxl://any:any@p:any/*^ = dev ops"}).ok());  // not a role name
  // A put to a role without a key is refused, nothing stored.
  auto put = f.store->Put(A("ucxl://a:nokey@bzzz:t/*^/x"), {"a", "nokey"}, "text/plain", "x");
  EXPECT_EQ(put.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(f.repo->ContextStats()->versions, 0u);
}

// Four addresses, each with one version sealed to developer v1; empty when
// a write failed.
std::vector<Address> FourDeveloperVersions(Fixture& f) {
  std::vector<Address> at;
  for (const char* name : {"a", "b", "c", "d"}) {
    at.push_back(A(std::string("ucxl://alice:developer@bzzz:t1/*^/") + name));
    if (!f.store->Put(at.back(), {"alice", "developer"}, "text/plain", std::string("v1 ") + name).ok()) return {};
  }
  return at;
}

TEST(RoleCodec, RewrapAfterRotationResumesFromItsCursorThenOldVersionsRetire) {
  Fixture f;
  const std::vector<Address> at = FourDeveloperVersions(f);
  ASSERT_EQ(at.size(), 4u);
  auto version_of = [&](const Address& a) {
    auto stored = f.repo->ContextContent(ContentKey(a), 1);
    return keys::ParseEnvelope(*stored)->wraps[0].version;
  };
  ASSERT_TRUE(f.keyring->Rotate("developer", 1, f.Signer()).ok());
  const std::uint64_t generation = f.keyring->Generation();
  // A pass interrupted after "b" (what a kill -9 leaves in the state file).
  const std::string state = f.dir.File("rewrap.json");
  {
    std::ofstream out(state);
    out << nlohmann::json{{"target_generation", generation}, {"done", false},    {"cursor_key", ContentKey(at[1])},
                          {"cursor_number", 1},            {"scanned", 2},     {"rewrapped", 2},
                          {"failed", 0},                   {"total", 4},       {"started_ms", 1},
                          {"finished_ms", 0}}
               .dump();
  }
  RewrapJob job(*f.store, [&] { return f.keyring->Generation(); }, RewrapOptions{state, 1000}, nullptr);
  ASSERT_TRUE(job.RunOnce().ok());
  auto progress = nlohmann::json::parse(job.ProgressJson());
  EXPECT_EQ(progress["done"], true);
  EXPECT_EQ(progress["scanned"], 4);
  EXPECT_EQ(progress["rewrapped"], 4);  // 2 before the interruption, c and d after
  EXPECT_EQ(version_of(at[0]), 1u);     // before the cursor: left to the pass that was interrupted
  EXPECT_EQ(version_of(at[2]), 2u);
  EXPECT_EQ(version_of(at[3]), 2u);

  // A new rotation starts a full pass: everything reaches v3.
  ASSERT_TRUE(f.keyring->Rotate("developer", 1, f.Signer()).ok());
  ASSERT_TRUE(job.RunOnce().ok());
  progress = nlohmann::json::parse(job.ProgressJson());
  EXPECT_EQ(progress["target_generation"], f.keyring->Generation());
  EXPECT_EQ(progress["scanned"], 4);
  for (const auto& a : at) EXPECT_EQ(version_of(a), 3u);
  // The job saved where it is: a new job finds the pass done.
  RewrapJob again(*f.store, [&] { return f.keyring->Generation(); }, RewrapOptions{state, 1000}, nullptr);
  EXPECT_EQ(nlohmann::json::parse(again.ProgressJson())["done"], true);

  // Retire v1 and v2: every version still reads, for a developer.
  ASSERT_TRUE(f.keyring->SetMinDecryptionVersion("developer", 3, 1, f.Signer()).ok());
  for (const auto& a : at) EXPECT_TRUE(f.store->Get(a, As({"developer"})).ok()) << Format(a);
}

// A rotation in the middle of a pass supersedes it after the version at
// hand (a batch holds 32 versions: at a slow rate, waiting for the end of one
// would leave the pass aiming at old keys for minutes).
TEST(RoleCodec, RewrapRotationInTheMiddleOfAPassStartsOverAtOnce) {
  Fixture f;
  const std::vector<Address> at = FourDeveloperVersions(f);
  ASSERT_EQ(at.size(), 4u);
  ASSERT_TRUE(f.keyring->Rotate("developer", 1, f.Signer()).ok());
  const std::uint64_t first = f.keyring->Generation();
  // The job looks at the generation once when the pass starts, then after
  // each version: the rotation lands right after the first version.
  int looks = 0;
  RewrapJob job(
      *f.store,
      [&] {
        if (++looks == 2) {
          EXPECT_TRUE(f.keyring->Rotate("developer", 1, f.Signer()).ok());
        }
        return f.keyring->Generation();
      },
      RewrapOptions{f.dir.File("rewrap.json"), 1000}, nullptr);
  ASSERT_TRUE(job.RunOnce().ok());
  const auto progress = nlohmann::json::parse(job.ProgressJson());
  EXPECT_EQ(progress["target_generation"], first + 1);
  EXPECT_EQ(progress["done"], true);
  EXPECT_EQ(progress["scanned"], 4);  // the new pass scanned everything, "a" again
  EXPECT_EQ(progress["rewrapped"], 4);
  EXPECT_EQ(progress["failed"], 0);
  EXPECT_EQ(looks, 2 + 1 + 4);  // first pass: start, after "a"; second: start, after each
  for (const auto& a : at) {
    auto stored = f.repo->ContextContent(ContentKey(a), 1);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(keys::ParseEnvelope(*stored)->wraps[0].version, 3u) << Format(a);
  }
}

}  // namespace
}  // namespace bzzz::ucxl
