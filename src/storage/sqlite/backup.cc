// Backups of the SQLite store: the online backup API inside one read
// transaction, integrity_check and a description of the copy, and restore
// by copy-then-rename (storage/backup.h).
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

#include "storage/backup.h"
#include "storage/sqlite/sqlite.h"

namespace bzzz::storage::sqlite {

namespace fs = std::filesystem;

namespace {

constexpr int kPagesPerStep = 256;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

Result<Db> OpenDb(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return Unavailable("cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    return Unavailable(message);
  }
  return Status::Ok();
}

// Runs `sql`, calling `row` for every row.
Status Query(sqlite3* db, const std::string& sql, const std::function<void(sqlite3_stmt*)>& row) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return Unavailable(sqlite3_errmsg(db));
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
  sqlite3_finalize(stmt);
  return rc == SQLITE_DONE ? Status::Ok() : Unavailable(sqlite3_errmsg(db));
}

std::string Text(sqlite3_stmt* stmt, int column) {
  const auto* t = sqlite3_column_text(stmt, column);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// Copies `from` into `to` page by page, in one read transaction of `from`.
Status Copy(sqlite3* from, sqlite3* to, const BackupProgressFn& progress) {
  // The read transaction pins one snapshot (WAL): the copy is consistent
  // and is not restarted by the node's writes in between steps.
  if (auto s = Exec(from, "BEGIN; SELECT COUNT(*) FROM sqlite_master;"); !s.ok()) return s;
  sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
  if (backup == nullptr) {
    (void)Exec(from, "COMMIT");
    return Unavailable(std::string("backup: ") + sqlite3_errmsg(to));
  }
  int rc;
  do {
    rc = sqlite3_backup_step(backup, kPagesPerStep);
    if (progress) {
      const auto total = static_cast<std::uint64_t>(sqlite3_backup_pagecount(backup));
      const auto left = static_cast<std::uint64_t>(sqlite3_backup_remaining(backup));
      progress({total - left, total});
    }
  } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
  sqlite3_backup_finish(backup);
  (void)Exec(from, "COMMIT");
  if (rc != SQLITE_DONE) return Unavailable(std::string("backup: ") + sqlite3_errstr(rc));
  return Status::Ok();
}

// Copies the database at `from_path` into a new file `partial` (0600: it
// holds everything the node has); nothing is left behind on failure.
Status CopyFile(const std::string& from_path, const std::string& partial, const BackupProgressFn& progress) {
  std::error_code ec;
  fs::remove(partial, ec);
  auto from = OpenDb(from_path, SQLITE_OPEN_READONLY);
  if (!from.ok()) return from.status();
  {
    auto to = OpenDb(partial, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!to.ok()) return to.status();
    if (auto s = Copy(from->get(), to->get(), progress); !s.ok()) {
      to->reset();
      fs::remove(partial, ec);
      return s;
    }
  }
  fs::permissions(partial, fs::perms::owner_read | fs::perms::owner_write, ec);
  return Status::Ok();
}

// integrity_check, then the schema version of each domain and the rows of
// each table.
Status Describe(sqlite3* db, BackupReport& report) {
  std::string verdict;
  if (auto s = Query(db, "PRAGMA integrity_check", [&](sqlite3_stmt* st) { verdict += Text(st, 0); }); !s.ok()) {
    return InvalidArgument("not a readable SQLite database: " + s.message());
  }
  if (verdict != "ok") return InvalidArgument("integrity_check failed: " + verdict.substr(0, 200));
  std::vector<std::string> tables;
  if (auto s = Query(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                     [&](sqlite3_stmt* st) { tables.push_back(Text(st, 0)); });
      !s.ok()) {
    return InvalidArgument(s.message());
  }
  bool has_migrations = false;
  for (const auto& t : tables) {
    has_migrations = has_migrations || t == "schema_migrations";
    std::uint64_t rows = 0;
    // Table names come from sqlite_master; quote them as identifiers.
    std::string quoted = "\"";
    for (char c : t) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    if (auto s = Query(db, "SELECT COUNT(*) FROM " + quoted,
                       [&](sqlite3_stmt* st) { rows = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)); });
        !s.ok()) {
      return InvalidArgument(s.message());
    }
    report.tables.emplace_back(t, rows);
  }
  if (!has_migrations) return InvalidArgument("not a bzzz store (no schema_migrations table)");
  return Query(db, "SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain", [&](sqlite3_stmt* st) {
    report.domains[Text(st, 0)] = sqlite3_column_int(st, 1);
  });
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Result<BackupReport> Backup(const std::string& source, const std::string& output, const BackupProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::exists(source, ec)) return NotFound("no database at " + source);
  if (fs::exists(output, ec)) return InvalidArgument(output + " exists; a backup never overwrites a file");
  const std::string partial = output + ".partial";
  if (auto s = CopyFile(source, partial, progress); !s.ok()) return s;
  BackupReport report;
  report.backend = "sqlite";
  report.target = source;
  {
    auto check = OpenDb(partial, SQLITE_OPEN_READONLY);
    if (!check.ok()) return check.status();
    if (auto s = Describe(check->get(), report); !s.ok()) {
      fs::remove(partial, ec);
      return Internal("the copy does not check out: " + s.message());
    }
  }
  fs::rename(partial, output, ec);
  if (ec) return Unavailable("cannot rename " + partial + " to " + output + ": " + ec.message());
  report.path = output;
  report.bytes = fs::file_size(output, ec);
  report.seconds = Since(start);
  return report;
}

Result<BackupReport> DescribeFile(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound("no backup file at " + path);
  auto db = OpenDb(path, SQLITE_OPEN_READONLY);
  if (!db.ok()) return db.status();
  BackupReport report;
  report.backend = "sqlite";
  report.path = path;
  report.bytes = fs::file_size(path, ec);
  if (auto s = Describe(db->get(), report); !s.ok()) return InvalidArgument(path + ": " + s.message());
  return report;
}

Result<BackupReport> Restore(const std::string& input, const std::string& target, bool replace_existing,
                             const BackupProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  auto report = DescribeFile(input);
  if (!report.ok()) return report.status();
  // Not newer than this binary: every domain's version must be known here.
  for (const auto& [domain, version] : report->domains) {
    int known = 0;
    for (const auto& d : Migrations()) {
      if (d.domain == domain) known = static_cast<int>(d.steps.size());
    }
    if (version > known) {
      return FailedPrecondition(input + " has schema " + domain + "/" + std::to_string(version) +
                                ", newer than this binary (" + domain + "/" + std::to_string(known) +
                                "): restore it with the release that wrote it");
    }
  }
  std::error_code ec;
  report->target = target;
  if (fs::exists(target, ec)) {
    if (!replace_existing) {
      return FailedPrecondition(target + " exists; pass --force to replace it (it is kept beside as " +
                                "<file>.before-restore-<time>)");
    }
  }
  const std::string partial = target + ".restore-partial";
  if (auto s = CopyFile(input, partial, progress); !s.ok()) return s;
  if (fs::exists(target, ec)) {
    // Fold the old database's WAL into it before keeping it aside.
    if (auto old = OpenDb(target, SQLITE_OPEN_READWRITE); old.ok()) {
      (void)Exec(old->get(), "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    report->previous = target + ".before-restore-" + BackupTimestamp();
    fs::rename(target, report->previous, ec);
    if (ec) return Unavailable("cannot move " + target + " aside: " + ec.message());
  }
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(target + suffix, ec);
  fs::rename(partial, target, ec);
  if (ec) return Unavailable("cannot rename " + partial + " to " + target + ": " + ec.message());
  report->seconds = Since(start);
  return report;
}

}  // namespace bzzz::storage::sqlite
