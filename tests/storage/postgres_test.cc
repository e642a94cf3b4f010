// The PostgreSQL backend against a real server started for this binary on
// loopback (support/services.h): migrations (also from several nodes at
// once), every repository with the SQLite backend's semantics, per-node
// scoping in a shared database, the pool, the server restarting or
// killing connections under the store, and backups that round-trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "storage/postgres/database.h"
#include "storage/postgres/postgres.h"
#include "storage/sqlite/sqlite.h"
#include "storage/store.h"
#include "support/services.h"
#include "support/support.h"

namespace bzzz::storage::postgres {
namespace {

using bzzz::testing::PostgresServer;
using bzzz::testing::TempDir;

PostgresServer* server = nullptr;

class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    server = new PostgresServer();
    ASSERT_TRUE(server->ok()) << server->error();
  }
  void TearDown() override {
    delete server;
    server = nullptr;
  }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// Every test gets a database of its own.
std::string FreshDatabase() {
  static std::atomic<int> next{0};
  const std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(next++);
  EXPECT_EQ(server->CreateDatabase(name), name);
  return name;
}

PostgresOptions OptionsFor(const std::string& database, const std::string& node = "node-a") {
  PostgresOptions o;
  o.host = "127.0.0.1";
  o.port = server->port();
  o.database = database;
  o.user = "postgres";
  o.sslmode = "disable";
  o.min_connections = 1;
  o.max_connections = 4;
  o.acquire_timeout = std::chrono::milliseconds(2000);
  o.node_id = node;
  return o;
}

Storage OpenOrDie(const PostgresOptions& o, bool migrate = true) {
  auto s = Open(o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  if (migrate) {
    auto m = s->store->Migrate();
    EXPECT_TRUE(m.ok()) << m.status().message();
  }
  return *s;
}

tasks::TaskRow Task(const std::string& id, const std::string& state, std::int64_t seq, const std::string& key = "") {
  tasks::TaskRow r;
  r.id = id;
  r.idempotency_key = key;
  r.state = state;
  r.executor = "noop";
  r.project = "p";
  r.priority = 1;
  r.created_ms = 1000 + seq;
  r.updated_ms = 2000 + seq;
  r.seq = seq;
  r.doc = R"({"id":")" + id + R"("})";
  return r;
}

TEST(PostgresMigrationsTest, DomainsAndVersionsMatchTheSqliteBackend) {
  const auto& pg = Migrations();
  const auto& lite = sqlite::Migrations();
  ASSERT_EQ(pg.size(), lite.size());
  for (std::size_t i = 0; i < pg.size(); ++i) {
    EXPECT_EQ(pg[i].domain, lite[i].domain);
    ASSERT_EQ(pg[i].steps.size(), lite[i].steps.size()) << pg[i].domain;
    for (std::size_t j = 0; j < pg[i].steps.size(); ++j) {
      EXPECT_EQ(pg[i].steps[j].version, lite[i].steps[j].version);
      EXPECT_EQ(pg[i].steps[j].name, lite[i].steps[j].name);
    }
  }
}

TEST(PostgresStoreTest, MigrateAppliesEveryStepOnceAndReportsTheSchema) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()), false);
  ASSERT_TRUE(s.store);
  EXPECT_EQ(s.store->Backend(), "postgres");
  auto before = s.store->SchemaState();
  ASSERT_TRUE(before.ok()) << before.status().message();
  EXPECT_EQ(before->current_version, 0);
  auto first = s.store->Migrate();
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->current_version, first->latest_version);
  EXPECT_EQ(first->applied.size(), static_cast<std::size_t>(first->latest_version));
  auto second = s.store->Migrate();
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->applied.empty());
  const StoreHealth h = s.store->HealthCheck();
  EXPECT_TRUE(h.reachable);
  EXPECT_TRUE(h.integrity_ok);
  EXPECT_EQ(h.message, "ok");
  EXPECT_EQ(h.backend, "postgres");
  EXPECT_EQ(h.schema_version, h.latest_version);
  EXPECT_GT(h.size_bytes, 0u);
  EXPECT_TRUE(h.pool.present);
  EXPECT_EQ(h.pool.max, 4);
  EXPECT_EQ(h.location.find("password"), std::string::npos);
}

TEST(PostgresStoreTest, NodesMigratingTheSameDatabaseAtOnceApplyEachStepOnce) {
  const std::string db = FreshDatabase();
  constexpr int kNodes = 6;
  std::vector<std::thread> threads;
  std::atomic<int> applied{0}, failed{0};
  for (int i = 0; i < kNodes; ++i) {
    threads.emplace_back([&, i] {
      auto s = Open(OptionsFor(db, "node-" + std::to_string(i)));
      if (!s.ok()) {
        ++failed;
        return;
      }
      auto m = s->store->Migrate();
      if (!m.ok()) {
        ++failed;
        return;
      }
      applied += static_cast<int>(m->applied.size());
      if (m->current_version != m->latest_version) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  int latest = 0;
  for (const auto& d : Migrations()) latest += static_cast<int>(d.steps.size());
  EXPECT_EQ(applied.load(), latest);
  EXPECT_EQ(server->Sql("SELECT COUNT(*) FROM schema_migrations", db), std::to_string(latest));
}

TEST(PostgresStoreTest, BeforeMigrationTheRepositoriesSayToMigrate) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()), false);
  auto meta = s.store->GetMeta("x");
  EXPECT_EQ(meta.status().code(), StatusCode::kFailedPrecondition) << meta.status().message();
  auto task = s.tasks->GetTask("t");
  EXPECT_EQ(task.status().code(), StatusCode::kFailedPrecondition);
  const StoreHealth h = s.store->HealthCheck();
  EXPECT_TRUE(h.reachable);
  EXPECT_NE(h.message.find("pending migration"), std::string::npos) << h.message;
}

TEST(PostgresStoreTest, NodeMetaIsPerNode) {
  const std::string db = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(db, "node-a"));
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  EXPECT_EQ(a.store->GetMeta("k").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(a.store->PutMeta("k", "one").ok());
  ASSERT_TRUE(a.store->PutMeta("k", "two").ok());
  EXPECT_EQ(*a.store->GetMeta("k"), "two");
  EXPECT_EQ(b.store->GetMeta("k").status().code(), StatusCode::kNotFound);
}

TEST(PostgresStoreTest, WithoutANodeIdOnlyTheStoreWorks) {
  const std::string db = FreshDatabase();
  Storage s = OpenOrDie(OptionsFor(db, ""));
  EXPECT_TRUE(s.store->TestConnection().ok());
  EXPECT_EQ(s.tasks->GetTask("t").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.store->PutMeta("k", "v").code(), StatusCode::kFailedPrecondition);
}

TEST(PostgresTaskRepositoryTest, WritesReadsListsAndCountsLikeTheSqliteBackend) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  const Status written =
      s.tasks->WriteTasks({Task("t1", "queued", 1, "k1"), Task("t2", "running", 2), Task("t3", "queued", 3)}, {});
  ASSERT_TRUE(written.ok()) << written.message();
  auto t1 = s.tasks->GetTask("t1");
  ASSERT_TRUE(t1.ok()) << t1.status().message();
  EXPECT_EQ(*t1, Task("t1", "queued", 1, "k1"));
  EXPECT_EQ(s.tasks->FindTaskByIdempotencyKey("k1")->id, "t1");
  EXPECT_EQ(s.tasks->GetTask("nope").status().code(), StatusCode::kNotFound);

  // Updates change state, priority, updated_ms and doc; deletes remove.
  tasks::TaskRow done = Task("t2", "succeeded", 2);
  done.updated_ms = 9999;
  ASSERT_TRUE(s.tasks->WriteTasks({done}, {"t3"}).ok());
  EXPECT_EQ(s.tasks->GetTask("t2")->state, "succeeded");
  EXPECT_EQ(s.tasks->GetTask("t2")->updated_ms, 9999);
  EXPECT_EQ(s.tasks->GetTask("t3").status().code(), StatusCode::kNotFound);

  tasks::TaskQuery all;
  auto listed = s.tasks->ListTasks(all);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "t2");  // newest first
  tasks::TaskQuery queued;
  queued.state = "queued";
  EXPECT_EQ(s.tasks->ListTasks(queued)->size(), 1u);
  tasks::TaskQuery page;
  page.before_seq = 2;
  EXPECT_EQ(s.tasks->ListTasks(page)->front().id, "t1");

  auto in_states = s.tasks->TasksInStates({"succeeded", "queued"});
  ASSERT_TRUE(in_states.ok());
  ASSERT_EQ(in_states->size(), 2u);
  EXPECT_EQ((*in_states)[0].id, "t1");  // oldest first

  auto totals = s.tasks->TaskStats();
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->max_seq, 2);
  ASSERT_EQ(totals->by_state.size(), 2u);
}

TEST(PostgresTaskRepositoryTest, AConflictingIdempotencyKeyRefusesTheWholeBatch) {
  const std::string db = FreshDatabase();
  Storage s = OpenOrDie(OptionsFor(db));
  // Only keyed tasks are in the key's index (tasks/3).
  EXPECT_EQ(server->Sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'tasks_by_key'", db),
            "EXCLUDE USING btree (node_id WITH =, idempotency_key WITH =) WHERE ((idempotency_key IS NOT NULL)) "
            "DEFERRABLE INITIALLY DEFERRED");
  ASSERT_TRUE(s.tasks->WriteTasks({Task("t1", "queued", 1, "same")}, {}).ok());
  const Status st = s.tasks->WriteTasks({Task("t2", "queued", 2), Task("t3", "queued", 3, "same")}, {});
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.message();
  EXPECT_EQ(s.tasks->GetTask("t2").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(s.tasks->GetTask("t1").ok());
  // Uniqueness is checked at COMMIT: a batch may take a key from one task
  // and give it to another (what a takeover's adoption writes).
  tasks::TaskRow keyless = Task("t1", "queued", 1);
  ASSERT_TRUE(s.tasks->WriteTasks({Task("t4", "queued", 4, "same"), keyless}, {}).ok());
  EXPECT_EQ(s.tasks->FindTaskByIdempotencyKey("same")->id, "t4");
}

TEST(PostgresTaskRepositoryTest, NodesSeeOnlyTheirOwnTasksAndCannotOverwriteAnothers) {
  const std::string db = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(db, "node-a"));
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  ASSERT_TRUE(a.tasks->WriteTasks({Task("shared-id", "queued", 1, "k")}, {}).ok());
  // The same idempotency key on another node is another task.
  ASSERT_TRUE(b.tasks->WriteTasks({Task("b1", "queued", 1, "k")}, {}).ok());
  EXPECT_EQ(b.tasks->GetTask("shared-id").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b.tasks->ListTasks({})->size(), 1u);
  const Status st = b.tasks->WriteTasks({Task("shared-id", "succeeded", 2)}, {});
  EXPECT_EQ(st.code(), StatusCode::kConflict) << st.message();
  EXPECT_EQ(a.tasks->GetTask("shared-id")->state, "queued");
  // Deleting another node's id deletes nothing.
  ASSERT_TRUE(b.tasks->WriteTasks({}, {"shared-id"}).ok());
  EXPECT_TRUE(a.tasks->GetTask("shared-id").ok());
}

TEST(PostgresOwnershipTest, AnExpiredOwnersOpenTasksMoveAndItsWritesAreFenced) {
  using namespace std::chrono_literals;
  const std::string db = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(db, "node-a"));
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  tasks::TaskOwnership* oa = a.tasks->Ownership();
  tasks::TaskOwnership* ob = b.tasks->Ownership();
  ASSERT_NE(oa, nullptr);
  ASSERT_TRUE(oa->Claim(400ms).ok());
  ASSERT_TRUE(ob->Claim(60s).ok());
  ASSERT_TRUE(a.tasks->WriteTasks({Task("q1", "queued", 1, "k"), Task("r1", "running", 2, "own"),
                                   Task("d1", "succeeded", 3)},
                                  {})
                  .ok());
  ASSERT_TRUE(b.tasks->WriteTasks({Task("b1", "queued", 1, "k")}, {}).ok());
  EXPECT_TRUE(ob->ExpiredOwners()->empty());
  EXPECT_TRUE(ob->TakeOver("node-a")->empty()) << "a live lease is not taken over";

  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(*ob->ExpiredOwners(), std::vector<std::string>{"node-a"});
  auto moved = ob->TakeOver("node-a");
  ASSERT_TRUE(moved.ok()) << moved.status().message();
  ASSERT_EQ(moved->size(), 2u) << "only the unfinished tasks move";
  std::map<std::string, tasks::TaskRow> by_id;
  for (const auto& r : *moved) by_id[r.id] = r;
  EXPECT_EQ(by_id["q1"].idempotency_key, "") << "b uses k already";
  EXPECT_EQ(by_id["r1"].idempotency_key, "own");
  EXPECT_TRUE(ob->ExpiredOwners()->empty());
  EXPECT_TRUE(ob->TakeOver("node-a")->empty()) << "nothing left";

  // The old owner comes back: its writes and its renewal are refused.
  const Status late = a.tasks->WriteTasks({Task("q1", "succeeded", 1, "k")}, {});
  EXPECT_EQ(late.code(), StatusCode::kConflict) << late.message();
  EXPECT_TRUE(oa->Fenced());
  EXPECT_EQ(oa->Renew(400ms).code(), StatusCode::kConflict);
  EXPECT_EQ(b.tasks->GetTask("q1")->state, "queued");
  EXPECT_EQ(a.tasks->GetTask("q1").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(a.tasks->GetTask("d1").ok());

  // Every node reads every task; listings page by id.
  EXPECT_EQ(oa->GetAnyTask("b1")->id, "b1");
  EXPECT_EQ(ob->GetAnyTask("d1")->state, "succeeded");
  EXPECT_EQ(ob->GetAnyTask("nope").status().code(), StatusCode::kNotFound);
  tasks::ClusterTaskQuery all;
  auto listed = ob->ListAllTasks(all);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 4u);
  EXPECT_EQ((*listed)[0].second.id, "r1");  // newest id first: r1, q1, d1, b1
  std::map<std::string, std::string> owners;
  for (const auto& [node, row] : *listed) owners[row.id] = node;
  EXPECT_EQ(owners["q1"], "node-b");
  EXPECT_EQ(owners["d1"], "node-a");
  tasks::ClusterTaskQuery page;
  page.limit = 2;
  page.before_id = "q1";
  auto rest = ob->ListAllTasks(page);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].second.id, "d1");
  tasks::ClusterTaskQuery only_a;
  only_a.node = "node-a";
  EXPECT_EQ(ob->ListAllTasks(only_a)->size(), 1u);

  // A new term: the old owner writes again, what is still its own.
  ASSERT_TRUE(oa->Claim(60s).ok());
  EXPECT_FALSE(oa->Fenced());
  EXPECT_TRUE(a.tasks->WriteTasks({Task("a2", "queued", 4)}, {}).ok());
  // The taker writes the adopted task back with its key.
  EXPECT_TRUE(b.tasks->WriteTasks({Task("r1", "queued", 2, "own")}, {}).ok());
  EXPECT_EQ(b.tasks->FindTaskByIdempotencyKey("own")->id, "r1");
}

TEST(PostgresOwnershipTest, OfSurvivorsRacingForOneOwnerExactlyOneTakesItsTasks) {
  using namespace std::chrono_literals;
  const std::string db = FreshDatabase();
  Storage dead = OpenOrDie(OptionsFor(db, "dead"));
  ASSERT_TRUE(dead.tasks->Ownership()->Claim(200ms).ok());
  std::vector<tasks::TaskRow> rows;
  for (int i = 0; i < 200; ++i) rows.push_back(Task("t" + std::to_string(1000 + i), "queued", i + 1));
  ASSERT_TRUE(dead.tasks->WriteTasks(rows, {}).ok());
  std::this_thread::sleep_for(400ms);
  constexpr int kSurvivors = 4;
  std::vector<Storage> survivors;
  for (int i = 0; i < kSurvivors; ++i) {
    survivors.push_back(OpenOrDie(OptionsFor(db, "s" + std::to_string(i)), false));
    ASSERT_TRUE(survivors.back().tasks->Ownership()->Claim(60s).ok());
  }
  std::vector<std::size_t> got(kSurvivors);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSurvivors; ++i) {
    threads.emplace_back([&, i] {
      auto r = survivors[i].tasks->Ownership()->TakeOver("dead");
      got[i] = r.ok() ? r->size() : 0;
    });
  }
  for (auto& t : threads) t.join();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 0, 0, 200}));
  EXPECT_EQ(server->Sql("SELECT COUNT(DISTINCT node_id) FROM tasks", db), "1");
}

ucxl::ContextVersion Version(const std::string& key, bool tombstone = false) {
  ucxl::ContextVersion v;
  v.key = key;
  v.author_agent = "agent";
  v.author_role = "dev";
  v.created_ms = 123;
  v.logical = 2;
  v.content_type = "text/plain";
  v.size = 3;
  v.content_hash = "abc";
  v.tombstone = tombstone;
  return v;
}

TEST(PostgresContextRepositoryTest, AppendsNumberPerKeyAndKeepBinaryContent) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  const std::string binary("a\0b\xff\x01", 5);
  auto v1 = s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/x"), binary);
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  EXPECT_EQ(v1->number, 1u);
  EXPECT_EQ(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/x"), "two")->number, 2u);
  EXPECT_EQ(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/y"), "other")->number, 1u);
  EXPECT_EQ(*s.contexts->ContextContent("ucxl://a:r@p:t/x", 1), binary);
  EXPECT_EQ(s.contexts->ContextContent("ucxl://a:r@p:t/x", 9).status().code(), StatusCode::kNotFound);
  auto history = s.contexts->ContextHistory("ucxl://a:r@p:t/x");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].logical, 2u);
  EXPECT_EQ((*history)[0].author_role, "dev");
  auto totals = s.contexts->ContextStats();
  EXPECT_EQ(totals->versions, 3u);
  EXPECT_EQ(totals->bytes, 5u + 3u + 5u);

  ASSERT_TRUE(s.contexts->ReplaceContextContent("ucxl://a:r@p:t/x", 2, "TWO").ok());
  EXPECT_EQ(*s.contexts->ContextContent("ucxl://a:r@p:t/x", 2), "TWO");
  EXPECT_EQ(s.contexts->ReplaceContextContent("ucxl://a:r@p:t/x", 7, "z").code(), StatusCode::kNotFound);

  auto after = s.contexts->ContextVersionsAfter("ucxl://a:r@p:t/x", 1, 10);
  ASSERT_TRUE(after.ok()) << after.status().message();
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].first.number, 2u);
  EXPECT_EQ((*after)[1].first.key, "ucxl://a:r@p:t/y");
  EXPECT_EQ((*after)[1].second, "other");
}

TEST(PostgresContextRepositoryTest, SearchSeesTheLatestLiveVersionOfEachKey) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  ASSERT_TRUE(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/live"), "needle here").ok());
  ASSERT_TRUE(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/gone"), "needle").ok());
  ASSERT_TRUE(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/gone", true), "").ok());
  ASSERT_TRUE(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/moved"), "needle").ok());
  ASSERT_TRUE(s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/moved"), "haystack").ok());
  auto found = s.contexts->SearchContext("needle", 10);
  ASSERT_TRUE(found.ok()) << found.status().message();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].key, "ucxl://a:r@p:t/live");
  EXPECT_EQ(s.contexts->SearchContext("", 10)->size(), 2u);
  EXPECT_EQ(s.contexts->SearchContext("", 1)->size(), 1u);
}

TEST(PostgresContextRepositoryTest, ConcurrentAppendsToOneKeyGetDistinctConsecutiveNumbers) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        if (!s.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/hot"), "x").ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto history = s.contexts->ContextHistory("ucxl://a:r@p:t/hot");
  ASSERT_EQ(history->size(), static_cast<std::size_t>(kThreads * kEach));
  for (std::size_t i = 0; i < history->size(); ++i) EXPECT_EQ((*history)[i].number, i + 1);
}

audit::AuditRow Entry(std::int64_t seq, const std::string& node = "node-a", const std::string& kind = "admin_action") {
  audit::AuditRow r;
  r.seq = seq;
  r.time_ms = 1000 * seq;
  r.node_id = node;
  r.kind = kind;
  r.principal = "ops";
  r.action = "POST /api/v1/dlq/" + std::to_string(seq);
  r.outcome = "ok";
  r.details = "{}";
  r.prev_hash = "p" + std::to_string(seq);
  r.hash = "h" + std::to_string(seq);
  r.signature = "s";
  return r;
}

TEST(PostgresAuditRepositoryTest, AppendsMoveTheHeadAndListingFilters) {
  const std::string db = FreshDatabase();
  Storage s = OpenOrDie(OptionsFor(db));
  EXPECT_EQ(s.audit->ReadAuditHead()->seq, 0);
  ASSERT_TRUE(s.audit->AppendAudit({Entry(1), Entry(2, "node-a", "auth_failure"), Entry(3)}).ok());
  auto head = s.audit->ReadAuditHead();
  EXPECT_EQ(head->seq, 3);
  EXPECT_EQ(head->hash, "h3");
  EXPECT_EQ(s.audit->AppendAudit({Entry(3)}).code(), StatusCode::kConflict);
  EXPECT_EQ(s.audit->ReadAuditHead()->seq, 3);
  EXPECT_EQ(s.audit->AppendAudit({Entry(4, "node-b")}).code(), StatusCode::kInvalidArgument);

  audit::AuditQuery q;
  auto newest = s.audit->ListAudit(q);
  ASSERT_TRUE(newest.ok()) << newest.status().message();
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].seq, 3);
  EXPECT_EQ((*newest)[0], Entry(3));
  q.kind = "auth_failure";
  EXPECT_EQ(s.audit->ListAudit(q)->size(), 1u);
  audit::AuditQuery asc;
  asc.ascending = true;
  asc.after_seq = 1;
  asc.action_prefix = "POST /api/v1/dlq/";
  auto page = s.audit->ListAudit(asc);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].seq, 2);
  audit::AuditQuery window;
  window.since_ms = 2000;
  window.until_ms = 3000;
  EXPECT_EQ(s.audit->ListAudit(window)->size(), 1u);

  // Another node's chain is its own.
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  EXPECT_EQ(b.audit->ReadAuditHead()->seq, 0);
  ASSERT_TRUE(b.audit->AppendAudit({Entry(1, "node-b")}).ok());
  EXPECT_EQ(b.audit->ListAudit({})->size(), 1u);
}

// ---- slurp (slurp/repository.h): one queue for the cluster ----

slurp::EventRow SlurpEvent(const std::string& key, std::int64_t accepted_ms,
                           const std::string& node = "node-a", const std::string& source = "api") {
  slurp::EventRow e;
  e.key = key;
  e.source = source;
  e.project = "bzzz";
  e.task_id = "t-" + key;
  e.payload = R"({"summary":")" + key + R"("})";
  e.payload_sha256 = std::string(64, 'a');
  e.accepted_ms = accepted_ms;
  e.accepted_by = node;
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

std::int64_t AddSlurp(slurp::SlurpRepository& repo, const std::string& key, std::int64_t accepted_ms = 1000) {
  auto added = repo.AddEvent(SlurpEvent(key, accepted_ms), 0);
  EXPECT_TRUE(added.ok()) << added.status().message();
  return added.ok() ? added->first.seq : 0;
}

std::vector<std::int64_t> DueSeqs(slurp::SlurpRepository& repo, std::int64_t now_ms,
                                  std::size_t limit = 100) {
  std::vector<std::int64_t> out;
  auto due = repo.DueEvents(now_ms, limit);
  EXPECT_TRUE(due.ok()) << due.status().message();
  if (due.ok()) {
    for (const auto& e : *due) out.push_back(e.seq);
  }
  return out;
}

TEST(PostgresSlurpRepositoryTest, AddEventIsIdempotentByKeyAndBoundedByTheCapacity) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  slurp::SlurpRepository& repo = *s.slurp;
  EXPECT_TRUE(repo.Shared());
  auto first = repo.AddEvent(SlurpEvent("k1", 1000), 2);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->second);
  const slurp::EventRow stored = first->first;
  EXPECT_EQ(stored.seq, 1);
  EXPECT_EQ(stored.state, "queued");
  EXPECT_EQ(stored.attempts, 0);
  EXPECT_EQ(stored.next_ms, 1000);
  EXPECT_EQ(*repo.GetEvent(1), stored);
  EXPECT_EQ(*repo.GetEventByKey("k1"), stored);
  slurp::EventRow again = SlurpEvent("k1", 5000);
  again.payload = "{}";
  auto second = repo.AddEvent(again, 2);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first, stored);

  ASSERT_TRUE(repo.AddEvent(SlurpEvent("k2", 1000), 2).ok());
  auto full = repo.AddEvent(SlurpEvent("k3", 1000), 2);
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted) << full.status().message();
  EXPECT_EQ(repo.GetEventByKey("k3").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(repo.AddEvent(SlurpEvent("k1", 1000), 2)->second);     // a known key is answered when full
  EXPECT_EQ(repo.AddEvent(SlurpEvent("k3", 1000), 0)->first.seq, 3);  // 0: no capacity
  EXPECT_EQ(repo.GetEvent(99).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.AddEvent(SlurpEvent("", 1), 0).status().code(), StatusCode::kInvalidArgument);
}

TEST(PostgresSlurpRepositoryTest, DueEventsCompleteFailAndTheFence) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  slurp::SlurpRepository& repo = *s.slurp;
  const std::int64_t a = AddSlurp(repo, "a", 100), b = AddSlurp(repo, "b", 50), c = AddSlurp(repo, "c", 200);
  EXPECT_EQ(DueSeqs(repo, 150), (std::vector<std::int64_t>{a, b}));
  EXPECT_EQ(DueSeqs(repo, 150, 1), (std::vector<std::int64_t>{a}));

  // Fail: a retry waits for next_ms; then dead, with the term.
  ASSERT_TRUE(repo.Fail(a, 1, "timeout", 500, false).ok());
  auto retry = repo.GetEvent(a);
  EXPECT_EQ(retry->state, "queued");
  EXPECT_EQ(retry->attempts, 1);
  EXPECT_EQ(retry->error, "timeout");
  EXPECT_EQ(retry->term, 0u);
  EXPECT_EQ(DueSeqs(repo, 150), (std::vector<std::int64_t>{b}));
  EXPECT_EQ(DueSeqs(repo, 500), (std::vector<std::int64_t>{a, b, c}));
  ASSERT_TRUE(repo.Fail(a, 1, "bad payload", 600, true).ok());
  auto dead = repo.GetEvent(a);
  EXPECT_EQ(dead->state, "dead");
  EXPECT_EQ(dead->attempts, 2);
  EXPECT_EQ(dead->term, 1u);
  EXPECT_EQ(repo.Fail(a, 1, "again", 700, true).code(), StatusCode::kConflict);

  // Complete: the event done and its record, once.
  const slurp::RecordRow record = SlurpRecord("bzzz", "t-b", R"(["ann","bob"])", 2000);
  ASSERT_TRUE(repo.Complete(b, 3, record, 2500).ok());
  auto done = repo.GetEvent(b);
  EXPECT_EQ(done->state, "done");
  EXPECT_EQ(done->term, 3u);
  EXPECT_EQ(done->address, record.address);
  EXPECT_EQ(done->processed_ms, 2500);
  slurp::RecordRow expected = record;
  expected.event_seq = b;
  expected.term = 3;
  EXPECT_EQ(*repo.GetRecord(b), expected);
  const Status twice = repo.Complete(b, 3, SlurpRecord("x", "y", "[]", 1), 1);
  EXPECT_EQ(twice.code(), StatusCode::kConflict) << twice.message();
  EXPECT_EQ(*repo.GetRecord(b), expected);
  EXPECT_EQ(repo.Complete(99, 3, record, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.GetRecord(99).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.Complete(c, 3, SlurpRecord("p", "t", "not json", 1), 1).code(),
            StatusCode::kInvalidArgument);

  // The fence: after term 5, writes of term 4 change nothing; term 6 raises it.
  EXPECT_EQ(*repo.AdmitTerm(5), 5u);
  const Status fenced = repo.Complete(c, 4, SlurpRecord("p", "t", "[]", 1), 1);
  EXPECT_EQ(fenced.code(), StatusCode::kFailedPrecondition) << fenced.message();
  EXPECT_EQ(repo.Fail(c, 4, "x", 1, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(repo.AdmitTerm(4).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(repo.GetEvent(c)->state, "queued");
  EXPECT_EQ(repo.GetEvent(c)->attempts, 0);
  EXPECT_EQ(repo.GetRecord(c).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.Stats()->newest_term, 5u);
  ASSERT_TRUE(repo.Complete(c, 6, SlurpRecord("p", "t", "[]", 1), 1).ok());
  EXPECT_EQ(repo.Stats()->newest_term, 6u);
  EXPECT_EQ(repo.AdmitTerm(5).status().code(), StatusCode::kFailedPrecondition);
  // A Conflict leaves the fence alone too.
  EXPECT_EQ(repo.Complete(c, 9, SlurpRecord("p", "t", "[]", 1), 1).code(), StatusCode::kConflict);
  EXPECT_EQ(repo.Stats()->newest_term, 6u);
}

TEST(PostgresSlurpRepositoryTest, DeadLettersListingsAndStats) {
  Storage s = OpenOrDie(OptionsFor(FreshDatabase()));
  slurp::SlurpRepository& repo = *s.slurp;
  auto empty = repo.Stats();
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(empty->queued + empty->dead + empty->done + empty->oldest_queued_ms, 0);
  EXPECT_EQ(empty->newest_term, 0u);

  const std::int64_t d1 = AddSlurp(repo, "d1", 500), d2 = AddSlurp(repo, "d2"), d3 = AddSlurp(repo, "d3");
  const std::int64_t q = AddSlurp(repo, "q", 300);
  for (std::int64_t seq : {d1, d2, d3}) ASSERT_TRUE(repo.Fail(seq, 2, "broken", 0, true).ok());
  EXPECT_EQ(repo.Replay(99, 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.Replay(q, 1).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(repo.Replay(d1, 7777).ok());
  auto replayed = repo.GetEvent(d1);
  EXPECT_EQ(replayed->state, "queued");
  EXPECT_EQ(replayed->attempts, 0);
  EXPECT_EQ(replayed->error, "broken");
  EXPECT_EQ(replayed->next_ms, 7777);
  EXPECT_EQ(replayed->term, 0u);
  EXPECT_EQ(repo.Purge(99).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.Purge(q).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(*repo.Purge(d2), 1);
  EXPECT_EQ(repo.GetEvent(d2).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(repo.Fail(d1, 2, "broken again", 0, true).ok());
  auto stats = repo.Stats();
  EXPECT_EQ(stats->queued, 1);
  EXPECT_EQ(stats->dead, 2);
  EXPECT_EQ(stats->oldest_queued_ms, 300);
  EXPECT_EQ(stats->newest_term, 2u);
  EXPECT_EQ(*repo.Purge(0), 2);
  EXPECT_EQ(*repo.Purge(0), 0);
  EXPECT_EQ(repo.GetEvent(q)->state, "queued");
  EXPECT_GT(AddSlurp(repo, "after"), q);  // a purged seq is never given again

  // Records: filters by project, task, one author (exact), time; pages.
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
    seqs.push_back(AddSlurp(repo, c.key));
    ASSERT_TRUE(
        repo.Complete(seqs.back(), 2, SlurpRecord(c.project, c.task, c.authors, c.created_ms), 1).ok());
  }
  auto list = [&](std::string project, std::string task, std::string author, std::int64_t since_ms = 0,
                  std::int64_t after_seq = 0, std::size_t limit = 100) {
    slurp::RecordQuery rq;
    rq.project = std::move(project);
    rq.task_id = std::move(task);
    rq.author = std::move(author);
    rq.since_ms = since_ms;
    rq.after_seq = after_seq;
    rq.limit = limit;
    std::vector<std::int64_t> out;
    auto rows = repo.ListRecords(rq);
    EXPECT_TRUE(rows.ok()) << rows.status().message();
    if (rows.ok()) {
      for (const auto& r : *rows) out.push_back(r.event_seq);
    }
    return out;
  };
  using Seqs = std::vector<std::int64_t>;
  EXPECT_EQ(list("", "", ""), seqs);
  EXPECT_EQ(list("alpha", "", ""), (Seqs{seqs[0], seqs[1], seqs[3]}));
  EXPECT_EQ(list("alpha", "t1", ""), (Seqs{seqs[0], seqs[3]}));
  EXPECT_EQ(list("", "", "ann"), (Seqs{seqs[0]}));
  EXPECT_EQ(list("", "", "bob"), (Seqs{seqs[0], seqs[2]}));
  EXPECT_EQ(list("", "", "an"), Seqs{});
  EXPECT_EQ(list("", "", "", 200), (Seqs{seqs[1], seqs[2], seqs[3]}));
  EXPECT_EQ(list("", "", "", 0, seqs[1], 1), (Seqs{seqs[2]}));

  slurp::EventQuery eq;
  eq.state = "done";
  EXPECT_EQ(repo.ListEvents(eq)->size(), 4u);
  ASSERT_TRUE(repo.AddEvent(SlurpEvent("h1", 1, "node-a", "hmmm"), 0).ok());
  slurp::EventQuery by_source;
  by_source.source = "hmmm";
  EXPECT_EQ(repo.ListEvents(by_source)->front().key, "h1");
  slurp::EventQuery page;
  page.after_seq = seqs[3];
  auto after = repo.ListEvents(page);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().key, "h1");
  page.after_seq = 0;
  page.limit = 2;
  EXPECT_EQ(repo.ListEvents(page)->back().key, "after");  // q, after: d1, d2 and d3 are purged
}

TEST(PostgresSlurpRepositoryTest, NodesShareOneQueueAndOneFence) {
  const std::string db = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(db, "node-a"));
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  auto added = a.slurp->AddEvent(SlurpEvent("k1", 1000, "node-a"), 0);
  ASSERT_TRUE(added.ok()) << added.status().message();
  const std::int64_t seq = added->first.seq;
  // node-b sees node-a's event, and its key is taken for the cluster.
  EXPECT_EQ(*b.slurp->GetEventByKey("k1"), added->first);
  EXPECT_EQ(DueSeqs(*b.slurp, 1000), std::vector<std::int64_t>{seq});
  auto dup = b.slurp->AddEvent(SlurpEvent("k1", 2000, "node-b"), 0);
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(dup->second);
  EXPECT_EQ(dup->first.accepted_by, "node-a");
  EXPECT_EQ(b.slurp->AddEvent(SlurpEvent("k2", 2000, "node-b"), 0)->first.seq, seq + 1);
  EXPECT_EQ(a.slurp->Stats()->queued, 2);

  // node-b, admin of term 7, fences node-a's term 6.
  ASSERT_TRUE(b.slurp->AdmitTerm(7).ok());
  EXPECT_EQ(a.slurp->Complete(seq, 6, SlurpRecord("bzzz", "t", "[]", 1), 1).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b.slurp->Complete(seq, 7, SlurpRecord("bzzz", "t", "[]", 1), 1).ok());
  EXPECT_EQ(a.slurp->GetEvent(seq)->state, "done");
  EXPECT_TRUE(a.slurp->GetRecord(seq).ok());

  // Two nodes completing one event at once: exactly one does.
  const std::int64_t contested = a.slurp->AddEvent(SlurpEvent("k3", 1000), 0)->first.seq;
  std::atomic<int> ok{0}, conflict{0}, other{0};
  std::vector<std::thread> threads;
  for (Storage* s : {&a, &b}) {
    threads.emplace_back([&, s] {
      const Status st = s->slurp->Complete(contested, 7, SlurpRecord("bzzz", "t", "[]", 1), 1);
      if (st.ok()) {
        ++ok;
      } else if (st.code() == StatusCode::kConflict) {
        ++conflict;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflict.load(), 1);
  EXPECT_EQ(other.load(), 0);
}

TEST(PostgresSlurpRepositoryTest, ConcurrentAddsFromTwoNodesNeverExceedTheCapacity) {
  const std::string db = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(db, "node-a"));
  Storage b = OpenOrDie(OptionsFor(db, "node-b"));
  constexpr int kThreadsPerNode = 3, kEventsPerThread = 15, kCapacity = 10;
  std::atomic<int> inserted{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  for (int node = 0; node < 2; ++node) {
    for (int t = 0; t < kThreadsPerNode; ++t) {
      threads.emplace_back([&, node, t] {
        Storage& s = node == 0 ? a : b;
        for (int i = 0; i < kEventsPerThread; ++i) {
          const std::string key =
              "n" + std::to_string(node) + "-t" + std::to_string(t) + "-" + std::to_string(i);
          auto r = s.slurp->AddEvent(SlurpEvent(key, 1000, node == 0 ? "node-a" : "node-b"), kCapacity);
          if (r.ok() && r->second) {
            ++inserted;
          } else if (r.status().code() == StatusCode::kResourceExhausted) {
            ++exhausted;
          } else {
            ++other;
          }
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(inserted.load(), kCapacity);
  EXPECT_EQ(exhausted.load(), 2 * kThreadsPerNode * kEventsPerThread - kCapacity);
  EXPECT_EQ(a.slurp->Stats()->queued, kCapacity);
  EXPECT_EQ(server->Sql("SELECT COUNT(*) FROM slurp_events", db), std::to_string(kCapacity));
}

TEST(PostgresPoolTest, ACallerWaitsForAFreeConnectionThenGivesUp) {
  auto o = OptionsFor(FreshDatabase());
  o.min_connections = 1;
  o.max_connections = 2;
  o.acquire_timeout = std::chrono::milliseconds(300);
  auto db = Database::Open(o);
  ASSERT_TRUE(db.ok()) << db.status().message();
  auto first = (*db)->pool().Acquire();
  auto second = (*db)->pool().Acquire();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*db)->pool().Stats().in_use, 2);
  auto third = (*db)->pool().Acquire();
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(third.status().message().find("no free PostgreSQL connection"), std::string::npos);
  EXPECT_EQ((*db)->pool().Stats().timeouts, 1u);
  // A connection given back wakes a waiter.
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto gone = std::move(first).value();
  });
  auto fourth = (*db)->pool().Acquire();
  release.join();
  EXPECT_TRUE(fourth.ok()) << fourth.status().message();
}

TEST(PostgresPoolTest, AnUnreachableServerIsUnavailableWithItsAddress) {
  auto o = OptionsFor("nothing");
  o.port = bzzz::testing::FreePort();
  auto s = Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find("127.0.0.1:" + std::to_string(o.port)), std::string::npos);
}

TEST(PostgresFaultTest, TerminatedConnectionsAreReplacedWithoutFailingACall) {
  const std::string db = FreshDatabase();
  Storage s = OpenOrDie(OptionsFor(db));
  ASSERT_TRUE(s.store->PutMeta("k", "v").ok());
  // The server ends every session of this database (an administrator's
  // pg_terminate_backend, a failover proxy dropping connections).
  bool ok = false;
  server->Sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db +
                  "' AND pid <> pg_backend_pid()",
              "postgres", &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*s.store->GetMeta("k"), "v");
  EXPECT_TRUE(s.store->PutMeta("k", "w").ok());
  EXPECT_GE(s.store->HealthCheck().pool.discarded, 1u);
}

// Restarts the shared server: last in the binary's order would be nicer, but
// every test uses its own database and reconnects, so order does not matter.
TEST(PostgresFaultTest, AStoppedServerIsUnavailableAndTheStoreRecoversWhenItReturns) {
  const std::string db = FreshDatabase();
  Storage s = OpenOrDie(OptionsFor(db));
  ASSERT_TRUE(s.tasks->WriteTasks({Task("before", "queued", 1)}, {}).ok());
  ASSERT_TRUE(server->Stop());
  const StoreHealth down = s.store->HealthCheck();
  EXPECT_FALSE(down.reachable);
  EXPECT_FALSE(down.message.empty());
  const Status refused = s.tasks->WriteTasks({Task("during", "queued", 2)}, {});
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.message();
  ASSERT_TRUE(server->Start());
  EXPECT_TRUE(s.store->HealthCheck().reachable);
  ASSERT_TRUE(s.tasks->WriteTasks({Task("after", "queued", 3)}, {}).ok());
  EXPECT_TRUE(s.tasks->GetTask("before").ok());
  EXPECT_EQ(s.tasks->GetTask("during").status().code(), StatusCode::kNotFound);

  // After a crash (immediate shutdown, recovery at start) everything
  // committed is there.
  ASSERT_TRUE(server->Crash());
  ASSERT_TRUE(server->Start());
  EXPECT_TRUE(s.tasks->GetTask("after").ok());
}

TEST(PostgresBackupTest, EveryTableRoundTripsThroughPgDumpAndPgRestore) {
  const std::string source = FreshDatabase();
  Storage a = OpenOrDie(OptionsFor(source, "node-a"));
  Storage b = OpenOrDie(OptionsFor(source, "node-b"));
  ASSERT_TRUE(a.store->PutMeta("k", "v").ok());
  ASSERT_TRUE(a.tasks->WriteTasks({Task("t1", "queued", 1, "key"), Task("t2", "succeeded", 2)}, {}).ok());
  ASSERT_TRUE(b.tasks->WriteTasks({Task("b1", "dead", 1)}, {}).ok());
  const std::string binary("\0\x01sealed", 8);
  ASSERT_TRUE(a.contexts->AppendContextVersion(Version("ucxl://a:r@p:t/x"), binary).ok());
  ASSERT_TRUE(a.audit->AppendAudit({Entry(1), Entry(2)}).ok());
  hmmm::RoomRow room;
  room.id = "t1";
  room.task_id = "t1";
  room.owner_node = "node-a";
  room.state = "open";
  room.last_seq = 1;
  room.doc = "{}";
  hmmm::MessageRow seed;
  seed.room_id = "t1";
  seed.seq = 1;
  seed.id = "auto-1";
  seed.type = "help_request";
  seed.agent = "asker";
  seed.node = "node-a";
  seed.body = "help";
  ASSERT_TRUE(a.hmmm->SaveRoom(room, {seed}).ok());
  const std::int64_t curated = AddSlurp(*a.slurp, "e1");
  ASSERT_TRUE(a.slurp->Complete(curated, 3, SlurpRecord("p", "t1", R"(["ann"])", 5), 5).ok());
  AddSlurp(*b.slurp, "e2");

  TempDir dir;
  const std::string file = dir.File("backup.dump");
  std::vector<BackupProgress> progress;
  auto made = Backup(OptionsFor(source), file, [&](const BackupProgress& p) { progress.push_back(p); });
  ASSERT_TRUE(made.ok()) << made.status().message();
  EXPECT_EQ(made->backend, "postgres");
  EXPECT_GT(made->bytes, 0u);
  EXPECT_FALSE(progress.empty());
  EXPECT_EQ(Backup(OptionsFor(source), file, nullptr).status().code(), StatusCode::kInvalidArgument);

  auto described = DescribeArchive(file);
  ASSERT_TRUE(described.ok()) << described.status().message();
  EXPECT_EQ(described->domains, made->domains);
  std::map<std::string, std::uint64_t> rows(described->tables.begin(), described->tables.end());
  EXPECT_EQ(rows["tasks"], 3u);
  EXPECT_EQ(rows["context_versions"], 1u);
  EXPECT_EQ(rows["audit_log"], 2u);
  EXPECT_EQ(rows["audit_head"], 1u);
  EXPECT_EQ(rows["node_meta"], 1u);
  EXPECT_EQ(rows["hmmm_rooms"], 1u);
  EXPECT_EQ(rows["hmmm_messages"], 1u);
  EXPECT_EQ(rows["slurp_events"], 2u);
  EXPECT_EQ(rows["slurp_records"], 1u);
  EXPECT_EQ(rows["slurp_fence"], 1u);

  // Into a fresh database, as after losing the server.
  const std::string target = FreshDatabase();
  a.store->Close();
  b.store->Close();
  auto restored = Restore(OptionsFor(target), file, false, nullptr);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_TRUE(restored->previous.empty());
  Storage back = OpenOrDie(OptionsFor(target, "node-a"), false);
  auto state = back.store->SchemaState();
  EXPECT_EQ(state->current_version, state->latest_version);
  EXPECT_EQ(*back.store->GetMeta("k"), "v");
  EXPECT_EQ(back.tasks->GetTask("t1")->idempotency_key, "key");
  EXPECT_EQ(*back.contexts->ContextContent("ucxl://a:r@p:t/x", 1), binary);
  EXPECT_EQ(back.audit->ReadAuditHead()->seq, 2);
  EXPECT_EQ(back.hmmm->GetRoom("t1")->owner_node, "node-a");
  EXPECT_EQ(back.hmmm->ListMessages("t1", 0, 10)->front(), seed);
  EXPECT_EQ(back.slurp->GetRecord(curated)->authors, R"(["ann"])");
  EXPECT_EQ(back.slurp->Stats()->newest_term, 3u);
  EXPECT_EQ(back.slurp->AdmitTerm(2).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(AddSlurp(*back.slurp, "e3"), curated + 2);  // the seq goes on where it was
  Storage back_b = OpenOrDie(OptionsFor(target, "node-b"), false);
  EXPECT_EQ(back_b.tasks->GetTask("b1")->state, "dead");

  // A database with data is replaced only when asked, and only while no
  // node is connected to it; its data is saved first.
  auto refused = Restore(OptionsFor(target), file, true, nullptr);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status().message();
  back.store->Close();
  back_b.store->Close();
  auto kept = Restore(OptionsFor(target), file, false, nullptr);
  EXPECT_EQ(kept.status().code(), StatusCode::kFailedPrecondition);
  auto replaced = Restore(OptionsFor(target), file, true, nullptr);
  ASSERT_TRUE(replaced.ok()) << replaced.status().message();
  EXPECT_FALSE(replaced->previous.empty());
  EXPECT_TRUE(DescribeArchive(replaced->previous).ok());
}

TEST(PostgresBackupTest, AFileThatIsNotAnArchiveIsRefused) {
  TempDir dir;
  EXPECT_EQ(DescribeArchive(dir.Write("junk.dump", "PGDMP but not really")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DescribeArchive(dir.File("missing")).status().code(), StatusCode::kInvalidArgument);
  auto r = Restore(OptionsFor(FreshDatabase()), dir.Write("junk2.dump", "nothing"), true, nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bzzz::storage::postgres
