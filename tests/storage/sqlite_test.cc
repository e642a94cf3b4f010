// Tests of the SQLite backend: opening, per-domain migrations (including
// failing and invalid ones, and the upgrade of the single-sequence layout),
// node meta, durability across reopen, the health check, concurrency,
// Close() and Flush(); the background checkpointer; and the task, context
// and slurp repositories.
#include "storage/sqlite/sqlite.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "storage/sqlite/database.h"
#include "storage/store.h"

namespace bzzz::storage {
namespace {

namespace fs = std::filesystem;
using sqlite::SqliteOptions;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "bzzz_storage_XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// An independent connection, as another process would have: checks what is
// really on disk rather than what the store says.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Every row, every column as text (NULL as "").
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        row.emplace_back(text != nullptr ? text : "");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    return rows;
  }

  bool TableExists(const std::string& name) {
    return !Query("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '" + name + "'").empty();
  }

  int Exec(const std::string& sql) { return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); }

 private:
  sqlite3* db_ = nullptr;
};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::uintmax_t SizeOrZero(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  // Nested below the temp dir so that opening has to create directories.
  std::string DbPath() const { return (dir_.path() / "nested" / "dir" / "bzzz.db").string(); }

  // The backend's own schema, or `steps` as the one domain "test".
  SqliteOptions Options(std::vector<Migration> steps = {}) const {
    SqliteOptions options;
    options.path = DbPath();
    if (!steps.empty()) options.migrations = {{"test", std::move(steps)}};
    return options;
  }

  std::shared_ptr<Store> MustOpen(const SqliteOptions& options) {
    auto storage = sqlite::Open(options);
    EXPECT_TRUE(storage.ok()) << storage.status().ToString();
    if (!storage.ok()) return nullptr;
    return storage->store;
  }
  std::shared_ptr<Store> MustOpen() { return MustOpen(Options()); }

  TempDir dir_;
};

// Steps the binary knows, over every domain.
int LatestVersion() {
  int total = 0;
  for (const auto& d : sqlite::Migrations()) total += static_cast<int>(d.steps.size());
  return total;
}

// Two harmless steps; tests use them when they need more than one version.
std::vector<Migration> TwoSteps() {
  return {{1, "one", "CREATE TABLE one (x INTEGER);"}, {2, "two", "CREATE TABLE two (y TEXT);"}};
}

TEST(SqliteMigrationsTest, EachDomainsVersionsAreContiguousFromOne) {
  const auto& domains = sqlite::Migrations();
  ASSERT_EQ(domains.size(), 6u);
  EXPECT_EQ(domains[0].domain, "node");
  EXPECT_EQ(domains[1].domain, "ucxl");
  EXPECT_EQ(domains[2].domain, "tasks");
  EXPECT_EQ(domains[3].domain, "audit");
  EXPECT_EQ(domains[4].domain, "hmmm");
  EXPECT_EQ(domains[5].domain, "slurp");
  for (const auto& d : domains) {
    ASSERT_FALSE(d.steps.empty()) << d.domain;
    for (std::size_t i = 0; i < d.steps.size(); ++i) {
      EXPECT_EQ(d.steps[i].version, static_cast<int>(i) + 1) << d.domain;
      EXPECT_FALSE(d.steps[i].name.empty());
      EXPECT_FALSE(d.steps[i].sql.empty());
    }
  }
  EXPECT_EQ(domains[0].steps[0].name, "initial");
}

TEST_F(SqliteStoreTest, OpenCreatesDirectoryAndFile) {
  ASSERT_FALSE(fs::exists(fs::path(DbPath()).parent_path()));
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Backend(), "sqlite");
  EXPECT_TRUE(fs::is_regular_file(DbPath()));
  EXPECT_TRUE(store->TestConnection().ok());
}

TEST_F(SqliteStoreTest, WalModeIsActive) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  ASSERT_TRUE(store->PutMeta("k", "v").ok());
  EXPECT_GT(SizeOrZero(DbPath() + "-wal"), 0u);
  RawDb raw(DbPath());
  auto rows = raw.Query("PRAGMA journal_mode");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "wal");
}

TEST_F(SqliteStoreTest, ANewDatabaseHas8KiBPagesAndAnOlderOneKeepsItsOwn) {
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Migrate().ok());
  }
  EXPECT_EQ(RawDb(DbPath()).Query("PRAGMA page_size")[0][0], "8192");

  // A database created with SQLite's default pages is opened as it is.
  const std::string older = (dir_.path() / "older.db").string();
  {
    RawDb raw(older);  // SQLITE_OPEN_READWRITE only: create it first
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(older.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA page_size=4096; CREATE TABLE t (x INTEGER);", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  SqliteOptions options;
  options.path = older;
  auto store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  ASSERT_TRUE(store->PutMeta("k", "v").ok());
  EXPECT_EQ(RawDb(older).Query("PRAGMA page_size")[0][0], "4096");
  EXPECT_EQ(*store->GetMeta("k"), "v");
}

TEST_F(SqliteStoreTest, MigrateFromEmptyAppliesAllInOrderAndRecordsThem) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  auto before = store->SchemaState();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->current_version, 0);
  EXPECT_EQ(before->latest_version, LatestVersion());

  auto state = store->Migrate();
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->current_version, LatestVersion());
  EXPECT_EQ(state->latest_version, LatestVersion());
  std::vector<std::string> expected;
  std::vector<std::vector<std::string>> expected_rows;
  for (const auto& d : sqlite::Migrations()) {
    for (const auto& m : d.steps) {
      expected.push_back(d.domain + "/" + std::to_string(m.version) + " " + m.name);
      expected_rows.push_back({d.domain, std::to_string(m.version), m.name});
    }
  }
  EXPECT_EQ(state->applied, expected);
  ASSERT_EQ(state->domains.size(), sqlite::Migrations().size());
  for (const auto& d : state->domains) EXPECT_EQ(d.current, d.latest) << d.domain;

  RawDb raw(DbPath());
  auto rows = raw.Query("SELECT domain, version, name, applied_at FROM schema_migrations ORDER BY rowid");
  ASSERT_EQ(rows.size(), expected_rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(std::vector<std::string>(rows[i].begin(), rows[i].begin() + 3), expected_rows[i]);
    EXPECT_FALSE(rows[i][3].empty());
  }
  for (const char* table : {"node_meta", "context_versions", "tasks", "audit_log", "audit_head"})
    EXPECT_TRUE(raw.TableExists(table));

  auto after = store->SchemaState();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->current_version, LatestVersion());
  EXPECT_TRUE(after->applied.empty());
}

TEST_F(SqliteStoreTest, SecondMigrateAppliesNothing) {
  auto store = MustOpen(Options(TwoSteps()));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  auto again = store->Migrate();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->applied.empty());
  EXPECT_EQ(again->current_version, 2);
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT version FROM schema_migrations").size(), 2u);
}

TEST_F(SqliteStoreTest, MigrateAppliesOnlyNewSteps) {
  {
    auto store = MustOpen(Options({TwoSteps()[0]}));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Migrate().ok());
  }
  auto store = MustOpen(Options(TwoSteps()));
  ASSERT_NE(store, nullptr);
  auto state = store->Migrate();
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->applied, std::vector<std::string>{"test/2 two"});
  EXPECT_EQ(state->current_version, 2);
}

TEST_F(SqliteStoreTest, FailedStepIsRolledBackAndEarlierStepsStay) {
  std::vector<Migration> migrations = {
      {1, "one", "CREATE TABLE one (x INTEGER);"},
      // The first statement succeeds; the syntax error after it must undo it.
      {2, "broken", "CREATE TABLE two (y TEXT); CREATE TABLE three (;"},
      {3, "never", "CREATE TABLE four (z TEXT);"},
  };
  auto store = MustOpen(Options(migrations));
  ASSERT_NE(store, nullptr);
  auto state = store->Migrate();
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), StatusCode::kInternal);
  EXPECT_PRED2(Contains, state.status().message(), "migration test/2");
  EXPECT_PRED2(Contains, state.status().message(), "broken");
  EXPECT_PRED2(Contains, state.status().message(), "syntax error");

  RawDb raw(DbPath());
  auto rows = raw.Query("SELECT version FROM schema_migrations ORDER BY version");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "1");
  EXPECT_TRUE(raw.TableExists("one"));
  EXPECT_FALSE(raw.TableExists("two"));
  EXPECT_FALSE(raw.TableExists("four"));

  auto schema = store->SchemaState();
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ(schema->current_version, 1);
  // The writer is usable after the rollback.
  EXPECT_TRUE(store->Flush().ok());
}

TEST_F(SqliteStoreTest, NonContiguousMigrationListIsRejectedBeforeTouchingTheDatabase) {
  for (const auto& migrations : std::vector<std::vector<Migration>>{
           {{1, "one", "CREATE TABLE one (x);"}, {3, "three", "CREATE TABLE three (x);"}},
           {{2, "two", "CREATE TABLE two (x);"}},
           {{1, "one", "CREATE TABLE one (x);"}, {1, "again", "CREATE TABLE again (x);"}}}) {
    TempDir dir;
    SqliteOptions options;
    options.path = (dir.path() / "bzzz.db").string();
    options.migrations = {{"test", migrations}};
    auto storage = sqlite::Open(options);
    ASSERT_TRUE(storage.ok());
    auto store = &storage->store;
    auto state = (*store)->Migrate();
    ASSERT_FALSE(state.ok());
    EXPECT_EQ(state.status().code(), StatusCode::kInternal);
    const Migration& bad = migrations.size() == 1 ? migrations[0] : migrations[1];
    EXPECT_PRED2(Contains, state.status().message(), "version " + std::to_string(bad.version));
    EXPECT_FALSE((*store)->SchemaState().ok());
    RawDb raw(options.path);
    EXPECT_FALSE(raw.TableExists("schema_migrations"));
    EXPECT_FALSE(raw.TableExists("one"));
  }
}

TEST_F(SqliteStoreTest, DatabaseNewerThanBinaryIsFailedPrecondition) {
  {
    auto store = MustOpen(Options(TwoSteps()));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Migrate().ok());
  }
  auto store = MustOpen(Options({TwoSteps()[0]}));
  ASSERT_NE(store, nullptr);
  auto state = store->Migrate();
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(state.status().message(),
            "database schema of test is at version 2, newer than this binary (1); upgrade bzzz");

  auto health = store->HealthCheck();
  EXPECT_TRUE(health.reachable);
  EXPECT_EQ(health.schema_version, 2);
  EXPECT_EQ(health.latest_version, 1);
  EXPECT_PRED2(Contains, health.message, "newer than this binary");
}

TEST_F(SqliteStoreTest, MetaBeforeMigrateIsFailedPrecondition) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  auto get = store->GetMeta("node_id");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_PRED2(Contains, get.status().message(), "run `bzzz db migrate`");
  Status put = store->PutMeta("node_id", "x");
  EXPECT_EQ(put.code(), StatusCode::kFailedPrecondition);

  // The same connections work once the schema exists (their cached schema is
  // stale and must be reloaded).
  ASSERT_TRUE(store->Migrate().ok());
  ASSERT_TRUE(store->PutMeta("node_id", "x").ok());
  auto again = store->GetMeta("node_id");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, "x");
}

TEST_F(SqliteStoreTest, PutGetOverwriteAndNotFound) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());

  auto missing = store->GetMeta("absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound());

  ASSERT_TRUE(store->PutMeta("node_id", "first").ok());
  EXPECT_EQ(store->GetMeta("node_id").value(), "first");
  ASSERT_TRUE(store->PutMeta("node_id", "second").ok());
  EXPECT_EQ(store->GetMeta("node_id").value(), "second");

  // Values are bytes, not C strings; empty values are values.
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(store->PutMeta("binary", binary).ok());
  EXPECT_EQ(store->GetMeta("binary").value(), binary);
  ASSERT_TRUE(store->PutMeta("empty", "").ok());
  EXPECT_EQ(store->GetMeta("empty").value(), "");

  RawDb raw(DbPath());
  auto rows = raw.Query("SELECT COUNT(*), MIN(updated_at) FROM node_meta WHERE key = 'node_id'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "1");
  EXPECT_FALSE(rows[0][1].empty());
}

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  {
    auto store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Migrate().ok());
    ASSERT_TRUE(store->PutMeta("first_start", "2026-01-01T00:00:00Z").ok());
    store->Close();
  }
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  auto state = store->SchemaState();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->current_version, LatestVersion());
  auto value = store->GetMeta("first_start");
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, "2026-01-01T00:00:00Z");
}

TEST_F(SqliteStoreTest, GarbageFileIsInvalidArgument) {
  fs::create_directories(fs::path(DbPath()).parent_path());
  {
    std::ofstream out(DbPath());
    for (int i = 0; i < 200; ++i) out << "this is not a database, just text\n";
  }
  auto store = sqlite::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_PRED2(Contains, store.status().message(), DbPath());
  EXPECT_PRED2(Contains, store.status().message(), "not a database");
}

TEST_F(SqliteStoreTest, DirectoryAsPathIsUnavailable) {
  SqliteOptions options;
  options.path = dir_.path().string();
  auto store = sqlite::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_PRED2(Contains, store.status().message(), options.path);
}

TEST_F(SqliteStoreTest, EmptyPathIsInvalidArgument) {
  auto store = sqlite::Open(SqliteOptions{});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, HealthCheckReportsPendingMigrationsThenOk) {
  auto store = MustOpen(Options(TwoSteps()));
  ASSERT_NE(store, nullptr);
  StoreHealth before = store->HealthCheck();
  EXPECT_TRUE(before.reachable);
  EXPECT_TRUE(before.integrity_ok);
  EXPECT_EQ(before.schema_version, 0);
  EXPECT_EQ(before.latest_version, 2);
  EXPECT_EQ(before.message, "2 pending migrations");
  EXPECT_EQ(before.backend, "sqlite");
  EXPECT_EQ(before.location, DbPath());

  ASSERT_TRUE(store->Migrate().ok());
  StoreHealth after = store->HealthCheck();
  EXPECT_TRUE(after.reachable);
  EXPECT_TRUE(after.integrity_ok);
  EXPECT_EQ(after.schema_version, 2);
  EXPECT_EQ(after.latest_version, 2);
  EXPECT_EQ(after.message, "ok");
  EXPECT_GT(after.size_bytes, 0u);
  EXPECT_EQ(after.size_bytes, SizeOrZero(DbPath()) + SizeOrZero(DbPath() + "-wal"));
  EXPECT_GE(after.latency.count(), 0);
  EXPECT_LT(after.latency, std::chrono::seconds(1));
}

TEST_F(SqliteStoreTest, HealthCheckSingularPendingMigration) {
  auto store = MustOpen(Options({TwoSteps()[0]}));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->HealthCheck().message, "1 pending migration");
}

TEST_F(SqliteStoreTest, ConcurrentPutAndGetFromManyThreads) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  constexpr int kThreads = 8;
  constexpr int kOps = 500;
  std::atomic<int> errors{0};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        // A private key (read back exactly) and a shared one (contended).
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i % 50);
        std::string value = std::to_string(i);
        if (!store->PutMeta(key, value).ok()) ++errors;
        auto got = store->GetMeta(key);
        if (!got.ok()) {
          ++errors;
        } else if (*got != value) {
          ++mismatches;
        }
        if (!store->PutMeta("shared", value).ok()) ++errors;
        auto shared = store->GetMeta("shared");
        if (!shared.ok()) ++errors;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT key FROM node_meta").size(), static_cast<std::size_t>(kThreads * 50 + 1));
}

TEST_F(SqliteStoreTest, ReadsDoNotWaitForAnotherWriter) {
  SqliteOptions options = Options();
  options.busy_timeout = std::chrono::milliseconds(200);
  auto store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  ASSERT_TRUE(store->PutMeta("k", "committed").ok());

  // Another process holds the write lock with an uncommitted change.
  RawDb other(DbPath());
  ASSERT_EQ(other.Exec("BEGIN IMMEDIATE; UPDATE node_meta SET value = 'uncommitted' WHERE key = 'k';"),
            SQLITE_OK);

  auto start = std::chrono::steady_clock::now();
  auto value = store->GetMeta("k");
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, "committed");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));

  // Our write waits out the busy timeout, then reports a retryable error.
  Status put = store->PutMeta("k", "mine");
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.ToString();
  EXPECT_EQ(other.Exec("ROLLBACK"), SQLITE_OK);
  EXPECT_TRUE(store->PutMeta("k", "mine").ok());
  EXPECT_EQ(store->GetMeta("k").value(), "mine");
}

TEST_F(SqliteStoreTest, CallsAfterCloseAreUnavailable) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  store->Close();
  store->Close();  // idempotent

  auto expect_closed = [](const Status& s) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_EQ(s.message(), "store is closed");
  };
  expect_closed(store->Migrate().status());
  expect_closed(store->SchemaState().status());
  expect_closed(store->TestConnection());
  expect_closed(store->GetMeta("k").status());
  expect_closed(store->PutMeta("k", "v"));
  expect_closed(store->Flush());
  StoreHealth health = store->HealthCheck();
  EXPECT_FALSE(health.reachable);
  EXPECT_EQ(health.message, "store is closed");
  EXPECT_EQ(health.backend, "sqlite");
}

TEST_F(SqliteStoreTest, FlushTruncatesTheWal) {
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Migrate().ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store->PutMeta("k" + std::to_string(i), "v").ok());
  ASSERT_TRUE(store->GetMeta("k1").ok());  // a reader has been used and returned
  ASSERT_GT(SizeOrZero(DbPath() + "-wal"), 0u);
  Status flushed = store->Flush();
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(SizeOrZero(DbPath() + "-wal"), 0u);
  EXPECT_EQ(store->GetMeta("k99").value(), "v");
}

// `commits` transactions of 10 rows of 4,000 bytes (a page each), a
// commit every 200 us or so, as a busy task writer would: over 4,000
// frames of log for 400 commits.
void WriteLogPages(sqlite::Database& db, int commits) {
  auto on_error = [](const sqlite::SqlError& e) { return Internal(e.message); };
  ASSERT_TRUE(
      db.Transaction(
            "create",
            [](sqlite::SqliteConnection& c) { return sqlite::Exec(c.db(), "CREATE TABLE t (x BLOB)"); },
            on_error)
          .ok());
  for (int i = 0; i < commits; ++i) {
    Status s = db.Transaction(
        "insert",
        [](sqlite::SqliteConnection& c) {
          return sqlite::Exec(c.db(),
                              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
                              "INSERT INTO t SELECT randomblob(8000) FROM n");  // a page each
        },
        on_error);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

std::int64_t RowsOfT(sqlite::Database& db) {
  auto count = db.Read("count", [](sqlite::SqliteConnection& c) -> Result<std::int64_t> {
    std::int64_t n = 0;
    if (auto e = sqlite::QueryInt(c, "SELECT COUNT(*) FROM t", &n); !e.ok()) return Internal(e.message);
    return n;
  });
  EXPECT_TRUE(count.ok()) << count.status().ToString();
  return count.ok() ? *count : -1;
}

TEST(SqliteCheckpointTest, TheCheckpointerCopiesTheLogAndTheWriterCatchesUpSoTheLogStartsOver) {
  for (bool full : {false, true}) {
    SCOPED_TRACE(full ? "synchronous=FULL" : "synchronous=NORMAL");
    TempDir dir;
    SqliteOptions options;
    options.path = (dir.path() / "bzzz.db").string();
    options.synchronous_full = full;
    auto db = sqlite::Database::Open(options);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    WriteLogPages(**db, 400);

    const auto activity = (*db)->checkpoint_activity();
    // The checkpointer thread copied at least a whole checkpoint's worth...
    EXPECT_GE(activity.background_frames, static_cast<std::uint64_t>(sqlite::Database::kWalCheckpointFrames));
    // ...synced what it copied itself (not left to the writer's catch-up)...
    EXPECT_GE(activity.background_syncs, 1u);
    // ...and, with the writer's catch-ups, the log started over each time
    // instead of growing until the writer had to checkpoint it all itself.
    EXPECT_LT(activity.longest_log, sqlite::Database::kWalInlineCheckpointFrames);
    EXPECT_GT(activity.longest_log, sqlite::Database::kWalCheckpointFrames);
    EXPECT_EQ(RowsOfT(**db), 4000);

    // Everything is there after a reopen (the close folds the rest in).
    (*db)->Close();
    auto again = sqlite::Database::Open(options);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(RowsOfT(**again), 4000);
  }
}

TEST(OpenStoreTest, SqliteBackendUsesTheDataDir) {
  TempDir dir;
  config::Config config;
  config.node.data_dir = (dir.path() / "data").string();
  config.storage.backend = "sqlite";
  config.storage.sqlite.synchronous = "full";
  auto storage = OpenStorage(config);
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  ASSERT_NE(storage->tasks, nullptr);
  ASSERT_NE(storage->contexts, nullptr);
  auto store = &storage->store;
  EXPECT_EQ((*store)->Backend(), "sqlite");
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "data" / "bzzz.db"));
  ASSERT_TRUE((*store)->Migrate().ok());
  ASSERT_TRUE((*store)->PutMeta("k", "v").ok());
  EXPECT_EQ((*store)->HealthCheck().location, config.SqlitePath());
}

TEST(OpenStoreTest, UnknownSynchronousIsInvalidArgument) {
  TempDir dir;
  config::Config config;
  config.node.data_dir = dir.path().string();
  config.storage.sqlite.synchronous = "sometimes";
  auto store = OpenStorage(config);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
}

// The PostgreSQL backend itself is tested against a real server in
// postgres_test.cc; here only that OpenStorage reaches it.
TEST(OpenStoreTest, PostgresWithoutAServerIsUnavailable) {
  config::Config config;
  config.storage.backend = "postgres";
  config.storage.postgres.host = "127.0.0.1";
  config.storage.postgres.port = 1;  // nothing listens there
  auto store = OpenStorage(config, "node");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_PRED2(Contains, store.status().message(), "cannot connect to PostgreSQL at 127.0.0.1:1/bzzz");
}

TEST(OpenStoreTest, UnknownBackendIsInvalidArgument) {
  config::Config config;
  config.storage.backend = "mongodb";
  auto store = OpenStorage(config);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bzzz::storage

namespace bzzz::storage {
namespace {

class ContextVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = (dir_.path() / "bzzz.db").string();
    auto storage = sqlite::Open(options);
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    ASSERT_TRUE(storage->store->Migrate().ok());
    store_ = storage->contexts;
  }
  ucxl::ContextVersion V(const std::string& key, const std::string& agent, bool tombstone = false) {
    ucxl::ContextVersion v;
    v.key = key;
    v.author_agent = agent;
    v.author_role = "developer";
    v.created_ms = 1000 + static_cast<std::int64_t>(++clock_);
    v.content_type = "text/plain";
    v.tombstone = tombstone;
    return v;
  }
  TempDir dir_;
  std::shared_ptr<ucxl::ContextRepository> store_;
  int clock_ = 0;
};

TEST_F(ContextVersionsTest, AppendNumbersPerKeyAndKeepsHistory) {
  const std::string k1 = "ucxl://a:r@p:t/x", k2 = "ucxl://a:r@p:t/y";
  EXPECT_EQ(store_->AppendContextVersion(V(k1, "a"), "one")->number, 1u);
  EXPECT_EQ(store_->AppendContextVersion(V(k1, "a"), "two")->number, 2u);
  EXPECT_EQ(store_->AppendContextVersion(V(k2, "b"), "other")->number, 1u);
  EXPECT_EQ(store_->AppendContextVersion(V(k1, "a", true), "")->number, 3u);
  auto history = store_->ContextHistory(k1);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_FALSE((*history)[1].tombstone);
  EXPECT_TRUE((*history)[2].tombstone);
  EXPECT_EQ(*store_->ContextContent(k1, 2), "two");
  EXPECT_TRUE(store_->ContextContent(k1, 9).status().IsNotFound());
  EXPECT_TRUE(store_->ContextHistory("ucxl://a:r@p:t/none")->empty());
  // Binary content survives.
  const std::string binary("\0\xff\x01zero", 7);
  auto bin = store_->AppendContextVersion(V(k2, "b"), binary);
  ASSERT_TRUE(bin.ok());
  EXPECT_EQ(*store_->ContextContent(k2, bin->number), binary);
  auto stats = store_->ContextStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->versions, 5u);
  EXPECT_EQ(stats->bytes, 3u + 3u + 5u + 0u + 7u);
}

TEST_F(ContextVersionsTest, SearchSeesLatestLiveVersionsOnly) {
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/deleted", "a"), "needle").ok());
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/deleted", "a", true), "").ok());
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/old", "a"), "needle").ok());
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/old", "a"), "hay").ok());
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/live", "a"), "a needle here").ok());
  ASSERT_TRUE(store_->AppendContextVersion(V("ucxl://a:r@p:t/needle-key", "a"), "hay").ok());
  auto found = store_->SearchContext("needle", 10);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].key, "ucxl://a:r@p:t/live");
  EXPECT_EQ((*found)[1].key, "ucxl://a:r@p:t/needle-key");
  EXPECT_EQ(store_->SearchContext("", 10)->size(), 3u);
  EXPECT_EQ(store_->SearchContext("", 1)->size(), 1u);
  EXPECT_TRUE(store_->SearchContext("%", 10)->empty());  // no LIKE patterns
}

}  // namespace
}  // namespace bzzz::storage

namespace bzzz::storage {
namespace {

// A database written by a binary from before per-domain versions: one
// sequence 1 node meta, 2 UCXL versions, 3 tasks, with a row in each table.
void WriteLegacyDatabase(const std::string& path, int versions) {
  fs::create_directories(fs::path(path).parent_path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql =
      "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT "
      "NULL);";
  const auto& domains = sqlite::Migrations();
  for (int v = 1; v <= versions; ++v) {
    const Migration& step = domains[static_cast<std::size_t>(v - 1)].steps[0];
    sql += step.sql;
    sql += "INSERT INTO schema_migrations VALUES (" + std::to_string(v) + ", '" + step.name +
           "', '2026-11-01T00:00:00.000Z');";
  }
  sql += "INSERT INTO node_meta VALUES ('node_id', 'legacy-node', '2026-11-01T00:00:00.000Z');";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST(SqliteLegacyLayoutTest, SingleSequenceIsReadThenRewrittenPerDomainKeepingTheData) {
  TempDir dir;
  const std::string path = (dir.path() / "bzzz.db").string();
  WriteLegacyDatabase(path, 3);
  SqliteOptions options;
  options.path = path;
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  Store& store = *storage->store;

  // Read as it is: the three legacy domains applied, nothing written; only
  // the migrations that came later (the HLC column of ucxl, task owners,
  // tasks keyed by seq, audit, hmmm, slurp) are pending.
  auto before = store.SchemaState();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->current_version, 3);
  EXPECT_EQ(before->latest_version, LatestVersion());
  EXPECT_EQ(store.HealthCheck().message, "6 pending migrations");

  auto migrated = store.Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  EXPECT_EQ(migrated->applied,
            (std::vector<std::string>{"ucxl/2 ucxl_hybrid_logical_clock", "tasks/2 task_owners",
                                      "tasks/3 tasks_lighter_indexes", "audit/1 audit_log", "hmmm/1 hmmm_rooms",
                                      "slurp/1 slurp_events"}));
  EXPECT_EQ(migrated->current_version, LatestVersion());
  RawDb raw(path);
  auto rows = raw.Query("SELECT domain, version, name, applied_at FROM schema_migrations ORDER BY rowid");
  ASSERT_EQ(rows.size(), 9u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"node", "1", "initial", "2026-11-01T00:00:00.000Z"}));
  EXPECT_EQ(rows[1][0], "ucxl");
  EXPECT_EQ(rows[2][0], "tasks");
  EXPECT_EQ(rows[3][0], "ucxl");
  EXPECT_EQ(rows[4][0], "tasks");
  EXPECT_EQ(rows[5][0], "tasks");
  EXPECT_EQ(rows[6][0], "audit");
  EXPECT_EQ(rows[7][0], "hmmm");
  EXPECT_EQ(rows[8][0], "slurp");
  EXPECT_FALSE(raw.TableExists("schema_migrations_legacy"));
  EXPECT_EQ(*store.GetMeta("node_id"), "legacy-node");
}

TEST(SqliteLegacyLayoutTest, PartlyMigratedLegacyDatabaseGetsTheMissingDomains) {
  TempDir dir;
  const std::string path = (dir.path() / "bzzz.db").string();
  WriteLegacyDatabase(path, 1);
  SqliteOptions options;
  options.path = path;
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok());
  EXPECT_EQ(storage->store->HealthCheck().message, "8 pending migrations");
  auto migrated = storage->store->Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  EXPECT_EQ(migrated->applied,
            (std::vector<std::string>{"ucxl/1 ucxl_context_versions", "ucxl/2 ucxl_hybrid_logical_clock",
                                      "tasks/1 tasks", "tasks/2 task_owners", "tasks/3 tasks_lighter_indexes",
                                      "audit/1 audit_log", "hmmm/1 hmmm_rooms", "slurp/1 slurp_events"}));
  EXPECT_TRUE(storage->tasks->TaskStats().ok());
}

TEST(SqliteDomainsTest, DomainsAreVersionedIndependently) {
  TempDir dir;
  const std::string path = (dir.path() / "bzzz.db").string();
  const Migration a1{1, "a1", "CREATE TABLE a1 (x);"}, a2{2, "a2", "CREATE TABLE a2 (x);"};
  const Migration b1{1, "b1", "CREATE TABLE b1 (x);"}, b2{2, "b2", "CREATE TABLE b2 (x);"};
  SqliteOptions options;
  options.path = path;
  options.migrations = {{"a", {a1}}, {"b", {b1, b2}}};
  {
    auto storage = sqlite::Open(options);
    ASSERT_TRUE(storage.ok());
    ASSERT_TRUE(storage->store->Migrate().ok());
  }
  // A later binary adds a step to "a" only; "b" is untouched.
  options.migrations = {{"a", {a1, a2}}, {"b", {b1, b2}}};
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok());
  auto state = storage->store->Migrate();
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->applied, std::vector<std::string>{"a/2 a2"});
  EXPECT_EQ(state->current_version, 4);
  ASSERT_EQ(state->domains.size(), 2u);
  EXPECT_EQ(state->domains[0].current, 2);
  EXPECT_EQ(state->domains[1].current, 2);

  // A domain listed twice is a bug in the binary, refused before any write.
  options.migrations = {{"a", {a1}}, {"a", {a1}}};
  auto twice = sqlite::Open(options);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->store->Migrate().status().code(), StatusCode::kInternal);
}

TEST(SqliteTaskRepositoryTest, WritesAreAtomicAndIdempotencyKeysUnique) {
  TempDir dir;
  SqliteOptions options;
  options.path = (dir.path() / "bzzz.db").string();
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok());
  ASSERT_TRUE(storage->store->Migrate().ok());
  tasks::TaskRepository& repo = *storage->tasks;
  auto row = [](std::string id, std::string key, std::int64_t seq) {
    tasks::TaskRow r;
    r.id = std::move(id);
    r.idempotency_key = std::move(key);
    r.state = "queued";
    r.executor = "builtin";
    r.project = "p";
    r.seq = seq;
    r.doc = "{}";
    return r;
  };
  ASSERT_TRUE(repo.WriteTasks({row("t1", "k1", 1), row("t2", "", 2)}, {}).ok());
  // A second task with k1 is refused and the batch's other row is not written.
  Status dup = repo.WriteTasks({row("t3", "", 3), row("t4", "k1", 4)}, {});
  EXPECT_EQ(dup.code(), StatusCode::kConflict) << dup.ToString();
  EXPECT_TRUE(repo.GetTask("t3").status().IsNotFound());
  EXPECT_EQ(repo.FindTaskByIdempotencyKey("k1")->id, "t1");

  auto updated = row("t1", "k1", 1);
  updated.state = "running";
  ASSERT_TRUE(repo.WriteTasks({updated}, {"t2"}).ok());
  EXPECT_EQ(repo.GetTask("t1")->state, "running");
  EXPECT_TRUE(repo.GetTask("t2").status().IsNotFound());
  auto totals = repo.TaskStats();
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->max_seq, 1);
  EXPECT_EQ(totals->by_state, (std::vector<std::pair<std::string, std::uint64_t>>{{"running", 1}}));

  storage->store->Close();
  EXPECT_EQ(repo.GetTask("t1").status().code(), StatusCode::kUnavailable);
}

TEST(SqliteTaskRepositoryTest, TasksWrittenBeforeTheTableWasKeyedBySeqAreKeptByItsMigration) {
  TempDir dir;
  SqliteOptions options;
  options.path = (dir.path() / "bzzz.db").string();
  DomainMigrations tasks = sqlite::TaskMigrations();
  ASSERT_EQ(tasks.steps.size(), 3u);
  auto row = [](std::string id, std::string key, std::string state, std::int64_t seq) {
    tasks::TaskRow r;
    r.id = std::move(id);
    r.idempotency_key = std::move(key);
    r.state = std::move(state);
    r.executor = "builtin";
    r.project = "p";
    r.priority = static_cast<int>(seq);
    r.created_ms = 1000 + seq;
    r.updated_ms = 2000 + seq;
    r.seq = seq;
    r.doc = "{\"seq\":" + std::to_string(seq) + "}";
    return r;
  };
  {
    // The schema of tasks/2: id the primary key, seq an indexed column.
    options.migrations = {{"tasks", {tasks.steps[0], tasks.steps[1]}}};
    auto before = sqlite::Open(options);
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    ASSERT_TRUE(before->store->Migrate().ok());
    ASSERT_TRUE(before->tasks
                    ->WriteTasks({row("t-b", "", "succeeded", 2), row("t-a", "k1", "queued", 1),
                                  row("t-c", "k3", "queued", 3), row("t-d", "", "queued", 5)},
                                 {})
                    .ok());
  }
  options.migrations = {tasks};
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok()) << storage.status().ToString();
  auto migrated = storage->store->Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  EXPECT_EQ(migrated->applied, std::vector<std::string>{"tasks/3 tasks_lighter_indexes"});
  tasks::TaskRepository& repo = *storage->tasks;

  // Every column of every row is there, in creation order.
  tasks::TaskQuery newest;
  newest.limit = 10;
  auto all = repo.ListTasks(newest);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 4u);
  for (std::size_t i = 0; i < all->size(); ++i) {
    const auto& got = (*all)[i];
    const std::int64_t seq = std::vector<std::int64_t>{5, 3, 2, 1}[i];
    const auto want = row(std::vector<std::string>{"t-d", "t-c", "t-b", "t-a"}[i],
                          std::vector<std::string>{"", "k3", "", "k1"}[i],
                          std::vector<std::string>{"queued", "queued", "succeeded", "queued"}[i], seq);
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.idempotency_key, want.idempotency_key);
    EXPECT_EQ(got.state, want.state);
    EXPECT_EQ(got.executor, want.executor);
    EXPECT_EQ(got.project, want.project);
    EXPECT_EQ(got.priority, want.priority);
    EXPECT_EQ(got.created_ms, want.created_ms);
    EXPECT_EQ(got.updated_ms, want.updated_ms);
    EXPECT_EQ(got.seq, want.seq);
    EXPECT_EQ(got.doc, want.doc);
  }
  tasks::TaskQuery before3 = newest;
  before3.before_seq = 3;
  auto older = repo.ListTasks(before3);
  ASSERT_TRUE(older.ok());
  ASSERT_EQ(older->size(), 2u);
  EXPECT_EQ((*older)[0].id, "t-b");
  auto queued = repo.TasksInStates({"queued"});
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 3u);
  EXPECT_EQ((*queued)[0].id, "t-a");
  EXPECT_EQ((*queued)[2].id, "t-d");
  EXPECT_EQ(repo.FindTaskByIdempotencyKey("k3")->id, "t-c");
  EXPECT_TRUE(repo.FindTaskByIdempotencyKey("k2").status().IsNotFound());
  EXPECT_EQ(repo.TaskStats()->max_seq, 5);

  // Keys stay unique, ids stay unique (an upsert), and so does seq now:
  // each refusal writes nothing of its batch.
  EXPECT_EQ(repo.WriteTasks({row("t-e", "", "queued", 6), row("t-f", "k1", "queued", 7)}, {}).code(),
            StatusCode::kConflict);
  EXPECT_EQ(repo.WriteTasks({row("t-e", "", "queued", 6), row("t-g", "", "queued", 5)}, {}).code(),
            StatusCode::kConflict);
  EXPECT_TRUE(repo.GetTask("t-e").status().IsNotFound());
  ASSERT_TRUE(repo.WriteTasks({row("t-a", "k1", "succeeded", 1), row("t-e", "", "queued", 6)}, {}).ok());
  EXPECT_EQ(repo.GetTask("t-a")->state, "succeeded");
  EXPECT_EQ(repo.ListTasks(newest)->size(), 5u);

  // The table is keyed by seq; a key lookup uses the key's index, which
  // holds only the tasks that have a key.
  RawDb raw(options.path);
  EXPECT_EQ(raw.Query("SELECT COUNT(*) FROM tasks WHERE rowid = seq")[0][0], "5");
  std::string plan;
  for (const auto& r : raw.Query("EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE idempotency_key = 'k1'")) {
    plan += r.back() + "\n";
  }
  EXPECT_PRED2(Contains, plan, "tasks_by_key");
  EXPECT_PRED2(Contains, raw.Query("SELECT sql FROM sqlite_master WHERE name = 'tasks_by_key'")[0][0],
               "WHERE idempotency_key IS NOT NULL");
  EXPECT_TRUE(raw.Query("SELECT name FROM sqlite_master WHERE name = 'tasks_by_seq'").empty());
}

}  // namespace
}  // namespace bzzz::storage

namespace bzzz::storage {
namespace {

TEST(SqliteVacuumTest, GivesBackTheSpaceOfDeletedRowsAndKeepsTheRest) {
  TempDir dir;
  SqliteOptions options;
  options.path = (dir.path() / "bzzz.db").string();
  auto storage = sqlite::Open(options);
  ASSERT_TRUE(storage.ok());
  ASSERT_TRUE(storage->store->Migrate().ok());
  std::vector<tasks::TaskRow> rows;
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) {
    tasks::TaskRow r;
    r.id = "t" + std::to_string(i);
    r.state = "succeeded";
    r.executor = "builtin";
    r.seq = i + 1;
    r.doc = std::string(4096, 'x');
    rows.push_back(r);
    if (i > 0) ids.push_back(r.id);
  }
  ASSERT_TRUE(storage->tasks->WriteTasks(rows, {}).ok());
  ASSERT_TRUE(storage->tasks->WriteTasks({}, ids).ok());  // purge all but t0
  auto r = storage->store->Vacuum();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->bytes_before, 1'000'000u);
  EXPECT_LT(r->bytes_after, r->bytes_before / 4);
  EXPECT_EQ(storage->tasks->GetTask("t0")->doc, std::string(4096, 'x'));
  EXPECT_TRUE(storage->tasks->GetTask("t1").status().IsNotFound());
  storage->store->Close();
  EXPECT_EQ(storage->store->Vacuum().status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace bzzz::storage

namespace bzzz::storage {
namespace {

// The slurp repository (slurp/repository.h) on SQLite: the queue, the
// fence, dead letters and records.
slurp::EventRow SlurpEvent(const std::string& key, std::int64_t accepted_ms,
                           const std::string& source = "api") {
  slurp::EventRow e;
  e.key = key;
  e.source = source;
  e.project = "bzzz";
  e.task_id = "t-" + key;
  e.payload = R"({"summary":")" + key + R"("})";
  e.payload_sha256 = std::string(64, 'a');
  e.accepted_ms = accepted_ms;
  e.accepted_by = "node-a";
  return e;
}

slurp::RecordRow SlurpRecord(const std::string& project, const std::string& task, const std::string& authors,
                             std::int64_t created_ms) {
  slurp::RecordRow r;
  r.address = "ucxl://slurp:curator@" + project + ":" + task + "/record";
  r.project = project;
  r.task_id = task;
  r.authors = authors;
  r.roles = R"(["admin"])";
  r.created_ms = created_ms;
  return r;
}

class SqliteSlurpRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions options;
    options.path = (dir_.path() / "bzzz.db").string();
    auto storage = sqlite::Open(options);
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    storage_ = *storage;
    ASSERT_TRUE(storage_.store->Migrate().ok());
    ASSERT_NE(storage_.slurp, nullptr);
  }

  // Adds an event without a capacity and returns its seq.
  std::int64_t Add(const std::string& key, std::int64_t accepted_ms = 1000) {
    auto added = repo().AddEvent(SlurpEvent(key, accepted_ms), 0);
    EXPECT_TRUE(added.ok()) << added.status().ToString();
    return added.ok() ? added->first.seq : 0;
  }

  slurp::SlurpRepository& repo() { return *storage_.slurp; }
  std::string State(std::int64_t seq) { return repo().GetEvent(seq)->state; }

  TempDir dir_;
  Storage storage_;
};

TEST_F(SqliteSlurpRepositoryTest, AddEventIsIdempotentByKey) {
  EXPECT_FALSE(repo().Shared());
  auto first = repo().AddEvent(SlurpEvent("k1", 1000), 0);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->second);
  const slurp::EventRow& stored = first->first;
  EXPECT_EQ(stored.seq, 1);
  EXPECT_EQ(stored.state, "queued");
  EXPECT_EQ(stored.attempts, 0);
  EXPECT_EQ(stored.next_ms, 1000);
  EXPECT_EQ(stored.accepted_by, "node-a");
  EXPECT_EQ(stored.payload, R"({"summary":"k1"})");
  EXPECT_EQ(*repo().GetEvent(1), stored);
  EXPECT_EQ(*repo().GetEventByKey("k1"), stored);

  // The same key again, with another payload: the stored event, untouched.
  slurp::EventRow again = SlurpEvent("k1", 5000);
  again.payload = "{}";
  again.payload_sha256 = std::string(64, 'b');
  auto second = repo().AddEvent(again, 0);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first, stored);
  EXPECT_EQ(repo().AddEvent(SlurpEvent("k2", 1000), 0)->first.seq, 2);

  EXPECT_TRUE(repo().GetEvent(99).status().IsNotFound());
  EXPECT_TRUE(repo().GetEventByKey("nope").status().IsNotFound());
  EXPECT_EQ(repo().AddEvent(SlurpEvent("", 1000), 0).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteSlurpRepositoryTest, AFullQueueRefusesNewEventsAndWritesNothing) {
  ASSERT_TRUE(repo().AddEvent(SlurpEvent("k1", 1000), 2).ok());
  ASSERT_TRUE(repo().AddEvent(SlurpEvent("k2", 1000), 2).ok());
  auto full = repo().AddEvent(SlurpEvent("k3", 1000), 2);
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status().ToString();
  EXPECT_TRUE(repo().GetEventByKey("k3").status().IsNotFound());
  EXPECT_EQ(repo().Stats()->queued, 2);
  // A key that exists is still answered when the queue is full.
  auto known = repo().AddEvent(SlurpEvent("k1", 1000), 2);
  ASSERT_TRUE(known.ok()) << known.status().ToString();
  EXPECT_FALSE(known->second);
  EXPECT_EQ(known->first.seq, 1);
  // Only queued events count; no capacity (0) means no limit.
  ASSERT_TRUE(repo().Fail(1, 1, "bad", 0, true).ok());
  EXPECT_TRUE(repo().AddEvent(SlurpEvent("k3", 1000), 2).ok());
  EXPECT_TRUE(repo().AddEvent(SlurpEvent("k4", 1000), 0).ok());
}

TEST_F(SqliteSlurpRepositoryTest, DueEventsAreQueuedEventsPastTheirTimeInSeqOrder) {
  const std::int64_t a = Add("a", 100), b = Add("b", 50), c = Add("c", 200);
  auto seqs = [&](std::int64_t now, std::size_t limit = 100) {
    std::vector<std::int64_t> out;
    auto due = repo().DueEvents(now, limit);
    EXPECT_TRUE(due.ok()) << due.status().ToString();
    if (due.ok()) {
      for (const auto& e : *due) out.push_back(e.seq);
    }
    return out;
  };
  EXPECT_EQ(seqs(150), (std::vector<std::int64_t>{a, b}));
  EXPECT_EQ(seqs(150, 1), (std::vector<std::int64_t>{a}));
  // A retry waits for its next_ms; a dead or done event is never due.
  ASSERT_TRUE(repo().Fail(a, 1, "try later", 500, false).ok());
  EXPECT_EQ(seqs(150), (std::vector<std::int64_t>{b}));
  EXPECT_EQ(seqs(500), (std::vector<std::int64_t>{a, b, c}));
  ASSERT_TRUE(repo().Fail(b, 1, "gave up", 0, true).ok());
  ASSERT_TRUE(repo().Complete(c, 1, SlurpRecord("bzzz", "t-c", "[]", 300), 300).ok());
  EXPECT_EQ(seqs(1000), (std::vector<std::int64_t>{a}));
}

TEST_F(SqliteSlurpRepositoryTest, CompleteWritesTheRecordAndMarksTheEventDoneOnce) {
  const std::int64_t seq = Add("k1");
  const slurp::RecordRow record = SlurpRecord("bzzz", "t-k1", R"(["ann","bob"])", 2000);
  ASSERT_TRUE(repo().Complete(seq, 3, record, 2500).ok());
  auto event = repo().GetEvent(seq);
  EXPECT_EQ(event->state, "done");
  EXPECT_EQ(event->term, 3u);
  EXPECT_EQ(event->address, record.address);
  EXPECT_EQ(event->processed_ms, 2500);
  slurp::RecordRow expected = record;
  expected.event_seq = seq;
  expected.term = 3;
  EXPECT_EQ(*repo().GetRecord(seq), expected);

  // Done once: a second Complete or a Fail is Conflict and changes nothing.
  slurp::RecordRow other = SlurpRecord("other", "t-x", "[]", 9000);
  EXPECT_EQ(repo().Complete(seq, 3, other, 9000).code(), StatusCode::kConflict);
  EXPECT_EQ(repo().Fail(seq, 3, "late", 9000, false).code(), StatusCode::kConflict);
  EXPECT_EQ(*repo().GetRecord(seq), expected);
  EXPECT_EQ(repo().GetEvent(seq)->processed_ms, 2500);

  EXPECT_TRUE(repo().Complete(99, 3, other, 9000).IsNotFound());
  EXPECT_TRUE(repo().GetRecord(99).status().IsNotFound());
  const std::int64_t next = Add("k2");
  EXPECT_EQ(repo().Complete(next, 3, SlurpRecord("p", "t", R"(["ann", 7])", 1), 1).code(),
            StatusCode::kInvalidArgument);
  slurp::RecordRow wrong_event = SlurpRecord("p", "t", "[]", 1);
  wrong_event.event_seq = seq;
  EXPECT_EQ(repo().Complete(next, 3, wrong_event, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(State(next), "queued");
}

TEST_F(SqliteSlurpRepositoryTest, TheFenceRefusesWritesOfAnOlderTermAndNewerTermsRaiseIt) {
  const std::int64_t seq = Add("k1");
  EXPECT_EQ(repo().Stats()->newest_term, 0u);
  ASSERT_EQ(*repo().AdmitTerm(5), 5u);
  EXPECT_EQ(*repo().AdmitTerm(5), 5u);

  // A deposed admin (term 4) changes nothing.
  Status complete = repo().Complete(seq, 4, SlurpRecord("bzzz", "t", "[]", 1), 1);
  EXPECT_EQ(complete.code(), StatusCode::kFailedPrecondition) << complete.ToString();
  EXPECT_NE(complete.message().find("5"), std::string::npos) << complete.message();
  EXPECT_EQ(repo().Fail(seq, 4, "x", 1, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(repo().AdmitTerm(4).status().code(), StatusCode::kFailedPrecondition);
  auto event = repo().GetEvent(seq);
  EXPECT_EQ(event->state, "queued");
  EXPECT_EQ(event->attempts, 0);
  EXPECT_TRUE(repo().GetRecord(seq).status().IsNotFound());
  EXPECT_EQ(repo().Stats()->newest_term, 5u);

  // Its successor (term 6) writes and raises the fence.
  ASSERT_TRUE(repo().Fail(seq, 6, "retry", 10, false).ok());
  EXPECT_EQ(repo().Stats()->newest_term, 6u);
  EXPECT_EQ(repo().AdmitTerm(5).status().code(), StatusCode::kFailedPrecondition);
  // A refused write (Conflict) does not raise it either.
  ASSERT_TRUE(repo().Complete(seq, 6, SlurpRecord("bzzz", "t", "[]", 1), 1).ok());
  EXPECT_EQ(repo().Complete(seq, 9, SlurpRecord("bzzz", "t", "[]", 1), 1).code(), StatusCode::kConflict);
  EXPECT_EQ(repo().Stats()->newest_term, 6u);
}

TEST_F(SqliteSlurpRepositoryTest, FailRetriesThenMakesTheEventDead) {
  const std::int64_t seq = Add("k1");
  ASSERT_TRUE(repo().Fail(seq, 2, "timeout", 5000, false).ok());
  auto retry = repo().GetEvent(seq);
  EXPECT_EQ(retry->state, "queued");
  EXPECT_EQ(retry->attempts, 1);
  EXPECT_EQ(retry->error, "timeout");
  EXPECT_EQ(retry->next_ms, 5000);
  EXPECT_EQ(retry->term, 0u);
  ASSERT_TRUE(repo().Fail(seq, 2, "bad payload", 6000, true).ok());
  auto dead = repo().GetEvent(seq);
  EXPECT_EQ(dead->state, "dead");
  EXPECT_EQ(dead->attempts, 2);
  EXPECT_EQ(dead->error, "bad payload");
  EXPECT_EQ(dead->term, 2u);
  EXPECT_EQ(repo().Fail(seq, 2, "again", 7000, true).code(), StatusCode::kConflict);
  EXPECT_EQ(repo().GetEvent(seq)->attempts, 2);
  EXPECT_TRUE(repo().Fail(99, 2, "none", 0, false).IsNotFound());
}

TEST_F(SqliteSlurpRepositoryTest, DeadLettersAreReplayedOrPurged) {
  const std::int64_t d1 = Add("d1"), d2 = Add("d2"), d3 = Add("d3"), q = Add("q");
  for (std::int64_t seq : {d1, d2, d3}) ASSERT_TRUE(repo().Fail(seq, 1, "broken", 0, true).ok());

  EXPECT_TRUE(repo().Replay(99, 1).IsNotFound());
  EXPECT_EQ(repo().Replay(q, 1).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(repo().Replay(d1, 7777).ok());
  auto replayed = repo().GetEvent(d1);
  EXPECT_EQ(replayed->state, "queued");
  EXPECT_EQ(replayed->attempts, 0);
  EXPECT_EQ(replayed->error, "broken");  // kept: why it died before
  EXPECT_EQ(replayed->next_ms, 7777);
  EXPECT_EQ(replayed->term, 0u);

  EXPECT_TRUE(repo().Purge(99).status().IsNotFound());
  EXPECT_EQ(repo().Purge(q).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*repo().Purge(d2), 1);
  EXPECT_TRUE(repo().GetEvent(d2).status().IsNotFound());
  EXPECT_EQ(*repo().Purge(0), 1);  // d3; d1 is queued again
  EXPECT_EQ(*repo().Purge(0), 0);
  EXPECT_TRUE(repo().GetEvent(d3).status().IsNotFound());
  EXPECT_EQ(State(d1), "queued");
  EXPECT_EQ(State(q), "queued");
  // A purged seq is never given again.
  EXPECT_GT(Add("after"), q);
}

TEST_F(SqliteSlurpRepositoryTest, ListingsFilterAndPageOldestFirst) {
  struct Case {
    std::string key, project, task, authors;
    std::int64_t created_ms;
  };
  const std::vector<Case> cases = {{"r1", "alpha", "t1", R"(["ann","bob"])", 100},
                                   {"r2", "alpha", "t2", R"(["anne"])", 200},
                                   {"r3", "beta", "t1", R"(["bob"])", 300},
                                   {"r4", "alpha", "t1", "[]", 400}};
  std::vector<std::int64_t> seqs;
  for (const auto& c : cases) {
    seqs.push_back(Add(c.key));
    ASSERT_TRUE(
        repo().Complete(seqs.back(), 1, SlurpRecord(c.project, c.task, c.authors, c.created_ms), 1).ok());
  }
  auto list = [&](slurp::RecordQuery q) {
    std::vector<std::int64_t> out;
    auto rows = repo().ListRecords(q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows.ok()) {
      for (const auto& r : *rows) out.push_back(r.event_seq);
    }
    return out;
  };
  using Seqs = std::vector<std::int64_t>;
  auto query = [](std::string project, std::string task, std::string author, std::int64_t since_ms = 0) {
    slurp::RecordQuery q;
    q.project = std::move(project);
    q.task_id = std::move(task);
    q.author = std::move(author);
    q.since_ms = since_ms;
    return q;
  };
  EXPECT_EQ(list({}), seqs);
  EXPECT_EQ(list(query("alpha", "", "")), (Seqs{seqs[0], seqs[1], seqs[3]}));
  EXPECT_EQ(list(query("alpha", "t1", "")), (Seqs{seqs[0], seqs[3]}));
  EXPECT_EQ(list(query("", "", "ann")), (Seqs{seqs[0]}));  // exact: not "anne"
  EXPECT_EQ(list(query("", "", "bob")), (Seqs{seqs[0], seqs[2]}));
  EXPECT_EQ(list(query("", "", "an")), Seqs{});
  EXPECT_EQ(list(query("", "", "", 200)), (Seqs{seqs[1], seqs[2], seqs[3]}));
  slurp::RecordQuery page_of_one;
  page_of_one.after_seq = seqs[1];
  page_of_one.limit = 1;
  EXPECT_EQ(list(page_of_one), (Seqs{seqs[2]}));

  // Events: by state and source, paged by seq.
  ASSERT_TRUE(repo().AddEvent(SlurpEvent("h1", 1, "hmmm"), 0).ok());
  const std::int64_t queued = Add("q1");
  auto events = [&](std::string state, std::string source, std::int64_t after_seq = 0,
                    std::size_t limit = 100) {
    slurp::EventQuery q;
    q.state = std::move(state);
    q.source = std::move(source);
    q.after_seq = after_seq;
    q.limit = limit;
    std::vector<std::string> keys;
    auto rows = repo().ListEvents(q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows.ok()) {
      for (const auto& e : *rows) keys.push_back(e.key);
    }
    return keys;
  };
  using Keys = std::vector<std::string>;
  EXPECT_EQ(events("queued", ""), (Keys{"h1", "q1"}));
  EXPECT_EQ(events("done", ""), (Keys{"r1", "r2", "r3", "r4"}));
  EXPECT_EQ(events("", "hmmm"), (Keys{"h1"}));
  EXPECT_EQ(events("", "", seqs[3]), (Keys{"h1", "q1"}));
  EXPECT_EQ(events("", "", 0, 2), (Keys{"r1", "r2"}));
  EXPECT_EQ(repo().GetEvent(queued)->key, "q1");
}

TEST_F(SqliteSlurpRepositoryTest, StatsCountByStateAndReportTheOldestQueuedAndTheFence) {
  auto empty = repo().Stats();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->queued + empty->dead + empty->done + empty->oldest_queued_ms, 0);
  const std::int64_t a = Add("a", 300), b = Add("b", 100), c = Add("c", 200);
  Add("d", 400);
  ASSERT_TRUE(repo().Fail(b, 4, "x", 0, true).ok());
  ASSERT_TRUE(repo().Complete(c, 4, SlurpRecord("p", "t", "[]", 1), 1).ok());
  (void)a;
  auto s = repo().Stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->queued, 2);
  EXPECT_EQ(s->dead, 1);
  EXPECT_EQ(s->done, 1);
  EXPECT_EQ(s->oldest_queued_ms, 300);
  EXPECT_EQ(s->newest_term, 4u);
}

TEST_F(SqliteSlurpRepositoryTest, UnmigratedIsFailedPreconditionAndClosedIsUnavailable) {
  SqliteOptions options;
  options.path = (dir_.path() / "fresh.db").string();
  auto fresh = sqlite::Open(options);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->slurp->Stats().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(fresh->slurp->AddEvent(SlurpEvent("k", 1), 10).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(fresh->slurp->AdmitTerm(1).status().code(), StatusCode::kFailedPrecondition);

  const std::int64_t seq = Add("k1");
  storage_.store->Close();
  EXPECT_EQ(repo().GetEvent(seq).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(repo().AdmitTerm(1).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace bzzz::storage
