// BorrowedWork: the attempts other nodes lent to this one (cluster.h), from
// the grant until an agent reports their end. Queued ones go to the local
// agents before local work; queued and running ones are renewed with their
// owners; queued ones go back to their owners when the node stops.
// Not thread-safe: TaskManager keeps it under its lock; the simulation
// (tests/tasks/cluster_sim_test.cc) drives it directly.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tasks/core.h"

namespace bzzz::tasks {

class BorrowedWork {
 public:
  void Accept(std::vector<Assignment> jobs);
  // The oldest queued attempt, now running.
  std::optional<Assignment> Next();
  // Its agent reported the end (the attempt leaves).
  void Finish(const Assignment& job);
  // Queued and running, for renewals.
  std::vector<Assignment> Held() const;
  // Removes and returns the queued ones.
  std::vector<Assignment> TakeQueued();
  std::size_t queued() const { return queued_.size(); }
  std::size_t running() const { return running_.size(); }

 private:
  std::deque<Assignment> queued_;
  std::map<std::pair<std::string, int>, Assignment> running_;  // (task, attempt)
};

}  // namespace bzzz::tasks
