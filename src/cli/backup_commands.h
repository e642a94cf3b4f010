// `bzzz backup create|restore|verify`: backups of the node's store
// (storage/backup.h; docs/operations.md "Backups").
#pragma once

#include <string>

#include "config/config.h"

namespace bzzz::cli {

// Writes a backup of the configured store to `output` ("" names one
// bzzz-backup-<UTC time>.db in the current directory). The node may run.
// Exit 0, 1 when it failed.
int BackupCreate(const config::Config& config, std::string output, bool as_json);
// Checks a backup file and prints what it holds. Exit 0 when it checks out.
int BackupVerify(const std::string& path, bool as_json);
// Replaces the configured store with a backup. Refused while a node runs
// on the data directory (its LOCK is held), and, without `force`, when a
// database exists. Exit 0, 1 refused or failed.
int BackupRestore(const config::Config& config, const std::string& input, bool force, bool as_json);

}  // namespace bzzz::cli
