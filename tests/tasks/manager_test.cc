// TaskManager and AgentPool on a real SQLite store: durability, idempotency
// across restarts, recovery of in-flight attempts, leases, retries to the
// dead-letter queue and back, cancel, backpressure, drain.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "base/json.h"
#include "executors/executors.h"
#include "executors/secrets.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"
#include "http/message.h"
#include "tasks/codec.h"
#include "tasks/errc.h"
#include "tasks/faulty_repository.h"
#include "tasks/manager.h"
#include "tasks/pool.h"

namespace bzzz::tasks {
namespace {

using namespace std::chrono_literals;

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.node.data_dir = dir_.File("data");
    executors_ = executors::MakeRegistry(config_);
    OpenStore();
  }
  void TearDown() override {
    pool_.reset();
    manager_.reset();
  }

  void OpenStore() {
    storage::sqlite::SqliteOptions o;
    o.path = dir_.File("bzzz.db");
    auto s = storage::sqlite::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    storage_ = std::move(s).value();
    store_ = storage_.tasks;
    ASSERT_TRUE(storage_.store->Migrate().ok());
  }

  void StartManager(CoreOptions core = {}) {
    core.node_id = "node-1";
    if (core.backoff_base_ms == 500) core.backoff_base_ms = 10;
    ManagerOptions o;
    o.core = core;
    o.store = store_;
    o.executors = executors_.get();
    o.sealer = sealer_;
    o.tick = 10ms;
    auto m = TaskManager::Start(o, nullptr);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(m).value();
  }

  void StartPool(int agents) {
    PoolOptions p;
    p.node_id = "node-1";
    p.initial_agents = agents;
    p.autoscaling.enabled = false;
    p.autoscaling.min_agents = 0;
    p.autoscaling.max_agents = 16;
    p.heartbeat = 50ms;
    p.executors = executors_.get();
    p.manager = manager_.get();
    auto pool = AgentPool::Start(p, nullptr);
    ASSERT_TRUE(pool.ok());
    pool_ = std::move(pool).value();
  }

  Result<SubmitOutcome> Submit(SubmitRequest r) {
    std::promise<Result<SubmitOutcome>> p;
    auto f = p.get_future();
    manager_->Submit(std::move(r), [&p](Result<SubmitOutcome> out) { p.set_value(std::move(out)); });
    return f.get();
  }

  static SubmitRequest Echo(int v, std::string key = "") {
    SubmitRequest r;
    r.executor = "builtin";
    r.input = R"({"op":"echo","value":)" + std::to_string(v) + "}";
    r.idempotency_key = std::move(key);
    return r;
  }

  bool WaitState(const std::string& id, TaskState state, std::chrono::milliseconds timeout = 10s) {
    return testing::Eventually([&] {
      auto t = manager_->Get(id);
      return t.ok() && t->state == state;
    }, timeout);
  }

  testing::TempDir dir_;
  config::Config config_;
  std::unique_ptr<executors::ExecutorRegistry> executors_;
  std::shared_ptr<const executors::SecretSealer> sealer_;
  storage::Storage storage_;
  std::shared_ptr<TaskRepository> store_;
  std::unique_ptr<TaskManager> manager_;
  std::unique_ptr<AgentPool> pool_;
};

TEST_F(ManagerTest, AcceptedTasksAreDurableAndSucceedExactlyOnce) {
  StartManager();
  StartPool(3);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    auto out = Submit(Echo(i));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(out->created);
    // Acknowledged means written.
    ASSERT_TRUE(store_->GetTask(out->task.id).ok());
    ids.push_back(out->task.id);
  }
  for (const auto& id : ids) ASSERT_TRUE(WaitState(id, TaskState::kSucceeded)) << id;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto t = manager_->Get(ids[i]);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->SuccessfulAttempts(), 1);
    EXPECT_EQ(t->attempts.size(), 1u);
    EXPECT_EQ(t->result, R"({"value":)" + std::to_string(i) + "}");
  }
  ASSERT_TRUE(testing::Eventually([&] {
    auto s = manager_->Stats();
    return s.ok() && s->by_state.size() == 1 && s->by_state[0] == std::make_pair(std::string("succeeded"), std::uint64_t{300});
  }, 5s));
}

// Bodies that once crashed a node or broke the store later: input nested
// past the JSON depth limit, and an Idempotency-Key header that is not
// printable ASCII.
TEST(SubmitBodyTest, HostileBodiesAndHeadersAreRefused) {
  const std::string deep = R"({"executor":"builtin","input":)" + std::string(70000, '[') +
                           std::string(70000, ']') + "}";
  auto r = ParseSubmitBody(deep, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nests deeper"), std::string::npos) << r.status().message();
  const std::string body = R"({"executor":"builtin","input":{"op":"echo"}})";
  EXPECT_TRUE(ParseSubmitBody(body, "key-1").ok());
  EXPECT_EQ(ParseSubmitBody(body, "bad\xff\xfekey").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSubmitBody(body, "with space").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSubmitBody(body, std::string(256, 'k')).status().code(), StatusCode::kInvalidArgument);
}

// Secret-bearing input fields are write-only: the API view masks every
// value of a command's env and an http task's headers; the stored task
// keeps them for the executor.
TEST(TaskViewTest, ApiViewMasksEnvAndHeaders) {
  Task t;
  t.id = "t1";
  t.executor = "command";
  t.input = R"({"argv":["env"],"env":{"TOKEN":"hunter2","REF":"secret://X"}})";
  const std::string api = TaskToApiJson(t).dump();
  EXPECT_EQ(api.find("hunter2"), std::string::npos) << api;
  EXPECT_NE(api.find(R"("TOKEN":"***")"), std::string::npos) << api;
  EXPECT_NE(TaskToJson(t).dump().find("hunter2"), std::string::npos);
  t.executor = "http";
  t.input = R"({"url":"https://example.org/hook","headers":{"Authorization":"Bearer abc123"}})";
  const std::string hook = TaskToApiJson(t).dump();
  EXPECT_EQ(hook.find("abc123"), std::string::npos) << hook;
  EXPECT_NE(hook.find("example.org"), std::string::npos);
}

// Secrets given in clear are sealed in the stored document with the node's
// key, bound to their task and name; references stay readable.
TEST(TaskViewTest, StoredRowSealsSecretsGivenInClear) {
  executors::SecretSealer::Key key{}, other{};
  key.fill(7);
  other.fill(8);
  const executors::SecretSealer sealer(key), stranger(other);
  Task t;
  t.id = "t1";
  t.executor = "command";
  t.input = R"({"argv":["env"],"env":{"TOKEN":"hunter2","REF":"secret://X","ODD":"sealed:v1:AAAA"}})";
  const TaskRow row = ToRow(t, &sealer);
  EXPECT_EQ(row.doc.find("hunter2"), std::string::npos) << row.doc;
  EXPECT_NE(row.doc.find(R"("REF":"secret://X")"), std::string::npos) << row.doc;
  EXPECT_EQ(row.doc.find("sealed:v1:AAAA"), std::string::npos) << "text that looks sealed is sealed too";

  auto back = FromRow(row, &sealer);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ParseJson(back->input), ParseJson(t.input));

  EXPECT_EQ(FromRow(row, &stranger).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(FromRow(row).status().code(), StatusCode::kFailedPrecondition);
  // A sealed value moved to another variable does not open there.
  auto doc = ParseJson(row.doc);
  doc["input"]["env"]["OTHER"] = doc["input"]["env"]["TOKEN"];
  TaskRow moved = row;
  moved.doc = doc.dump();
  auto opened = FromRow(moved, &sealer);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("env.OTHER"), std::string::npos) << opened.status().ToString();
  // Rows written before sealing (plain values) still read.
  t.input = R"({"argv":["env"],"env":{"TOKEN":"hunter2"}})";
  auto plain = FromRow(ToRow(t), &sealer);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ParseJson(plain->input), ParseJson(t.input));
}

// The task writer's direct document is TaskToJson's object: every field,
// strings escaped (control characters, quotes, non-ASCII), input and result
// copied in when they are JSON and embedded as strings when not, bytes that
// are not UTF-8 replaced, a sealer still sealing what it must.
TEST(TaskViewTest, TheDirectDocumentIsTheSameObjectAsTaskToJson) {
  Task t;
  t.id = "t-0000000000010000aaaa";
  t.idempotency_key = "key \"quoted\" \\ back\nslash";
  t.executor = "command";
  t.input = R"({"argv": ["echo", "héllo\u0001"], "n": 1.5e3, "deep": [[[{"a": null}]]]})";
  t.priority = -3;
  t.capabilities = {"code", "gpu\t"};
  t.role = "developer";
  t.timeout_ms = 30000;
  t.max_attempts = 3;
  t.project = "proj";
  t.name = "name/with/slashes";
  t.state = TaskState::kSucceeded;
  Attempt a;
  a.number = 1;
  a.agent_id = "agent-1";
  a.node_id = "node";
  a.state = AttemptState::kSucceeded;
  a.assigned_ms = 1;
  a.started_ms = 2;
  a.finished_ms = 3;
  a.result = "not json: \x01 plain";
  a.error = "";
  t.attempts = {a, a};
  t.attempts[1].result = R"({"ok":true})";
  t.result = R"(["a", 1, {"b": false}])";
  t.error = std::string("\x7f\x1f\r\f\b");
  t.submitter = "user:é";
  t.events = {{10, "created", "line \"one\"", 0}, {11, "succeeded", "€ 𝄞", 1}};
  t.event_count = 7;
  t.seq = 42;
  t.cancel_requested = true;
  const nlohmann::json expected = ParseJson(DumpJson(TaskToJson(t)));
  ASSERT_FALSE(expected.is_discarded());
  EXPECT_EQ(ParseJson(TaskDocument(t)), expected) << TaskDocument(t);
  EXPECT_EQ(ParseJson(ToRow(t).doc), expected);

  // Empty input and result are null; text that is not JSON is a string.
  t.input = "";
  t.result = "{not json";
  EXPECT_EQ(ParseJson(TaskDocument(t)), ParseJson(DumpJson(TaskToJson(t))));
  auto back = FromRow(ToRow(t));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  TaskRow old_row;
  old_row.idempotency_key = t.idempotency_key;  // FromRow takes it from its column
  old_row.doc = DumpJson(TaskToJson(t));
  auto old_back = FromRow(old_row);
  ASSERT_TRUE(old_back.ok());
  EXPECT_EQ(TaskToJson(*back), TaskToJson(*old_back));

  // Bytes that are not UTF-8 become U+FFFD: the document stays valid JSON.
  t.error = std::string("bad \xff\xc3 and \xed\xa0\x80 surrogate, ok \xc3\xa9");
  const nlohmann::json doc = ParseJson(TaskDocument(t));
  ASSERT_FALSE(doc.is_discarded()) << TaskDocument(t);
  EXPECT_NE(doc["error"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos);
  EXPECT_NE(doc["error"].get<std::string>().find("ok \xc3\xa9"), std::string::npos);

  // With a sealer, an input that may carry secrets takes the sealing path.
  executors::SecretSealer::Key key{};
  key.fill(3);
  const executors::SecretSealer sealer(key);
  t.input = R"({"argv":["env"],"en\u0076":{"TOKEN":"hunter2"}})";
  EXPECT_EQ(ToRow(t, &sealer).doc.find("hunter2"), std::string::npos) << "an escaped key name must not evade sealing";
}

// Numbers that do not fit (a float such as 1e84 where an integer is due)
// are refused as malformed, not converted (undefined behaviour; found by
// the tasks fuzz target under UBSan).
TEST(TaskViewTest, NumbersOutOfRangeAreRefused) {
  Task t;
  t.id = "t1";
  t.executor = "builtin";
  nlohmann::json j = TaskToJson(t);
  ASSERT_TRUE(TaskFromJson(j).ok());
  for (const char* field : {"priority", "created_ms", "max_attempts"}) {
    nlohmann::json bad = j;
    bad[field] = 1.79546e+84;
    EXPECT_EQ(TaskFromJson(bad).status().code(), StatusCode::kInvalidArgument) << field;
    bad[field] = 4294967296.0 * 4294967296.0;
    EXPECT_FALSE(TaskFromJson(bad).ok()) << field;
  }
  nlohmann::json big = j;
  big["priority"] = std::uint64_t{1} << 40;  // an integer, but not an int
  EXPECT_FALSE(TaskFromJson(big).ok());
}

// The store failing under the group commit: nothing is acknowledged until it
// is written, the writer retries with backoff, counts each failure, and once
// the store heals every accepted task is written, runs and succeeds once.
TEST_F(ManagerTest, WritesThatFailAreRetriedAndNothingIsAcknowledgedUnwritten) {
  auto faulty = std::make_shared<FaultyTaskRepository>(store_);
  store_ = faulty;
  StartManager();
  StartPool(2);
  faulty->BreakWrites();
  std::vector<std::future<Result<SubmitOutcome>>> pending;
  for (int i = 0; i < 5; ++i) {
    auto p = std::make_shared<std::promise<Result<SubmitOutcome>>>();
    pending.push_back(p->get_future());
    manager_->Submit(Echo(i), [p](Result<SubmitOutcome> out) { p->set_value(std::move(out)); });
  }
  ASSERT_TRUE(testing::Eventually([&] { return faulty->refused_writes() >= 2; }, 10s));
  for (auto& f : pending) {
    EXPECT_EQ(f.wait_for(0ms), std::future_status::timeout) << "acknowledged before it was written";
  }
  EXPECT_EQ(faulty->passed_writes(), 0);
  faulty->Heal();
  std::vector<std::string> ids;
  for (auto& f : pending) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto out = f.get();
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_TRUE(store_->GetTask(out->task.id).ok()) << "acknowledged means written";
    ids.push_back(out->task.id);
  }
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitState(id, TaskState::kSucceeded)) << id;
    EXPECT_EQ(manager_->Get(id)->SuccessfulAttempts(), 1);
  }
  auto stats = manager_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->write_failures, static_cast<std::uint64_t>(faulty->refused_writes()));
}

// HMMM escalates a task (tasks/core.h Escalate): a queued one at once, a
// running one when its attempt fails (no retry); it stays escalated across
// a restart until an operator's answer resumes it, here with a new input
// (checked like a submission), and then it runs to success.
TEST_F(ManagerTest, AnEscalatedTaskStopsUntilResumedEvenAcrossARestart) {
  StartManager();
  SubmitRequest failing;
  failing.executor = "builtin";
  failing.input = R"({"op":"fail","message":"missing header"})";
  failing.max_attempts = 5;
  auto queued = Submit(failing);
  ASSERT_TRUE(queued.ok());
  const std::string id = queued->task.id;
  auto escalated = manager_->Escalate(id, "room t escalated (keyword)");
  ASSERT_TRUE(escalated.ok()) << escalated.status().ToString();
  EXPECT_EQ(escalated->state, TaskState::kEscalated);
  EXPECT_TRUE(manager_->Escalate(id, "again").ok()) << "idempotent";
  StartPool(2);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(manager_->Get(id)->attempts.size(), 0u) << "no agent takes an escalated task";

  // Across a restart it stays escalated; a bad new input is refused.
  pool_.reset();
  manager_.reset();
  StartManager();
  EXPECT_EQ(manager_->Get(id)->state, TaskState::kEscalated);
  EXPECT_EQ(manager_->Resume(id, "x", R"({"op":"nope"})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Get(id)->state, TaskState::kEscalated);
  auto resumed = manager_->Resume(id, "resolved by ops (retry)", R"({"op":"echo","value":7})");
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->state, TaskState::kQueued);
  EXPECT_FALSE(manager_->Resume(id, "twice", "").ok()) << "only an escalated task resumes";
  StartPool(1);
  ASSERT_TRUE(WaitState(id, TaskState::kSucceeded));
  auto done = manager_->Get(id);
  EXPECT_EQ(done->result, R"({"value":7})");
  bool resumed_event = false;
  for (const auto& e : done->events) resumed_event = resumed_event || e.type == "resumed";
  EXPECT_TRUE(resumed_event);
  EXPECT_EQ(manager_->Escalate(id, "late").status().code(), StatusCode::kConflict)
      << "a finished task is not escalated";
}

// A running task escalated: its attempt may still succeed; when it fails,
// the task is escalated instead of retried; handed back, escalated too.
// A task no agent of this node can run is stranded: the load report says
// so, and the admin has another node borrow it even while agents here idle.
TEST(TaskCoreStranded, ATaskTheAgentsHereCannotRunIsCountedUntilItLeaves) {
  CoreOptions o;
  o.node_id = "n";
  TaskCore core(o, 1);
  SubmitRequest gpu;
  gpu.executor = "builtin";
  gpu.capabilities = {"gpu"};
  auto stranded = core.Submit(gpu, 0);
  ASSERT_TRUE(stranded.ok());
  SubmitRequest plain;
  plain.executor = "builtin";
  ASSERT_TRUE(core.Submit(plain, 0).ok());
  EXPECT_EQ(core.StrandedCount(), 0u) << "not known before a dispatch";
  std::vector<WorkerSlot> slots = {WorkerSlot{"a1", "n", "", {}, {}, 2}};
  auto assigned = core.Dispatch(slots, 1);
  ASSERT_EQ(assigned.size(), 1u) << "the plain task runs here";
  EXPECT_EQ(core.ReadyCount(), 1u);
  EXPECT_EQ(core.StrandedCount(), 1u);
  // Another node's slot with the capability takes it: nothing is stranded.
  std::vector<WorkerSlot> remote = {WorkerSlot{"remote:m", "m", "", {"gpu"}, {}, 1}};
  ASSERT_EQ(core.Dispatch(remote, 2).size(), 1u);
  EXPECT_EQ(core.ReadyCount(), 0u);
  EXPECT_EQ(core.StrandedCount(), 0u);
}

TEST(TaskCoreEscalation, ARunningAttemptEndsTheTaskEscalatedInsteadOfRetried) {
  CoreOptions o;
  o.node_id = "n";
  o.default_max_attempts = 5;
  for (AttemptState end : {AttemptState::kFailed, AttemptState::kSucceeded}) {
    TaskCore core(o, 1);
    SubmitRequest r;
    r.executor = "builtin";
    r.input = R"({"op":"fail"})";
    auto t = core.Submit(r, 0);
    ASSERT_TRUE(t.ok());
    std::vector<WorkerSlot> slots = {WorkerSlot{"a1", "n", "", {}, {}, 1}};
    auto assigned = core.Dispatch(slots, 1);
    ASSERT_EQ(assigned.size(), 1u);
    ASSERT_TRUE(core.Start(t->task.id, assigned[0].attempt, "a1", 2).ok());
    auto escalated = core.Escalate(t->task.id, "stuck", 3);
    ASSERT_TRUE(escalated.ok());
    EXPECT_EQ(escalated->state, TaskState::kRunning) << "the attempt goes on";
    EXPECT_TRUE(escalated->escalate_requested);
    AttemptOutcome outcome;
    outcome.state = end;
    outcome.result = "{}";
    outcome.error = "missing header";
    auto done = core.Complete(t->task.id, assigned[0].attempt, "a1", outcome, 4);
    ASSERT_TRUE(done.ok());
    EXPECT_EQ(done->state, end == AttemptState::kFailed ? TaskState::kEscalated : TaskState::kSucceeded);
    EXPECT_EQ(done->attempts.size(), 1u);
  }
}

TEST_F(ManagerTest, BadInputIsRefusedAndNothingIsStored) {
  StartManager();
  SubmitRequest r;
  r.executor = "nope";
  EXPECT_EQ(Submit(r).status().code(), StatusCode::kInvalidArgument);
  r.executor = "builtin";
  r.input = R"({"op":"explode"})";
  EXPECT_EQ(Submit(r).status().code(), StatusCode::kInvalidArgument);
  r.input = R"({"argv":[]})";
  r.executor = "command";
  EXPECT_EQ(Submit(r).status().code(), StatusCode::kInvalidArgument);
  auto list = manager_->List({});
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(ManagerTest, IdempotencyKeyNamesOneTaskAcrossRestarts) {
  StartManager();
  auto a = Submit(Echo(1, "key-1"));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->created);
  auto b = Submit(Echo(2, "key-1"));
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(a->task.id, b->task.id);
  manager_.reset();
  StartManager();
  auto c = Submit(Echo(3, "key-1"));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->created);
  EXPECT_EQ(c->task.id, a->task.id);
}

// The database file (and its WAL) never holds a secret given in clear; the
// task still reads back whole after a restart with the same key.
TEST_F(ManagerTest, SecretsAreSealedAtRestAndOpenAfterRestart) {
  executors::SecretSealer::Key key{};
  key.fill(42);
  sealer_ = std::make_shared<const executors::SecretSealer>(key);
  StartManager();
  SubmitRequest r;
  r.executor = "command";
  r.input = R"({"argv":["true"],"env":{"API_KEY":"plain-secret-value-91"}})";
  auto out = Submit(r);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  manager_.reset();
  ASSERT_TRUE(storage_.store->Flush().ok());
  for (const char* file : {"bzzz.db", "bzzz.db-wal"}) {
    std::ifstream in(dir_.File(file), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("plain-secret-value-91"), std::string::npos) << file;
  }
  StartManager();
  auto t = manager_->Get(out->task.id);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_NE(t->input.find("plain-secret-value-91"), std::string::npos);
}

TEST_F(ManagerTest, InFlightAttemptOfAStoppedOwnerIsLostAndRunsAgain) {
  StartManager();
  auto out = Submit(Echo(7));
  ASSERT_TRUE(out.ok());
  // A fake agent takes it and never finishes; the owner goes away.
  WorkerSlot slot;
  slot.agent_id = "ghost";
  slot.node_id = "node-1";
  auto job = manager_->Await(slot, 2s);
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE(manager_->Begin(*job).ok());
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kRunning));
  manager_.reset();  // writes what it has: the task is running
  auto row = store_->GetTask(out->task.id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->state, "running");

  StartManager();
  StartPool(1);
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kSucceeded));
  auto t = manager_->Get(out->task.id);
  ASSERT_EQ(t->attempts.size(), 2u);
  EXPECT_EQ(t->attempts[0].state, AttemptState::kLost);
  EXPECT_EQ(t->attempts[1].state, AttemptState::kSucceeded);
  // The ghost's late report is refused: no second success.
  AttemptOutcome late;
  EXPECT_FALSE(manager_->Complete(*job, late).ok());
  EXPECT_EQ(manager_->Get(out->task.id)->SuccessfulAttempts(), 1);
}

TEST_F(ManagerTest, ExpiredLeaseRequeuesAndTheStaleReportIsIgnored) {
  CoreOptions core;
  core.lease_ms = 150;
  StartManager(core);
  auto out = Submit(Echo(1));
  ASSERT_TRUE(out.ok());
  WorkerSlot slot;
  slot.agent_id = "slow";
  slot.node_id = "node-1";
  auto job = manager_->Await(slot, 2s);
  ASSERT_TRUE(job.has_value());
  ASSERT_TRUE(manager_->Begin(*job).ok());
  // No renewal: the lease runs out and another agent gets attempt 2.
  slot.agent_id = "fast";
  auto second = manager_->Await(slot, 5s);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->attempt, 2);
  AttemptOutcome ok;
  ok.result = "1";
  EXPECT_EQ(manager_->Complete(*job, ok).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(manager_->Begin(*second).ok());
  EXPECT_TRUE(manager_->Complete(*second, ok).ok());
  auto t = manager_->Get(out->task.id);
  EXPECT_EQ(t->state, TaskState::kSucceeded);
  EXPECT_EQ(t->SuccessfulAttempts(), 1);
  EXPECT_EQ(t->attempts[0].state, AttemptState::kLost);
}

TEST_F(ManagerTest, FailingTaskIsRetriedThenDeadLetteredReplayedAndPurged) {
  StartManager();
  StartPool(2);
  SubmitRequest r;
  r.executor = "builtin";
  r.input = R"({"op":"fail","message":"boom"})";
  r.max_attempts = 2;
  auto out = Submit(r);
  ASSERT_TRUE(out.ok());
  const std::string id = out->task.id;
  ASSERT_TRUE(WaitState(id, TaskState::kDead));
  auto t = manager_->Get(id);
  ASSERT_EQ(t->attempts.size(), 2u);
  EXPECT_EQ(t->attempts[0].state, AttemptState::kFailed);
  EXPECT_NE(t->error.find("boom"), std::string::npos);
  auto dlq = manager_->DeadLetters(10, 0);
  ASSERT_TRUE(dlq.ok());
  ASSERT_EQ(dlq->size(), 1u);
  EXPECT_EQ((*dlq)[0].id, id);

  auto replayed = manager_->Replay(id);
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
  ASSERT_TRUE(WaitState(id, TaskState::kDead));
  t = manager_->Get(id);
  EXPECT_EQ(t->attempts.size(), 4u);
  EXPECT_EQ(t->attempt_base, 2);
  EXPECT_EQ(manager_->Replay(t->id).ok(), true);
  ASSERT_TRUE(WaitState(id, TaskState::kDead));
  EXPECT_EQ(manager_->Purge(id).code(), StatusCode::kOk);
  EXPECT_EQ(manager_->Get(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->Purge(id).code(), StatusCode::kNotFound);
}

// A replay and a purge of one dead task racing each other: exactly one wins,
// and the loser sees the winner's result (a purged task never comes back, a
// replayed one is never left without its row).
TEST_F(ManagerTest, ReplayAndPurgeOfOneTaskDoNotInterleave) {
  StartManager();
  StartPool(2);
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    SubmitRequest r;
    r.executor = "builtin";
    r.input = R"({"op":"fail","message":"boom"})";
    r.max_attempts = 1;
    auto out = Submit(r);
    ASSERT_TRUE(out.ok());
    ids.push_back(out->task.id);
  }
  for (const auto& id : ids) ASSERT_TRUE(WaitState(id, TaskState::kDead)) << id;
  pool_.reset();  // replayed tasks stay queued
  for (const auto& id : ids) {
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    auto replay = std::async(std::launch::async, [&] {
      start.wait();
      return manager_->Replay(id).status();
    });
    auto purge = std::async(std::launch::async, [&] {
      start.wait();
      return manager_->Purge(id);
    });
    go.set_value();
    const Status replayed = replay.get(), purged = purge.get();
    ASSERT_NE(replayed.ok(), purged.ok()) << id << ": " << replayed.ToString() << " / " << purged.ToString();
    auto t = manager_->Get(id);
    if (purged.ok()) {
      EXPECT_EQ(replayed.code(), StatusCode::kNotFound) << replayed.ToString();
      EXPECT_EQ(t.status().code(), StatusCode::kNotFound) << id;
    } else {
      EXPECT_EQ(purged.code(), StatusCode::kConflict) << purged.ToString();
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      EXPECT_EQ(t->state, TaskState::kQueued);
    }
  }
  // What memory says is what the store says.
  manager_.reset();
  StartManager();
  for (const auto& id : ids) {
    auto t = manager_->Get(id);
    if (t.ok()) EXPECT_EQ(t->state, TaskState::kQueued) << id;
    else EXPECT_EQ(t.status().code(), StatusCode::kNotFound) << id;
  }
}

TEST_F(ManagerTest, OnlyDeadTasksAreReplayedOrPurged) {
  StartManager();
  StartPool(1);
  auto out = Submit(Echo(1));
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kSucceeded));
  EXPECT_EQ(manager_->Replay(out->task.id).status().code(), StatusCode::kConflict);
  EXPECT_EQ(manager_->Purge(out->task.id).code(), StatusCode::kConflict);
  EXPECT_EQ(manager_->Cancel(out->task.id).status().code(), StatusCode::kConflict);
  EXPECT_EQ(manager_->Cancel("t-nope").status().code(), StatusCode::kNotFound);
  // The reasons, for callers that branch, and the HTTP status they carry.
  EXPECT_EQ(manager_->Replay(out->task.id).status().reason(), Errc::kNotDead);
  EXPECT_EQ(manager_->Purge(out->task.id).reason(), Errc::kNotDead);
  const Status finished = manager_->Cancel(out->task.id).status();
  EXPECT_EQ(finished.reason(), Errc::kAlreadyFinished);
  EXPECT_EQ(http::HttpStatusOf(finished), 409);
  AttemptOutcome late;
  Assignment stale{out->task.id, 1, "agent-x", "builtin", "{}", 1000, 0, ""};
  EXPECT_EQ(manager_->Complete(stale, late).reason(), Errc::kStaleAttempt);
}

TEST_F(ManagerTest, CancelStopsARunningTask) {
  StartManager();
  StartPool(1);
  SubmitRequest r;
  r.executor = "builtin";
  r.input = R"({"op":"sleep","ms":20000})";
  auto out = Submit(r);
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kRunning));
  auto c = manager_->Cancel(out->task.id);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kCancelled, 3s));
  auto t = manager_->Get(out->task.id);
  EXPECT_EQ(t->attempts.back().state, AttemptState::kCancelled);
}

TEST_F(ManagerTest, FullQueueRefusesWithResourceExhausted) {
  CoreOptions core;
  core.max_open_tasks = 5;
  StartManager(core);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Submit(Echo(i)).ok());
  EXPECT_EQ(Submit(Echo(9)).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Submit(Echo(9)).status().reason(), Errc::kQueueFull);
  EXPECT_EQ(manager_->List({}).value().size(), 5u);
}

TEST_F(ManagerTest, DrainHandsRunningTasksBackWithoutCountingThem) {
  StartManager();
  StartPool(1);
  SubmitRequest r;
  r.executor = "builtin";
  r.input = R"({"op":"sleep","ms":20000})";
  r.max_attempts = 1;
  auto out = Submit(r);
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kRunning));
  pool_->Drain(50ms);
  ASSERT_TRUE(WaitState(out->task.id, TaskState::kQueued, 3s));
  auto t = manager_->Get(out->task.id);
  EXPECT_EQ(t->attempts.back().state, AttemptState::kHandedBack);
  EXPECT_EQ(t->FailedAttempts(), 0);
  // A later owner runs it (not dead although max_attempts is 1).
  manager_.reset();
  pool_.reset();
  StartManager();
  auto again = manager_->Get(out->task.id);
  EXPECT_EQ(again->state, TaskState::kQueued);
}

TEST_F(ManagerTest, WatchReturnsWhenSomethingHappens) {
  StartManager();
  auto out = Submit(Echo(1));
  ASSERT_TRUE(out.ok());
  std::promise<Result<Task>> p;
  manager_->Watch(out->task.id, static_cast<std::size_t>(out->task.event_count), 5s,
                  [&p](Result<Task> t) { p.set_value(std::move(t)); });
  StartPool(1);
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto t = f.get();
  ASSERT_TRUE(t.ok());
  EXPECT_GT(t->event_count, out->task.event_count);
}

TEST_F(ManagerTest, PoolScalesAndReportsItsAgents) {
  StartManager();
  StartPool(2);
  EXPECT_EQ(pool_->Summary().size, 2);
  ASSERT_TRUE(pool_->Scale(5, "test").ok());
  EXPECT_EQ(pool_->Summary().size, 5);
  ASSERT_TRUE(pool_->Scale(1, "test").ok());
  ASSERT_TRUE(testing::Eventually([&] { return pool_->Summary().size == 1; }, 3s));
  EXPECT_EQ(pool_->Scale(17, "test").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(pool_->Agents().size(), 1u);
}

TEST(PerformanceScoreTest, RewardsSuccessAndSpeed) {
  EXPECT_DOUBLE_EQ(PerformanceScore(0, 0, 0), 0.5);
  EXPECT_GT(PerformanceScore(10, 10, 1), PerformanceScore(5, 10, 1));
  EXPECT_GT(PerformanceScore(10, 10, 1), PerformanceScore(10, 10, 100));
}

}  // namespace
}  // namespace bzzz::tasks
