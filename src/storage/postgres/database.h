// Private to the PostgreSQL backend: the connection pool and the Database
// every repository runs its transactions through.
//
// Pool: at least min_connections open (opened at start, reopened as
// needed), at most max_connections; a caller waits up to acquire_timeout for
// one and then gets Unavailable. The most recently used idle connection is
// lent first, so the rest age out: idle connections above the minimum are
// closed after idle_timeout. A connection idle for longer than
// validate_after is checked with SELECT 1 before it is lent (health check
// on borrow); a broken one is dropped and replaced, so a server that
// restarted costs no failed call.
//
// Transactions: Database::Transact runs a body in one transaction and
// commits when it returns OK. When the connection breaks before COMMIT was
// sent, or the server asks for a retry (serialization failure, deadlock),
// the body runs again, once, on another connection: nothing of the first
// attempt was committed. When it breaks during COMMIT the outcome is
// unknown, and the call fails with Unavailable saying so.
#pragma once

#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "base/status.h"
#include "base/threads.h"
#include "storage/postgres/postgres.h"

namespace bzzz::storage::postgres {

inline constexpr std::string_view kClosedMessage = "store is closed";
inline constexpr std::string_view kNotMigratedMessage = "database not migrated; run `bzzz db migrate`";

// One server connection and the statements registered on it.
class PgConnection {
 public:
  explicit PgConnection(std::unique_ptr<pqxx::connection> conn) : conn_(std::move(conn)) {}
  pqxx::connection& raw() { return *conn_; }
  // Registers `sql` under `name` once per connection (libpqxx prepares it
  // on the server on first use) and returns the name (a copy: callers pass
  // temporaries).
  std::string Prepare(const std::string& name, const std::string& sql) {
    if (prepared_.insert(name).second) conn_->prepare(name, sql);
    return name;
  }
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();

 private:
  std::unique_ptr<pqxx::connection> conn_;
  std::unordered_set<std::string> prepared_;
};

class ConnectionPool {
 public:
  explicit ConnectionPool(PostgresOptions options) : options_(std::move(options)) {}
  ~ConnectionPool() { Close(); }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // A connection lent out; returned to the pool when destroyed, or closed
  // when Discard() was called (it broke).
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<PgConnection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_ != nullptr) pool_->Release(std::move(conn_), discard_);
    }
    PgConnection& operator*() const { return *conn_; }
    PgConnection* operator->() const { return conn_.get(); }
    void Discard() { discard_ = true; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<PgConnection> conn_;
    bool discard_ = false;
  };

  // Opens the minimum; Unavailable (the server's message) when it cannot.
  Status Fill();
  Result<Lease> Acquire();
  StoreHealth::Pool Stats();
  // Closes the idle connections; those lent out are closed when returned.
  // Later Acquire() calls fail with Unavailable.
  void Close();

 private:
  Result<std::unique_ptr<PgConnection>> Connect();
  void Release(std::unique_ptr<PgConnection> conn, bool discard);
  // Moves the idle connections to close (above the minimum, idle too long)
  // into `out`, to be destroyed outside the lock.
  void TakeExpiredLocked(std::chrono::steady_clock::time_point now,
                         std::deque<std::unique_ptr<PgConnection>>& out);

  const PostgresOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<PgConnection>> idle_;  // least recently used first; guarded by mu_
  int open_ = 0;                                    // idle, lent out and being opened; guarded by mu_
  int waiting_ = 0;                                 // guarded by mu_
  bool closed_ = false;                             // guarded by mu_
  std::atomic<std::uint64_t> opened_{0}, discarded_{0}, timeouts_{0}, connect_failures_{0};
};

// A failure of a libpqxx call as the Status callers get: Conflict for
// constraint violations, FailedPrecondition for a schema behind the code,
// Unavailable for what a retry may cure (connection lost, server shutting
// down or read-only, serialization failure, outcome of COMMIT unknown),
// Internal for the rest.
Status ErrorStatus(const std::exception& e, std::string_view what);
// Whether running the whole transaction again is safe and may succeed.
bool Retryable(const std::exception& e);

class Database {
 public:
  static Result<std::shared_ptr<Database>> Open(PostgresOptions options);
  ~Database() { Close(); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const PostgresOptions& options() const { return options_; }
  const std::string& node_id() const { return options_.node_id; }
  ConnectionPool& pool() { return *pool_; }

  // FailedPrecondition when the store was opened without a node id (the
  // per-node repositories cannot know whose rows are theirs).
  Status RequireNode() const;

  // Runs body(PgConnection&, Tx&) inside a transaction of type Tx
  // (pqxx::work, pqxx::read_transaction) and commits when it returns OK;
  // see the file comment for retries. Never throws.
  template <typename Tx, typename F>
  auto Run(std::string_view what, F&& body) -> decltype(body(std::declval<PgConnection&>(), std::declval<Tx&>())) {
    using R = decltype(body(std::declval<PgConnection&>(), std::declval<Tx&>()));
    CheckMayBlock("storage call");
    for (int attempt = 0;; ++attempt) {
      auto lease = pool_->Acquire();
      if (!lease.ok()) return R(lease.status());
      bool committing = false;
      try {
        Tx tx((*lease)->raw());
        R result = body(**lease, tx);
        if (!StatusOf(result).ok()) return result;  // the transaction aborts when tx goes
        committing = true;
        tx.commit();
        (*lease)->last_used = std::chrono::steady_clock::now();
        return result;
      } catch (const std::exception& e) {
        if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
            dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
          lease->Discard();
        }
        if (attempt == 0 && !committing && Retryable(e)) continue;
        if (committing && dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
          return R(Unavailable(std::string(what) + ": the connection broke during COMMIT; whether it took effect is unknown"));
        }
        return R(ErrorStatus(e, what));
      } catch (...) {
        return R(Internal(std::string(what) + ": unknown exception"));
      }
    }
  }

  template <typename F>
  auto Write(std::string_view what, F&& body) {
    return Run<pqxx::work>(what, std::forward<F>(body));
  }
  template <typename F>
  auto Read(std::string_view what, F&& body) {
    return Run<pqxx::read_transaction>(what, std::forward<F>(body));
  }
  // Outside any transaction (VACUUM, which cannot run inside one).
  template <typename F>
  auto Direct(std::string_view what, F&& body) {
    return Run<pqxx::nontransaction>(what, std::forward<F>(body));
  }

  void Close() { pool_->Close(); }

 private:
  explicit Database(PostgresOptions options)
      : options_(std::move(options)), pool_(std::make_unique<ConnectionPool>(options_)) {}

  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const Result<T>& r) {
    return r.status();
  }

  const PostgresOptions options_;
  std::unique_ptr<ConnectionPool> pool_;
};

// The per-backend factories (tasks.cc, context.cc, audit.cc, hmmm.cc,
// slurp.cc, store.cc).
std::shared_ptr<tasks::TaskRepository> MakeTaskRepository(std::shared_ptr<Database> db);
std::shared_ptr<ucxl::ContextRepository> MakeContextRepository(std::shared_ptr<Database> db);
std::shared_ptr<audit::AuditRepository> MakeAuditRepository(std::shared_ptr<Database> db);
std::shared_ptr<hmmm::HmmmRepository> MakeHmmmRepository(std::shared_ptr<Database> db);
std::shared_ptr<slurp::SlurpRepository> MakeSlurpRepository(std::shared_ptr<Database> db);
std::shared_ptr<Store> MakeStore(std::shared_ptr<Database> db);

// Reading columns: text ("" for NULL), integers, bytea.
std::string Text(const pqxx::field& f);
std::int64_t Int(const pqxx::field& f);
std::string Bytes(const pqxx::field& f);

}  // namespace bzzz::storage::postgres
