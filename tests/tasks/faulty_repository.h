// A TaskRepository in front of a real one that fails writes on demand: the
// store failing under the task manager (disk full, database locked by
// another process), so that the group commit's retry path is exercised for
// real rather than assumed.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tasks/repository.h"

namespace bzzz::tasks {

class FaultyTaskRepository final : public TaskRepository {
 public:
  explicit FaultyTaskRepository(std::shared_ptr<TaskRepository> inner) : inner_(std::move(inner)) {}

  // Every WriteTasks fails with Unavailable, writing nothing, until Heal().
  void BreakWrites() { broken_ = true; }
  void Heal() { broken_ = false; }
  // WriteTasks calls refused so far, and calls that reached the real store.
  int refused_writes() const { return refused_; }
  int passed_writes() const { return passed_; }

  Status WriteTasks(const std::vector<TaskRow>& upserts, const std::vector<std::string>& deletes) override {
    if (broken_) {
      ++refused_;
      return Unavailable("injected: the database is locked by another process");
    }
    ++passed_;
    return inner_->WriteTasks(upserts, deletes);
  }
  Result<TaskRow> GetTask(const std::string& id) override { return inner_->GetTask(id); }
  Result<TaskRow> FindTaskByIdempotencyKey(const std::string& key) override {
    return inner_->FindTaskByIdempotencyKey(key);
  }
  Result<std::vector<TaskRow>> ListTasks(const TaskQuery& query) override { return inner_->ListTasks(query); }
  Result<std::vector<TaskRow>> TasksInStates(const std::vector<std::string>& states) override {
    return inner_->TasksInStates(states);
  }
  Result<TaskTotals> TaskStats() override { return inner_->TaskStats(); }

 private:
  std::shared_ptr<TaskRepository> inner_;
  std::atomic<bool> broken_{false};
  std::atomic<int> refused_{0};
  std::atomic<int> passed_{0};
};

}  // namespace bzzz::tasks
