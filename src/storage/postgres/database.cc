// The PostgreSQL connection pool, Database::Open, the error mapping and the
// column readers.
#include "storage/postgres/database.h"

#include <algorithm>
#include <cstdlib>

namespace bzzz::storage::postgres {
namespace {

using Clock = std::chrono::steady_clock;

// libpq's keyword=value syntax: single quotes, with \ and ' escaped.
std::string Quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

bool StartsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::string ConnectionString(const PostgresOptions& o) {
  // connect_timeout is in whole seconds and libpq treats 1 as 2.
  const auto timeout_s = std::max<std::int64_t>(2, (o.connect_timeout.count() + 999) / 1000);
  std::string s = "host=" + Quote(o.host) + " port=" + std::to_string(o.port) + " dbname=" + Quote(o.database) +
                  " user=" + Quote(o.user) + " sslmode=" + Quote(o.sslmode) +
                  " connect_timeout=" + std::to_string(timeout_s) + " application_name='bzzz'" +
                  // A node that stops in the middle of a transaction (frozen,
                  // cut off) must not hold its row locks for long: the server
                  // ends such a session after 5 s. Ours last milliseconds.
                  " options='-c idle_in_transaction_session_timeout=5000'";
  if (!o.password.empty()) s += " password=" + Quote(o.password);
  return s;
}

std::string Location(const PostgresOptions& o) {
  return o.host + ":" + std::to_string(o.port) + "/" + o.database;
}

// ---- errors ----

Status ErrorStatus(const std::exception& e, std::string_view what) {
  std::string message = std::string(what) + ": " + e.what();
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
      dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr ||
      dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return Unavailable(std::move(message));
  }
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  if (sql == nullptr) return Internal(std::move(message));
  const std::string& state = sql->sqlstate();
  if (state == "42P01" || state == "42703") return FailedPrecondition(std::string(kNotMigratedMessage));
  if (StartsWith(state, "23")) return Conflict(std::move(message));
  // 08 connection exception, 40 rollback (serialization, deadlock), 53
  // insufficient resources, 57 operator intervention (shutdown,
  // pg_terminate_backend), 25006 read-only transaction (a standby), 55P03
  // lock not available.
  if (StartsWith(state, "08") || StartsWith(state, "40") || StartsWith(state, "53") || StartsWith(state, "57") ||
      state == "25006" || state == "55P03") {
    return Unavailable(std::move(message));
  }
  return Internal(std::move(message));
}

bool Retryable(const std::exception& e) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) return false;
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) return true;
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) return true;
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  if (sql == nullptr) return false;
  const std::string& state = sql->sqlstate();
  return StartsWith(state, "08") || state == "40001" || state == "40P01" || state == "57P01";
}

// ---- the pool ----

Result<std::unique_ptr<PgConnection>> ConnectionPool::Connect() {
  try {
    auto conn = std::make_unique<pqxx::connection>(ConnectionString(options_));
    opened_.fetch_add(1, std::memory_order_relaxed);
    return std::make_unique<PgConnection>(std::move(conn));
  } catch (const std::exception& e) {
    connect_failures_.fetch_add(1, std::memory_order_relaxed);
    std::string message = e.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return Unavailable("cannot connect to PostgreSQL at " + Location(options_) + ": " + message);
  }
}

Status ConnectionPool::Fill() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return Unavailable(std::string(kClosedMessage));
      if (open_ >= std::max(1, options_.min_connections)) return Status::Ok();
      ++open_;
    }
    auto conn = Connect();
    std::lock_guard lock(mu_);
    if (!conn.ok()) {
      --open_;
      return conn.status();
    }
    idle_.push_back(std::move(conn).value());
    cv_.notify_one();
  }
}

void ConnectionPool::TakeExpiredLocked(Clock::time_point now, std::deque<std::unique_ptr<PgConnection>>& out) {
  while (!idle_.empty() && open_ > options_.min_connections &&
         now - idle_.front()->last_used > options_.idle_timeout) {
    out.push_back(std::move(idle_.front()));
    idle_.pop_front();
    --open_;
  }
}

Result<ConnectionPool::Lease> ConnectionPool::Acquire() {
  const auto deadline = Clock::now() + options_.acquire_timeout;
  std::deque<std::unique_ptr<PgConnection>> expired;  // closed outside the lock
  std::unique_lock lock(mu_);
  for (;;) {
    if (closed_) return Unavailable(std::string(kClosedMessage));
    const auto now = Clock::now();
    TakeExpiredLocked(now, expired);
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (now - conn->last_used <= options_.validate_after) return Lease(this, std::move(conn));
      lock.unlock();
      expired.clear();
      bool alive = false;
      try {
        pqxx::nontransaction probe(conn->raw());
        probe.exec("SELECT 1");
        alive = true;
      } catch (const std::exception&) {
      }
      if (alive) {
        conn->last_used = Clock::now();
        return Lease(this, std::move(conn));
      }
      discarded_.fetch_add(1, std::memory_order_relaxed);
      conn.reset();  // a broken connection: close it and look again
      lock.lock();
      --open_;
      continue;
    }
    if (open_ < options_.max_connections) {
      ++open_;
      lock.unlock();
      expired.clear();
      auto conn = Connect();
      if (!conn.ok()) {
        lock.lock();
        --open_;
        cv_.notify_one();
        return conn.status();
      }
      return Lease(this, std::move(conn).value());
    }
    ++waiting_;
    const bool woke = cv_.wait_until(lock, deadline, [&] {
      return closed_ || !idle_.empty() || open_ < options_.max_connections;
    });
    --waiting_;
    if (!woke) {
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      return Unavailable("no free PostgreSQL connection within " + std::to_string(options_.acquire_timeout.count()) +
                         " ms (all " + std::to_string(options_.max_connections) + " in use)");
    }
  }
}

void ConnectionPool::Release(std::unique_ptr<PgConnection> conn, bool discard) {
  std::unique_lock lock(mu_);
  if (closed_ || discard) {
    --open_;
    if (discard) discarded_.fetch_add(1, std::memory_order_relaxed);
    cv_.notify_one();
    lock.unlock();
    conn.reset();
    return;
  }
  conn->last_used = Clock::now();
  idle_.push_back(std::move(conn));
  cv_.notify_one();
}

StoreHealth::Pool ConnectionPool::Stats() {
  StoreHealth::Pool s;
  s.present = true;
  std::lock_guard lock(mu_);
  s.open = open_;
  s.idle = static_cast<int>(idle_.size());
  s.in_use = open_ - s.idle;
  s.waiting = waiting_;
  s.min = options_.min_connections;
  s.max = options_.max_connections;
  s.opened = opened_.load(std::memory_order_relaxed);
  s.discarded = discarded_.load(std::memory_order_relaxed);
  s.timeouts = timeouts_.load(std::memory_order_relaxed);
  s.connect_failures = connect_failures_.load(std::memory_order_relaxed);
  return s;
}

void ConnectionPool::Close() {
  std::deque<std::unique_ptr<PgConnection>> idle;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    idle.swap(idle_);
    open_ -= static_cast<int>(idle.size());
    cv_.notify_all();
  }
  idle.clear();
}

// ---- the database ----

Result<std::shared_ptr<Database>> Database::Open(PostgresOptions options) {
  if (options.host.empty()) return InvalidArgument("storage.postgres.host is empty");
  if (options.database.empty()) return InvalidArgument("storage.postgres.database is empty");
  if (options.port <= 0 || options.port > 65535) return InvalidArgument("storage.postgres.port is out of range");
  if (options.max_connections < 1) return InvalidArgument("the pool needs at least one connection");
  options.min_connections = std::clamp(options.min_connections, 0, options.max_connections);
  std::shared_ptr<Database> db(new Database(std::move(options)));
  if (Status s = db->pool_->Fill(); !s.ok()) return s;
  return db;
}

Status Database::RequireNode() const {
  if (options_.node_id.empty()) {
    return FailedPrecondition("the PostgreSQL store was opened without a node id; per-node data is not reachable");
  }
  return Status::Ok();
}

// ---- columns ----

std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

std::int64_t Int(const pqxx::field& f) { return f.is_null() ? 0 : f.as<std::int64_t>(); }

std::string Bytes(const pqxx::field& f) {
  if (f.is_null()) return {};
  const pqxx::binarystring b(f);
  return b.str();
}

}  // namespace bzzz::storage::postgres
