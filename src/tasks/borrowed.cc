#include "tasks/borrowed.h"

namespace bzzz::tasks {

void BorrowedWork::Accept(std::vector<Assignment> jobs) {
  for (auto& j : jobs) queued_.push_back(std::move(j));
}

std::optional<Assignment> BorrowedWork::Next() {
  if (queued_.empty()) return std::nullopt;
  Assignment job = std::move(queued_.front());
  queued_.pop_front();
  running_[{job.task_id, job.attempt}] = job;
  return job;
}

void BorrowedWork::Finish(const Assignment& job) { running_.erase({job.task_id, job.attempt}); }

std::vector<Assignment> BorrowedWork::Held() const {
  std::vector<Assignment> out(queued_.begin(), queued_.end());
  for (const auto& [key, a] : running_) out.push_back(a);
  return out;
}

std::vector<Assignment> BorrowedWork::TakeQueued() {
  std::vector<Assignment> out(std::make_move_iterator(queued_.begin()), std::make_move_iterator(queued_.end()));
  queued_.clear();
  return out;
}

}  // namespace bzzz::tasks
