#include "storage/migrations.h"

#include <set>

namespace bzzz::storage {

Status ValidateMigrations(const std::vector<DomainMigrations>& domains) {
  std::set<std::string> seen;
  for (const DomainMigrations& d : domains) {
    if (d.domain.empty() || !seen.insert(d.domain).second) {
      return Internal("invalid migration list: domain \"" + d.domain + "\" is empty or listed twice");
    }
    for (std::size_t i = 0; i < d.steps.size(); ++i) {
      const int expected = static_cast<int>(i) + 1;
      if (d.steps[i].version != expected) {
        return Internal("invalid migration list: " + d.domain + " version " + std::to_string(d.steps[i].version) +
                        " (\"" + d.steps[i].name + "\") at position " + std::to_string(expected) +
                        "; versions must be 1, 2, 3, ... in order");
      }
    }
  }
  return {};
}

int LatestOf(const DomainMigrations& d) { return d.steps.empty() ? 0 : d.steps.back().version; }

int LatestTotal(const std::vector<DomainMigrations>& domains) {
  int total = 0;
  for (const auto& d : domains) total += LatestOf(d);
  return total;
}

Result<MigrationState> StateOf(const std::vector<DomainMigrations>& known,
                               const std::map<std::string, std::int64_t>& applied) {
  MigrationState state;
  for (const DomainMigrations& d : known) {
    auto it = applied.find(d.domain);
    const std::int64_t current = it == applied.end() ? 0 : it->second;
    const int latest = LatestOf(d);
    if (current > latest) {
      return FailedPrecondition("database schema of " + d.domain + " is at version " + std::to_string(current) +
                                ", newer than this binary (" + std::to_string(latest) + "); upgrade bzzz");
    }
    state.domains.push_back({d.domain, static_cast<int>(current), latest});
    state.current_version += static_cast<int>(current);
    state.latest_version += latest;
  }
  return state;
}

}  // namespace bzzz::storage
