#include "cache/redis.h"

#include <hiredis/hiredis.h>
#include <signal.h>

#include <algorithm>
#include <vector>

#include "base/backoff.h"
#include "base/log.h"
#include "base/threads.h"

namespace bzzz::cache {
namespace {

constexpr SubsystemLog kLog{"cache"};

timeval ToTimeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

Reply Command(redisContext* ctx, std::initializer_list<std::string_view> argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(args.size()), args.data(), lens.data())));
}

// "" when `r` is a status reply equal to `expected`, else why not.
std::string Expect(redisContext* ctx, const Reply& r, std::string_view expected) {
  if (!r) return ctx->errstr[0] != 0 ? ctx->errstr : "connection lost";
  if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
  if (r->type != REDIS_REPLY_STATUS || std::string_view(r->str, r->len) != expected) {
    return "unexpected reply to a handshake command";
  }
  return "";
}

// hiredis writes with write(2): a Redis that went away would kill the
// process with SIGPIPE. The node ignores it already; a process that left it
// at the default (a tool, a test) gets it ignored here.
void IgnoreSigpipe() {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
}

}  // namespace

RedisLayer::RedisLayer(config::RedisConfig config, std::function<void(bool)> on_state)
    : config_(std::move(config)),
      on_state_(std::move(on_state)),
      endpoint_(config_.host + ":" + std::to_string(config_.port) + "/" + std::to_string(config_.db)) {
  IgnoreSigpipe();
  std::string why;
  if (redisContext* ctx = Connect(&why)) {
    idle_.push_back({ctx, std::chrono::steady_clock::now()});
    open_ = 1;
    up_ = true;
    up_flag_ = true;
    kLog.info("cache: redis {} connected", endpoint_);
  } else {
    last_error_ = why;
    down_since_ms_ = UnixMillisNow();
    errors_++;
    kLog.warn("cache: redis {} unreachable ({}); running on the memory layer until it answers", endpoint_, why);
  }
  if (on_state_) on_state_(up_);
  worker_ = NamedThread("redis-cache", [this] { Worker(); });
}

RedisLayer::~RedisLayer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  worker_cv_.notify_all();
  free_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard lock(mu_);
  for (auto& c : idle_) redisFree(c.ctx);
  idle_.clear();
}

redisContext* RedisLayer::Connect(std::string* why) const {
  const timeval tv = ToTimeval(config_.timeout);
  redisContext* ctx = redisConnectWithTimeout(config_.host.c_str(), config_.port, tv);
  if (ctx == nullptr) {
    *why = "cannot allocate a connection";
    return nullptr;
  }
  auto fail = [&](std::string reason) -> redisContext* {
    *why = std::move(reason);
    redisFree(ctx);
    return nullptr;
  };
  if (ctx->err != 0) return fail(std::string("connect: ") + ctx->errstr);
  if (redisSetTimeout(ctx, tv) != REDIS_OK) return fail("cannot set the command timeout");
  (void)redisEnableKeepAlive(ctx);
  if (!config_.password.empty()) {
    if (auto e = Expect(ctx, Command(ctx, {"AUTH", config_.password}), "OK"); !e.empty()) return fail("AUTH: " + e);
  }
  if (config_.db != 0) {
    const std::string db = std::to_string(config_.db);
    if (auto e = Expect(ctx, Command(ctx, {"SELECT", db}), "OK"); !e.empty()) return fail("SELECT " + db + ": " + e);
  }
  if (auto e = Expect(ctx, Command(ctx, {"PING"}), "PONG"); !e.empty()) return fail("PING: " + e);
  return ctx;
}

redisContext* RedisLayer::Acquire() {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + config_.pool.acquire_timeout;
  for (;;) {
    if (!up_ || stopping_) break;
    if (!idle_.empty()) {
      redisContext* ctx = idle_.back().ctx;
      idle_.pop_back();
      return ctx;
    }
    if (open_ < config_.pool.max_connections) {
      ++open_;
      lock.unlock();
      std::string why;
      redisContext* ctx = Connect(&why);
      if (ctx != nullptr) return ctx;
      LoseConnection(why);
      skipped_++;
      return nullptr;
    }
    if (free_cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  skipped_++;
  return nullptr;
}

void RedisLayer::Release(redisContext* ctx, bool broken, const std::string& why) {
  if (!broken) {
    {
      std::lock_guard lock(mu_);
      if (up_ && !stopping_) {
        idle_.push_back({ctx, std::chrono::steady_clock::now()});
        ctx = nullptr;
      } else {
        --open_;
      }
    }
    if (ctx != nullptr) redisFree(ctx);
    free_cv_.notify_one();
    return;
  }
  redisFree(ctx);
  LoseConnection(why);
}

void RedisLayer::LoseConnection(const std::string& why) {
  errors_++;
  std::vector<redisContext*> to_free;
  bool went_down = false;
  {
    std::lock_guard lock(mu_);
    --open_;
    went_down = up_;
    MarkDownLocked(why, &to_free);
  }
  for (auto* c : to_free) redisFree(c);
  free_cv_.notify_all();
  if (went_down && on_state_) on_state_(false);
}

void RedisLayer::MarkDownLocked(const std::string& why, std::vector<redisContext*>* to_free) {
  if (up_) {
    up_ = false;
    up_flag_ = false;
    down_since_ms_ = UnixMillisNow();
    kLog.warn("cache: redis {} lost ({}); running on the memory layer until it answers", endpoint_, why);
  }
  last_error_ = why;
  // The other pooled connections are most likely broken too: a reconnect
  // starts from scratch.
  for (auto& c : idle_) to_free->push_back(c.ctx);
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
  worker_cv_.notify_all();
}

RedisLayer::Outcome RedisLayer::Run(std::initializer_list<std::string_view> argv, std::string* value) {
  if (!up_flag_.load()) {  // the circuit is open: no lock, no wait
    skipped_++;
    return Outcome::kSkipped;
  }
  CheckMayBlock("cache: a Redis command");
  redisContext* ctx = Acquire();
  if (ctx == nullptr) return Outcome::kSkipped;
  Reply r = Command(ctx, argv);
  if (!r) {
    const std::string why = std::string(*argv.begin()) + ": " + (ctx->errstr[0] != 0 ? ctx->errstr : "connection lost");
    Release(ctx, /*broken=*/true, why);
    return Outcome::kError;
  }
  Outcome out = Outcome::kDone;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      if (value != nullptr) value->assign(r->str, r->len);
      out = Outcome::kHit;
      break;
    case REDIS_REPLY_NIL:
      out = Outcome::kMiss;
      break;
    case REDIS_REPLY_ERROR: {
      errors_++;
      std::lock_guard lock(mu_);
      last_error_ = std::string(*argv.begin()) + ": " + std::string(r->str, r->len);
      out = Outcome::kError;
      break;
    }
    default:
      break;
  }
  Release(ctx, /*broken=*/false, "");
  return out;
}

RedisLayer::Outcome RedisLayer::Get(std::string_view key, std::string* value) { return Run({"GET", key}, value); }

RedisLayer::Outcome RedisLayer::Set(std::string_view key, std::string_view value, std::int64_t ttl_ms) {
  const std::string px = std::to_string(std::max<std::int64_t>(1, ttl_ms));
  return Run({"SET", key, value, "PX", px}, nullptr);
}

RedisLayer::Outcome RedisLayer::Del(std::string_view key) { return Run({"DEL", key}, nullptr); }

RedisLayer::Outcome RedisLayer::Ping() { return Run({"PING"}, nullptr); }

RedisHealth RedisLayer::Health() const {
  RedisHealth h;
  h.configured = true;
  h.endpoint = endpoint_;
  h.errors = errors_.load();
  h.reconnects = reconnects_.load();
  h.skipped = skipped_.load();
  h.min = config_.pool.min_connections;
  h.max = config_.pool.max_connections;
  std::lock_guard lock(mu_);
  h.up = up_;
  h.last_error = last_error_;
  h.down_since_ms = up_ ? 0 : down_since_ms_;
  h.open = open_;
  h.idle = static_cast<int>(idle_.size());
  return h;
}

void RedisLayer::Worker() {
  Backoff backoff(std::chrono::milliseconds(50), std::max(config_.reconnect_interval, std::chrono::milliseconds(50)));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!up_) {
      lock.unlock();
      std::string why;
      redisContext* ctx = Connect(&why);
      lock.lock();
      if (stopping_) {
        if (ctx != nullptr) redisFree(ctx);
        break;
      }
      if (ctx == nullptr) {
        errors_++;
        last_error_ = why;
        const auto wait = backoff.Next();
        worker_cv_.wait_for(lock, wait, [this] { return stopping_; });
        continue;
      }
      idle_.push_back({ctx, std::chrono::steady_clock::now()});
      ++open_;
      up_ = true;
      up_flag_ = true;
      const double down_s = static_cast<double>(UnixMillisNow() - down_since_ms_) / 1000.0;
      down_since_ms_ = 0;
      reconnects_++;
      backoff.Reset();
      kLog.info("cache: redis {} reconnected after {:.1f} s down", endpoint_, down_s);
      free_cv_.notify_all();
      lock.unlock();
      if (on_state_) on_state_(true);
      lock.lock();
      continue;
    }
    // Up: close idle connections above the minimum that have waited too
    // long (oldest first), then open up to the minimum.
    const auto now = std::chrono::steady_clock::now();
    std::vector<redisContext*> to_free;
    while (open_ > config_.pool.min_connections && !idle_.empty() &&
           now - idle_.front().last_used >= config_.pool.idle_timeout) {
      to_free.push_back(idle_.front().ctx);
      idle_.pop_front();
      --open_;
    }
    if (open_ < config_.pool.min_connections) {
      ++open_;
      lock.unlock();
      for (auto* c : to_free) redisFree(c);
      to_free.clear();
      std::string why;
      redisContext* ctx = Connect(&why);
      bool went_down = false;
      lock.lock();
      if (ctx != nullptr && up_ && !stopping_) {
        idle_.push_back({ctx, std::chrono::steady_clock::now()});
        free_cv_.notify_one();
      } else {
        --open_;
        if (ctx != nullptr) {
          to_free.push_back(ctx);
        } else if (!stopping_) {
          errors_++;
          went_down = up_;
          MarkDownLocked(why, &to_free);
        }
      }
      if (!to_free.empty() || went_down) {
        lock.unlock();
        for (auto* c : to_free) redisFree(c);
        if (went_down && on_state_) on_state_(false);
        lock.lock();
      }
      continue;
    }
    if (!to_free.empty()) {
      lock.unlock();
      for (auto* c : to_free) redisFree(c);
      lock.lock();
    }
    const auto tend = std::min<std::chrono::milliseconds>(config_.pool.idle_timeout, std::chrono::seconds(1));
    worker_cv_.wait_for(lock, tend, [this] { return stopping_ || !up_; });
  }
}

}  // namespace bzzz::cache
