// Backups of a PostgreSQL store with pg_dump and pg_restore.
//
// Create: pg_dump in its custom format (compressed, restorable table by
// table) from one consistent snapshot, so the nodes keep writing while it
// runs; written to <output>.partial and renamed when complete. Progress is
// reported per table from pg_dump's --verbose lines.
// Describe: reads every data block of the archive through pg_restore (which
// checks it) and counts each table's rows; the schema versions come from the
// archived schema_migrations.
// Restore: refuses an archive whose schema is newer than this binary, and a
// database that other bzzz nodes are connected to; keeps the current data
// beside the archive (<input>.before-restore-<UTC time>) unless the
// database is empty; then pg_restore --clean in one transaction, so a failed
// restore leaves the database as it was.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "storage/migrations.h"
#include "storage/postgres/database.h"

extern char** environ;

namespace bzzz::storage::postgres {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The newest installed PostgreSQL client tool of that name (Debian keeps
// them under /usr/lib/postgresql/<major>/bin), else the name for PATH.
std::string Tool(const std::string& name) {
  std::string best;
  int best_major = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string major = entry.path().filename().string();
    const fs::path candidate = entry.path() / "bin" / name;
    if (major.empty() || !std::all_of(major.begin(), major.end(), ::isdigit) || !fs::exists(candidate, ec)) continue;
    if (std::stoi(major) > best_major) {
      best_major = std::stoi(major);
      best = candidate.string();
    }
  }
  return best.empty() ? name : best;
}

struct ToolRun {
  int exit_code = -1;
  std::string errors;  // stderr lines that are not progress
};

// Keeps the lines of stderr that report a failure, for the error message.
void KeepError(ToolRun& run, const std::string& line) {
  if (line.find("error") == std::string::npos && line.find("fatal") == std::string::npos &&
      line.find("FATAL") == std::string::npos && line.find("ERROR") == std::string::npos) {
    return;
  }
  if (run.errors.size() < 2000) run.errors += (run.errors.empty() ? "" : "; ") + line;
}

// Runs a client tool with the connection in its environment (the password
// never appears in a command line), calling `on_out` and `on_err` with each
// line of its stdout and stderr.
Result<ToolRun> RunTool(const std::vector<std::string>& argv, const PostgresOptions& o,
                        const std::function<void(const std::string&)>& on_out,
                        const std::function<void(const std::string&)>& on_err) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PG", 2) != 0) env.emplace_back(*e);
  }
  env.push_back("PGHOST=" + o.host);
  env.push_back("PGPORT=" + std::to_string(o.port));
  env.push_back("PGUSER=" + o.user);
  env.push_back("PGDATABASE=" + o.database);
  env.push_back("PGSSLMODE=" + o.sslmode);
  env.push_back("PGCONNECT_TIMEOUT=" + std::to_string(std::max<std::int64_t>(2, o.connect_timeout.count() / 1000)));
  if (!o.password.empty()) env.push_back("PGPASSWORD=" + o.password);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return Internal(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execve(cargv[0], cargv.data(), cenv.data());
    if (std::strchr(cargv[0], '/') == nullptr) execvpe(cargv[0], cargv.data(), cenv.data());
    const std::string msg = std::string("cannot run ") + cargv[0] + ": " + std::strerror(errno) + "\n";
    [[maybe_unused]] auto n = write(2, msg.data(), msg.size());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  ToolRun run;
  std::string buffers[2];
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char chunk[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        if (!buffers[i].empty()) {
          if (i == 1) KeepError(run, buffers[i]);
          (i == 0 ? on_out : on_err)(buffers[i]);
        }
        buffers[i].clear();
        continue;
      }
      buffers[i].append(chunk, static_cast<std::size_t>(n));
      std::size_t start = 0, nl;
      while ((nl = buffers[i].find('\n', start)) != std::string::npos) {
        const std::string line = buffers[i].substr(start, nl - start);
        if (i == 1) KeepError(run, line);
        (i == 0 ? on_out : on_err)(line);
        start = nl + 1;
      }
      buffers[i].erase(0, start);
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

// `pg_dump: dumping contents of table "public.tasks"` → true.
bool IsTableProgress(const std::string& line) {
  return line.find("dumping contents of table") != std::string::npos ||
         line.find("processing data for table") != std::string::npos;
}

std::uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::uint64_t>(size);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The tables of the public schema with their rows, and schema versions.
Status DescribeDatabase(Database& db, BackupReport& report) {
  return db.Read("describing the database", [&](PgConnection&, pqxx::read_transaction& tx) -> Status {
    for (const auto& t : tx.exec("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")) {
      const std::string name = t[0].as<std::string>();
      const auto rows = tx.exec("SELECT COUNT(*) FROM " + tx.quote_name(name))[0][0].as<std::int64_t>();
      report.tables.emplace_back(name, static_cast<std::uint64_t>(rows));
      if (name == "schema_migrations") {
        for (const auto& r : tx.exec("SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain")) {
          report.domains[r[0].as<std::string>()] = r[1].as<int>();
        }
      }
    }
    return {};
  });
}

Status CheckNotNewer(const BackupReport& report) {
  for (const DomainMigrations& d : Migrations()) {
    auto it = report.domains.find(d.domain);
    const int latest = LatestOf(d);
    if (it != report.domains.end() && it->second > latest) {
      return FailedPrecondition("the backup's schema of " + d.domain + " is at version " + std::to_string(it->second) +
                                ", newer than this binary (" + std::to_string(latest) + "); restore it with a newer bzzz");
    }
  }
  return {};
}

}  // namespace

Result<BackupReport> Backup(const PostgresOptions& options, const std::string& output,
                            const BackupProgressFn& progress) {
  const auto start = Clock::now();
  std::error_code ec;
  if (output.empty()) return InvalidArgument("no output file given");
  if (fs::exists(output, ec)) return InvalidArgument(output + " exists; a backup never overwrites a file");
  PostgresOptions one = options;
  one.min_connections = 1;
  one.max_connections = 1;
  auto db = Database::Open(one);
  if (!db.ok()) return db.status();
  BackupReport report;
  report.backend = "postgres";
  report.path = output;
  report.target = Location(options);
  if (Status s = DescribeDatabase(**db, report); !s.ok()) return s;
  (*db)->Close();

  const std::string partial = output + ".partial";
  fs::remove(partial, ec);
  // The archive holds every node's data: readable by its owner only, from
  // the first byte (pg_dump writes into the file created here, keeping its
  // mode).
  if (const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); fd >= 0) {
    ::close(fd);
  } else {
    return Unavailable("cannot create " + partial + ": " + std::strerror(errno));
  }
  BackupProgress p{0, report.tables.size(), "tables"};
  auto run = RunTool({Tool("pg_dump"), "--format=custom", "--verbose", "--no-owner", "--no-privileges",
                      "--file=" + partial},
                     options, [](const std::string&) {},
                     [&](const std::string& line) {
                       if (!IsTableProgress(line)) return;
                       p.done = std::min(p.done + 1, p.total);
                       if (progress) progress(p);
                     });
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    fs::remove(partial, ec);
    return Unavailable("pg_dump failed (exit " + std::to_string(run->exit_code) + "): " + run->errors);
  }
  fs::rename(partial, output, ec);
  if (ec) return Internal("cannot rename " + partial + " to " + output + ": " + ec.message());
  report.bytes = FileSize(output);
  report.seconds = Seconds(start);
  return report;
}

Result<BackupReport> DescribeArchive(const std::string& path) {
  const auto start = Clock::now();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return InvalidArgument(path + " is not a file");
  BackupReport report;
  report.backend = "postgres";
  report.path = path;
  report.bytes = FileSize(path);
  // The data of every table as COPY blocks: "COPY public.t (...) FROM stdin;",
  // one line per row, "\." at the end.
  std::map<std::string, std::uint64_t> rows;
  std::string table;
  bool in_migrations = false;
  auto run = RunTool({Tool("pg_restore"), "--data-only", "--file=-", path}, PostgresOptions{},
                     [&](const std::string& line) {
                       if (!table.empty()) {
                         if (line == "\\.") {
                           table.clear();
                           in_migrations = false;
                           return;
                         }
                         ++rows[table];
                         if (in_migrations) {
                           // domain \t version \t name \t applied_at
                           const auto tab1 = line.find('\t');
                           const auto tab2 = line.find('\t', tab1 + 1);
                           if (tab1 != std::string::npos && tab2 != std::string::npos) {
                             const std::string domain = line.substr(0, tab1);
                             const int version = std::atoi(line.substr(tab1 + 1, tab2 - tab1 - 1).c_str());
                             report.domains[domain] = std::max(report.domains[domain], version);
                           }
                         }
                         return;
                       }
                       if (line.rfind("COPY ", 0) == 0 && line.size() > 5) {
                         std::string name = line.substr(5, line.find(' ', 5) - 5);
                         if (name.rfind("public.", 0) == 0) name = name.substr(7);
                         table = name;
                         rows[table];
                         in_migrations = table == "schema_migrations";
                       }
                     },
                     [](const std::string&) {});
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return InvalidArgument(path + " is not a readable pg_dump archive: " +
                           (run->errors.empty() ? "pg_restore exit " + std::to_string(run->exit_code) : run->errors));
  }
  if (rows.count("schema_migrations") == 0) {
    return InvalidArgument(path + " is a pg_dump archive but not of a bzzz store (no schema_migrations)");
  }
  for (auto& [name, n] : rows) report.tables.emplace_back(name, n);
  report.seconds = Seconds(start);
  return report;
}

Result<BackupReport> Restore(const PostgresOptions& options, const std::string& input, bool replace_existing,
                             const BackupProgressFn& progress) {
  const auto start = Clock::now();
  auto archive = DescribeArchive(input);
  if (!archive.ok()) return archive.status();
  if (Status s = CheckNotNewer(*archive); !s.ok()) return s;

  PostgresOptions one = options;
  one.min_connections = 1;
  one.max_connections = 1;
  auto db = Database::Open(one);
  if (!db.ok()) return db.status();
  BackupReport current;
  if (Status s = DescribeDatabase(**db, current); !s.ok()) return s;
  // Nodes writing while the tables are replaced would interleave with the
  // restore: every other bzzz connection must be gone. A node that has
  // just stopped leaves pg_stat_activity a moment after it closed its
  // connections (the backend exits asynchronously): wait up to 2 s.
  Result<std::int64_t> others = std::int64_t{0};
  for (int attempt = 0; attempt < 20; ++attempt) {
    others = (*db)->Read("listing connections", [&](PgConnection&, pqxx::read_transaction& tx) -> Result<std::int64_t> {
      return tx.exec("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                     "application_name = 'bzzz' AND pid <> pg_backend_pid()")[0][0]
          .as<std::int64_t>();
    });
    if (!others.ok() || *others == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (*db)->Close();
  if (!others.ok()) return others.status();
  if (*others > 0) {
    return FailedPrecondition(std::to_string(*others) + " other bzzz connection(s) to " + Location(options) +
                              " are open; stop every node using this database before restoring");
  }
  // Data is any row but the schema's own bookkeeping: a database that was
  // only migrated is empty.
  std::uint64_t rows = 0;
  for (const auto& [name, n] : current.tables) rows += name == "schema_migrations" ? 0 : n;
  BackupReport report = *archive;
  report.target = Location(options);
  if (rows > 0) {
    if (!replace_existing) {
      return FailedPrecondition(Location(options) + " holds " + std::to_string(rows) +
                                " rows; pass --force to replace them (they are saved first)");
    }
    std::string keep = input + ".before-restore-" + BackupTimestamp();
    auto saved = Backup(options, keep, nullptr);
    if (!saved.ok()) return Status(saved.status().code(), "saving the current data first: " + saved.status().message());
    report.previous = keep;
  }
  BackupProgress p{0, archive->tables.size(), "tables"};
  auto run = RunTool({Tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                      "--single-transaction", "--exit-on-error", "--verbose", "--dbname=" + options.database, input},
                     options, [](const std::string&) {},
                     [&](const std::string& line) {
                       if (!IsTableProgress(line)) return;
                       p.done = std::min(p.done + 1, p.total);
                       if (progress) progress(p);
                     });
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return Unavailable("pg_restore failed (exit " + std::to_string(run->exit_code) +
                       "); the database is unchanged: " + run->errors);
  }
  report.seconds = Seconds(start);
  return report;
}

}  // namespace bzzz::storage::postgres
