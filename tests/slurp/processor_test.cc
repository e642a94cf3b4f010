// The SLURP processor over a real SQLite store and a real (local) UCXL
// context store: curation with citations, retries and dead letters, and a
// seeded simulation of admins changing while events arrive: every event
// gets exactly one record, no write of a stale term lands, and every
// record's citations resolve.
#include "slurp/processor.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "hmmm/repository.h"
#include "storage/sqlite/sqlite.h"
#include "support/support.h"
#include "ucxl/address.h"
#include "ucxl/context_store.h"

namespace bzzz::slurp {
namespace {

using nlohmann::json;

class SlurpProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::sqlite::SqliteOptions so;
    so.path = dir_.File("bzzz.db");
    auto opened = storage::sqlite::Open(so);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    storage_ = std::move(*opened);
    ASSERT_TRUE(storage_.store->Migrate().ok());
    context_ = std::make_unique<ucxl::ContextStore>(storage_.contexts, nullptr);
    sources_.rooms = storage_.hmmm;
    sources_.task = [this](const std::string& id) -> Result<TaskFacts> {
      auto it = tasks_.find(id);
      if (it == tasks_.end()) return NotFound("no task " + id);
      return it->second;
    };
    tasks_["t-1"] = TaskFacts{"t-1", "succeeded", "builtin", "bzzz", "build", "ana", {"a1", "a2"}, 2, "{\"ok\":1}"};
  }

  ProcessorOptions Options() {
    ProcessorOptions o;
    o.store = storage_.slurp;
    o.context = context_.get();
    o.sources = sources_;
    o.max_retries = 2;
    o.retry_base = std::chrono::milliseconds(0);
    o.retry_max = std::chrono::milliseconds(0);
    o.now = [this] { return now_; };
    return o;
  }

  EventRow Api(const std::string& key, const std::string& body) {
    auto e = ParseApiEvent(body);
    EXPECT_TRUE(e.ok()) << e.status().message();
    EventRow row;
    row.key = key;
    row.source = "api";
    row.project = e->project;
    row.task_id = e->task_id;
    row.payload = ApiEventJson(*e);
    row.accepted_ms = now_;
    row.accepted_by = "node-a";
    auto added = storage_.slurp->AddEvent(row, 0);
    EXPECT_TRUE(added.ok()) << added.status().message();
    return added.ok() ? added->first : row;
  }

  json RecordAt(const std::string& address) {
    auto a = ucxl::Parse(address);
    if (!a.ok()) return nullptr;
    auto e = context_->Get(*a);
    if (!e.ok()) return nullptr;
    return json::parse(e->content);
  }

  testing::TempDir dir_;
  storage::Storage storage_;
  std::unique_ptr<ucxl::ContextStore> context_;
  Sources sources_;
  std::map<std::string, TaskFacts> tasks_;
  std::int64_t now_ = 1000000;
};

TEST_F(SlurpProcessorTest, AnEventBecomesOneRecordWithItsCitationsResolved) {
  const EventRow first = Api("k1", R"({"project":"bzzz","task_id":"t-1","summary":"s1","decision":"d1",
      "authors":["ana"],"citations":[{"kind":"task","id":"t-1"}]})");
  Processor p(Options(), 3);
  ASSERT_TRUE(p.Begin().ok());
  auto n = p.RunOnce(10);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 1u);
  auto done = storage_.slurp->GetEvent(first.seq);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, "done");
  EXPECT_EQ(done->term, 3u);
  EXPECT_EQ(done->address, "ucxl://slurp:decision@bzzz:t-1/*^/decisions/" + std::to_string(first.seq));
  const json rec = RecordAt(done->address);
  ASSERT_TRUE(rec.is_object());
  EXPECT_EQ(rec["decision"], "d1");
  EXPECT_EQ(rec["term"], 3);
  EXPECT_EQ(rec["citations"][0]["author"], "ana") << "the task's submitter";
  // A second event cites the first record and event.
  const EventRow second = Api("k2", R"({"project":"bzzz","summary":"s2","decision":"d2","role":"ops",
      "citations":[{"kind":"record","id":")" + std::to_string(first.seq) + R"("},{"kind":"event","id":")" +
                                        std::to_string(first.seq) + R"("}]})");
  ASSERT_TRUE(p.RunOnce(10).ok());
  auto two = storage_.slurp->GetEvent(second.seq);
  ASSERT_EQ(two->state, "done");
  EXPECT_EQ(two->address, "ucxl://slurp:ops@bzzz:general/*^/decisions/" + std::to_string(second.seq));
  const json rec2 = RecordAt(two->address);
  EXPECT_EQ(rec2["citations"][0]["term"], 3);
  EXPECT_EQ(rec2["citations"][1]["author"], "node-a");
  // A task outcome.
  EventRow outcome;
  outcome.key = "task:t-1:succeeded:2";
  outcome.source = "task";
  outcome.project = "bzzz";
  outcome.task_id = "t-1";
  outcome.payload = R"({"task_id":"t-1","state":"succeeded","attempts":2})";
  auto added = storage_.slurp->AddEvent(outcome, 0);
  ASSERT_TRUE(added.ok());
  ASSERT_TRUE(p.RunOnce(10).ok());
  auto t = storage_.slurp->GetEvent(added->first.seq);
  ASSERT_EQ(t->state, "done") << t->error;
  const json rec3 = RecordAt(t->address);
  EXPECT_EQ(rec3["summary"], "Task t-1 \"build\" (builtin) succeeded after 2 attempts");
  EXPECT_EQ(rec3["authors"], json({"a1", "a2"}));
  auto records = storage_.slurp->ListRecords(RecordQuery{"bzzz", "", "a2", 0, 0, 100});
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ(records->front().event_seq, added->first.seq);
}

// A citation of nothing can never become a record: dead at once, with the
// reason; a failure that may pass is retried, then dead; replay requeues.
TEST_F(SlurpProcessorTest, WhatCannotBeCuratedGoesToTheDeadLetters) {
  const EventRow bogus = Api("k-bogus", R"({"project":"bzzz","summary":"s","decision":"d",
      "citations":[{"kind":"task","id":"t-none"}]})");
  Processor p(Options(), 1);
  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.RunOnce(10).ok());
  auto dead = storage_.slurp->GetEvent(bogus.seq);
  EXPECT_EQ(dead->state, "dead");
  EXPECT_NE(dead->error.find("citation task t-none: no such task"), std::string::npos) << dead->error;
  EXPECT_EQ(dead->attempts, 1);
  EXPECT_EQ(storage_.slurp->ListRecords(RecordQuery{}).value().size(), 0u) << "a record never cites what is not there";

  // Tasks unavailable for a while (Unavailable): retried max_retries times, then dead.
  sources_.task = [](const std::string&) -> Result<TaskFacts> { return Unavailable("tasks are stopped"); };
  const EventRow flaky = Api("k-flaky", R"({"project":"bzzz","summary":"s","decision":"d",
      "citations":[{"kind":"task","id":"t-1"}]})");
  Processor q(Options(), 1);
  ASSERT_TRUE(q.Begin().ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.RunOnce(10).ok());
  auto gone = storage_.slurp->GetEvent(flaky.seq);
  EXPECT_EQ(gone->state, "dead");
  EXPECT_EQ(gone->attempts, 3) << "the first attempt and max_retries (2) retries";
  // Replayed once the tasks are back: it completes.
  ASSERT_TRUE(storage_.slurp->Replay(flaky.seq, now_).ok());
  EXPECT_EQ(storage_.slurp->Replay(flaky.seq, now_).code(), StatusCode::kFailedPrecondition) << "not dead any more";
  sources_.task = [this](const std::string& id) -> Result<TaskFacts> {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return NotFound("no task " + id);
    return it->second;
  };
  Processor r(Options(), 2);
  ASSERT_TRUE(r.Begin().ok());
  ASSERT_TRUE(r.RunOnce(10).ok());
  EXPECT_EQ(storage_.slurp->GetEvent(flaky.seq)->state, "done");
  // The bogus one is purged.
  EXPECT_EQ(storage_.slurp->Purge(0).value(), 1);
  EXPECT_EQ(storage_.slurp->GetEvent(bogus.seq).status().code(), StatusCode::kNotFound);
}

// A record committed by a term that died before writing it is written by
// the next term when it starts.
TEST_F(SlurpProcessorTest, ARecordCommittedButNotWrittenIsWrittenByTheNextTerm) {
  const EventRow e = Api("k-crash", R"({"project":"bzzz","summary":"s","decision":"d"})");
  {
    ProcessorOptions o = Options();
    o.context = nullptr;  // stands for the crash: nothing reaches UCXL
    Processor p(o, 1);
    ASSERT_TRUE(p.Begin().ok());
    ASSERT_TRUE(p.RunOnce(10).ok());
  }
  // Without a context store the event is not even taken (it would be lost).
  EXPECT_EQ(storage_.slurp->GetEvent(e.seq)->state, "queued");
  RecordRow row;
  row.event_seq = e.seq;
  row.address = RecordAddress("decision", "bzzz", "", e.seq);
  row.project = "bzzz";
  row.authors = "[]";
  row.roles = R"(["decision"])";
  row.term = 1;
  row.created_ms = now_;
  ASSERT_TRUE(storage_.slurp->Complete(e.seq, 1, row, now_).ok());  // committed, then the admin died
  EXPECT_TRUE(RecordAt(row.address).is_null());
  Processor next(Options(), 2);
  ASSERT_TRUE(next.Begin().ok());
  const json rec = RecordAt(row.address);
  ASSERT_TRUE(rec.is_object());
  EXPECT_EQ(rec["term"], 1) << "written on behalf of the term that committed it";
  EXPECT_EQ(rec["decision"], "d");
}

// Admins change while events arrive. Each step of the seeded simulation
// either adds an event (some with a key already used), lets the current
// admin process, lets a deposed admin act on what it read before it was
// deposed, or elects a new admin. Afterwards the newest admin drains the
// queue. Every event has exactly one record row, written by a term that
// was the newest when it wrote; every stale write was refused.
TEST_F(SlurpProcessorTest, AdminsChangingWhileEventsArriveWriteOneRecordPerEventAndNothingStale) {
  const char* seed_env = std::getenv("SLURP_SIM_SEED");
  const std::uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 20261207;
  std::mt19937_64 rng(seed);
  std::uint64_t term = 1;
  auto current = std::make_unique<Processor>(Options(), term);
  ASSERT_TRUE(current->Begin().ok());
  struct Stale {
    std::unique_ptr<Processor> p;
    std::vector<EventRow> seen;  // what it read while it was admin
  };
  std::vector<Stale> stale;
  std::set<std::string> keys;
  int refused = 0, stale_steps = 0;
  for (int step = 0; step < 3000; ++step) {
    now_ += 1;
    const int what = static_cast<int>(rng() % 100);
    if (what < 40) {
      const std::string key = "key-" + std::to_string(rng() % 900);  // repeats happen
      keys.insert(key);
      Api(key, R"({"project":"sim","summary":"s","decision":"d)" + key + R"("})");
    } else if (what < 75) {
      auto due = storage_.slurp->DueEvents(now_, 1 + rng() % 3);
      ASSERT_TRUE(due.ok());
      for (const auto& e : *due) {
        if (rng() % 4 == 0 && !stale.empty()) continue;
        ASSERT_TRUE(current->Process(e).ok()) << "the newest admin is never fenced";
      }
    } else if (what < 90) {
      if (stale.empty()) continue;
      Stale& s = stale[rng() % stale.size()];
      if (s.seen.empty()) continue;
      ++stale_steps;
      const EventRow e = s.seen.back();
      s.seen.pop_back();
      const bool had_record = storage_.slurp->GetRecord(e.seq).ok();
      Status st = s.p->Process(e);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.message();
        ++refused;
      }
      // Whatever happened, the deposed admin wrote nothing.
      auto rec = storage_.slurp->GetRecord(e.seq);
      if (!had_record) {
        EXPECT_FALSE(rec.ok()) << "event " << e.seq << " recorded by the stale term " << s.p->term();
      } else if (rec.ok()) {
        EXPECT_NE(rec->term, s.p->term());
      }
    } else {
      // A new election: the old admin keeps what it had read, and may act on it.
      auto seen = storage_.slurp->DueEvents(now_, 8);
      ASSERT_TRUE(seen.ok());
      stale.push_back({std::move(current), *seen});
      term += 1 + rng() % 2;
      current = std::make_unique<Processor>(Options(), term);
      ASSERT_TRUE(current->Begin().ok());
      if (stale.size() > 4) stale.erase(stale.begin());
    }
  }
  // The newest admin drains the queue.
  for (int i = 0; i < 10000; ++i) {
    auto n = current->RunOnce(64);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
  }
  auto stats = storage_.slurp->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->queued, 0);
  EXPECT_EQ(stats->dead, 0);
  EXPECT_EQ(static_cast<std::size_t>(stats->done), keys.size()) << "one event per key";
  RecordQuery all;
  all.limit = 100000;
  auto records = storage_.slurp->ListRecords(all);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), keys.size()) << "one record per event";
  std::set<std::int64_t> seqs;
  for (const auto& r : *records) {
    EXPECT_TRUE(seqs.insert(r.event_seq).second);
    const json rec = RecordAt(r.address);
    ASSERT_TRUE(rec.is_object()) << r.address;
    EXPECT_EQ(rec["event"]["seq"], r.event_seq);
    EXPECT_EQ(rec["term"], r.term) << "the content names the term that committed it";
  }
  EXPECT_GT(stale_steps, 50) << "the simulation exercised deposed admins";
  EXPECT_GT(refused, 0) << "and some of their writes were refused";
  std::printf("slurp simulation seed %llu: %zu events, %d stale steps, %d refused\n",
              static_cast<unsigned long long>(seed), keys.size(), stale_steps, refused);
}

}  // namespace
}  // namespace bzzz::slurp
