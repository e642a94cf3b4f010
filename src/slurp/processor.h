// Processor: SLURP's work for one admin term, without threads (the service
// runs it on its own thread; the simulation in tests/slurp interleaves
// several terms by hand).
//
// For each due event, oldest first: curate it into a decision record
// (citations resolved, each one must exist); complete the event in the
// store under the term fence, in one transaction with its record row (the
// commit point: one record per event, never from a stale term); then write
// the record as a version at its UCXL address (its own: the event's seq is
// part of it) unless one is there, and announce it. A record committed but
// not written (the write failed, or the admin died in between) is written
// again: retried by this term, and looked for by every new term at its
// start (records of the last hour). A curation failure is retried with
// backoff up to slurp.max_retries, then the event is dead (the dead-letter
// queue); a citation that names nothing is dead at once. When the store
// says a newer term has written (FailedPrecondition), the processor stops
// for good.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "slurp/record.h"
#include "slurp/repository.h"

namespace bzzz::hmmm {
class HmmmRepository;
}
namespace bzzz::ucxl {
class ContextStore;
}

namespace bzzz::slurp {

class SlurpProbe;

// What SLURP knows of a task (the node fills it from the task services).
struct TaskFacts {
  std::string id;
  std::string state;
  std::string executor;
  std::string project;
  std::string name;
  std::string submitter;
  std::vector<std::string> agents;  // who ran its attempts, in order, without repeats
  int attempts = 0;
  std::string outcome;              // the answer or the last error, cut short
};

struct Sources {
  // NotFound when the task is unknown here.
  std::function<Result<TaskFacts>(const std::string& id)> task;
  std::shared_ptr<hmmm::HmmmRepository> rooms;  // null: messages cannot be cited
};

struct ProcessorOptions {
  std::shared_ptr<SlurpRepository> store;
  ucxl::ContextStore* context = nullptr;
  Sources sources;
  std::string default_role = "decision";
  int max_retries = 5;
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_max{60000};
  std::function<std::int64_t()> now;  // Unix ms; null: the real clock
  SlurpProbe* probe = nullptr;
};

// A record ready to write: its content and where.
struct Curated {
  Record record;
  std::string role;
  std::string address;
};

// Curates one event (InvalidArgument: it can never become a record, e.g. a
// citation that names nothing; other errors may pass).
Result<Curated> Curate(const EventRow& event, const Sources& sources, SlurpRepository& store,
                       const std::string& default_role, std::uint64_t term, std::int64_t now_ms);

class Processor {
 public:
  Processor(ProcessorOptions options, std::uint64_t term);

  std::uint64_t term() const { return term_; }
  // Admits the term in the store. FailedPrecondition: a newer term wrote.
  Status Begin();
  // Up to `limit` due events; how many were completed or failed.
  // FailedPrecondition once fenced.
  Result<std::size_t> RunOnce(std::size_t limit);
  // One event. FailedPrecondition when fenced; OK otherwise (a failure of
  // the event itself is recorded in the store and counted).
  Status Process(const EventRow& event);

  std::int64_t last_seq() const { return last_seq_; }
  std::int64_t last_ms() const { return last_ms_; }
  const std::string& last_address() const { return last_address_; }

 private:
  std::int64_t Now() const;
  Status Failed(const EventRow& event, const Status& why);
  Status Write(const Curated& curated);
  Status Rewrite(const RecordRow& row);
  Status Repair(std::int64_t since_ms);

  ProcessorOptions o_;
  std::uint64_t term_;
  bool fenced_ = false;
  std::int64_t last_seq_ = 0;
  std::int64_t last_ms_ = 0;
  std::string last_address_;
  std::vector<std::int64_t> unwritten_;  // committed records whose write failed
};

}  // namespace bzzz::slurp
