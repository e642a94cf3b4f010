#include "cli/backup_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "storage/backup.h"

namespace bzzz::cli {

namespace {

using nlohmann::json;

// Progress on stderr for long copies: SQLite every 10% past 4,096 pages
// (16 MiB); PostgreSQL after each table.
storage::BackupProgressFn Progress(const char* what) {
  auto last = std::make_shared<int>(-1);
  return [what, last](const storage::BackupProgress& p) {
    const bool pages = std::string_view(p.unit) == "pages";
    if (p.total == 0 || (pages && p.total < 4096)) return;
    const int percent = static_cast<int>(p.done * 100 / p.total);
    if (pages && percent / 10 == *last / 10 && percent != 100) return;
    *last = percent;
    std::fprintf(stderr, "%s: %d%% (%llu of %llu %s)\n", what, percent, static_cast<unsigned long long>(p.done),
                 static_cast<unsigned long long>(p.total), p.unit);
  };
}

json ReportJson(const storage::BackupReport& r) {
  json tables = json::object();
  for (const auto& [name, rows] : r.tables) tables[name] = rows;
  return {{"backend", r.backend}, {"path", r.path},     {"target", r.target},   {"previous", r.previous},
          {"bytes", r.bytes},     {"domains", r.domains}, {"tables", tables},   {"seconds", r.seconds}};
}

void PrintReport(const storage::BackupReport& r) {
  std::string domains;
  for (const auto& [d, v] : r.domains) domains += (domains.empty() ? "" : ", ") + d + "/" + std::to_string(v);
  std::printf("schema: %s\n", domains.c_str());
  for (const auto& [name, rows] : r.tables) std::printf("  %-22s %llu rows\n", name.c_str(), static_cast<unsigned long long>(rows));
}

std::string DefaultName(const config::Config& config) {
  return "bzzz-backup-" + storage::BackupTimestamp() + (config.storage.backend == "postgres" ? ".dump" : ".db");
}

}  // namespace

int BackupCreate(const config::Config& config, std::string output, bool as_json) {
  if (output.empty()) output = DefaultName(config);
  auto r = storage::CreateBackup(config, output, as_json ? nullptr : Progress("backup"));
  if (!r.ok()) {
    PrintError("backup failed: " + r.status().message());
    return kExitFailure;
  }
  if (as_json) {
    std::cout << ReportJson(*r).dump(2) << "\n";
    return kExitOk;
  }
  std::printf("backup of %s written to %s (%llu bytes, %.2f s)\n", r->target.c_str(), r->path.c_str(),
              static_cast<unsigned long long>(r->bytes), r->seconds);
  PrintReport(*r);
  return kExitOk;
}

int BackupVerify(const std::string& path, bool as_json) {
  auto r = storage::DescribeBackup(path);
  if (!r.ok()) {
    PrintError("backup does not check out: " + r.status().message());
    return kExitFailure;
  }
  if (as_json) {
    std::cout << ReportJson(*r).dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%s: a bzzz %s store, integrity ok (%llu bytes)\n", path.c_str(), r->backend.c_str(),
              static_cast<unsigned long long>(r->bytes));
  PrintReport(*r);
  return kExitOk;
}

int BackupRestore(const config::Config& config, const std::string& input, bool force, bool as_json) {
  // The node's own lock: held while a node runs on the directory, and held
  // here during the restore so that none starts meanwhile.
  std::error_code ec;
  std::filesystem::create_directories(config.node.data_dir, ec);
  const std::string lock_path = (std::filesystem::path(config.node.data_dir) / "LOCK").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (fd >= 0) ::close(fd);
    PrintError("a node is running on " + config.node.data_dir + " (" + lock_path +
               " is locked): stop it before restoring");
    return kExitFailure;
  }
  auto r = storage::RestoreBackup(config, input, force, as_json ? nullptr : Progress("restore"));
  ::close(fd);
  if (!r.ok()) {
    PrintError("restore refused: " + r.status().message());
    return kExitFailure;
  }
  if (as_json) {
    std::cout << ReportJson(*r).dump(2) << "\n";
    return kExitOk;
  }
  std::printf("restored %s from %s (%.2f s)%s\n", r->target.c_str(), r->path.c_str(), r->seconds,
              r->previous.empty() ? "" : ("; the database it replaced is kept as " + r->previous).c_str());
  PrintReport(*r);
  std::printf("start the node: it applies any migration newer than the backup\n");
  return kExitOk;
}

}  // namespace bzzz::cli
