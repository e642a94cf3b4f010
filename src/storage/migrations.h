// What every backend does the same with its migration lists: check that
// they are well formed and compare what a database has applied with what
// this binary knows (store.h MigrationState).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/store.h"

namespace bzzz::storage {

// Internal when a domain is empty or listed twice, or its versions are not
// 1, 2, 3, ... in order: a bug in this binary, found before touching a
// database.
Status ValidateMigrations(const std::vector<DomainMigrations>& domains);
// The highest version of a domain (0 without steps) and their sum.
int LatestOf(const DomainMigrations& domain);
int LatestTotal(const std::vector<DomainMigrations>& domains);
// The state of a database that has applied `applied` (highest version by
// domain); FailedPrecondition when a domain is newer than this binary.
Result<MigrationState> StateOf(const std::vector<DomainMigrations>& known,
                               const std::map<std::string, std::int64_t>& applied);

}  // namespace bzzz::storage
