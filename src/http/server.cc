#include "http/server.h"

// GCC 12 needs <utility> before Asio's coroutine headers (dependencies.md).
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <latch>
#include <mutex>
#include <random>
#include <unordered_map>
#include <thread>
#include <unordered_set>
#include <vector>

#include "base/log.h"
#include "base/threads.h"
#include "http/probe.h"
#include "http/wire.h"
#include "security/access_controller.h"
#include "security/session.h"
#include "security/rate_limit.h"

namespace bzzz::http {

namespace {
constexpr SubsystemLog kLog{"http"};
}  // namespace

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// Each I/O thread runs its own io_context and owns the connections assigned
// to it round-robin: a connection's handlers never run concurrently, so no
// strands are needed, and executors have a concrete type (no type-erased
// dispatch on the hot path).
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                         Executor>;
template <typename T>
using Awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> kUseAwaitable;

namespace {

using BeastRequest = bhttp::request<bhttp::string_body>;
using Clock = std::chrono::steady_clock;

// Idle keep-alive connections are closed this long after a drain starts.
constexpr auto kDrainIdleGrace = std::chrono::milliseconds(1000);
constexpr std::size_t kFirstRead = 4096;  // bytes read while waiting for a request to start

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

// A UUID (version 4) as the request id. It only has to be unique, not
// secret: each I/O thread draws from its own generator, seeded once from
// the system, instead of a getrandom(2) per request.
std::string NewRequestId() {
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(), device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  std::uint64_t half[2] = {generator(), generator()};
  half[0] = (half[0] & ~std::uint64_t{0xf000}) | 0x4000;                    // version 4
  half[1] = (half[1] & ~(std::uint64_t{0xc} << 60)) | (std::uint64_t{0x8} << 60);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(36, '-');
  std::size_t at = 0;
  for (int nibble = 0; nibble < 32; ++nibble) {
    if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
    const std::uint64_t word = half[nibble / 16];
    id[at++] = kHex[(word >> (60 - 4 * (nibble % 16))) & 0xf];
  }
  return id;
}

// Maps parser errors to the status the client gets; 0: just close.
int StatusForParseError(const beast::error_code& ec) {
  if (ec == bhttp::error::body_limit) return 413;
  if (ec == bhttp::error::header_limit) return 431;
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
      ec == bhttp::error::partial_message) {
    return 0;
  }
  // Any other parser error (bad method, target, version, header, chunk...).
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) return 400;
  return 0;
}

std::string_view ReasonCode(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "payload_too_large";
    case 431: return "headers_too_large";
    case 500: return "internal";
    case 503: return "unavailable";
    default: return "error";
  }
}

}  // namespace

// One connection. Lives in its coroutine frame and in the registry that lets
// a drain close idle connections; touched only on its io_context's thread.
struct Session {
  explicit Session(Socket socket) : stream(std::move(socket)) {}
  Stream stream;
  beast::flat_buffer buffer;
  bool idle = true;                  // waiting for the first byte of a request
  Clock::time_point idle_since = Clock::now();
  std::string remote;
  std::string client;                // remote address without the port: the per-client count
  std::string out;                   // serialized response; keeps its capacity
};

class Server::Impl : public std::enable_shared_from_this<Server::Impl> {
 public:
  Impl(ServerOptions options, std::shared_ptr<const Router> router,
       std::shared_ptr<const security::AccessController> access, prometheus::Registry* metrics)
      : opt_(std::move(options)),
        router_(std::move(router)),
        access_(std::move(access)),
        probe_(metrics, *router_),
        contexts_(MakeContexts(ThreadCount())),
        api_(std::in_place, contexts_.front()->get_executor()),
        probe_acceptor_(std::in_place, contexts_.front()->get_executor()),
        blocking_pool_(std::make_unique<asio::thread_pool>(std::max(1, opt_.blocking_threads))) {
    NameBlockingThreads(std::max(1, opt_.blocking_threads));
  }

  // asio's pool has no hook for its threads' start: one naming job per
  // thread, each held until all have started, so that each thread takes
  // exactly one.
  void NameBlockingThreads(int threads) {
    auto started = std::make_shared<std::latch>(threads);
    for (int i = 0; i < threads; ++i) {
      asio::post(*blocking_pool_, [started] {
        NameThisThread("http-blocking");
        started->arrive_and_wait();
      });
    }
    started->wait();
  }

  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < n; ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  asio::io_context& NextContext() {
    return *contexts_[next_context_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
  }

  int ThreadCount() const {
    if (opt_.threads > 0) return opt_.threads;
    // Half the cores leaves the rest to the node's other work (agents, the
    // task writer, the DHT), but at least two: with one, every connection
    // waits whenever that thread waits for a core, and on 2 cores two
    // threads served more in every case of bench/http and bench/tasks.
    const unsigned hw = std::thread::hardware_concurrency();
    return std::max(2, static_cast<int>(hw / 2));
  }

  Status Bind(Acceptor& acceptor, const std::string& host, std::uint16_t port) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return InvalidArgument("invalid listen address '" + host + "': " + ec.message());
    const tcp::endpoint endpoint(address, port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    }
    return Status::Ok();
  }

  Status Start() {
    if (auto s = Bind(*api_, opt_.host, opt_.port); !s.ok()) return s;
    if (!opt_.probe_host.empty()) {
      if (auto s = Bind(*probe_acceptor_, opt_.probe_host, opt_.probe_port); !s.ok()) {
        api_->close();
        return s;
      }
    }
    access_log_ = opt_.access_log ? spdlog::get("access") : nullptr;
    for (auto& context : contexts_) work_.push_back(asio::make_work_guard(*context));
    auto self = shared_from_this();
    asio::co_spawn(api_->get_executor(), Accept(self, *api_, false), asio::detached);
    if (probe_acceptor_->is_open()) {
      asio::co_spawn(probe_acceptor_->get_executor(), Accept(self, *probe_acceptor_, true), asio::detached);
    }
    for (auto& context : contexts_) {
      const std::string name = "http-io-" + std::to_string(threads_.size());
      threads_.push_back(NamedThread(name.c_str(), [context = context.get()] {
        MarkNoBlockingThread();  // the store asserts it is never called here
        for (;;) {
          try {
            context->run();
            return;
          } catch (const std::exception& e) {
            kLog.error("http: unexpected exception on an I/O thread: {}", e.what());
          }
        }
      }));
    }
    return Status::Ok();
  }

  static Awaitable<void> Accept(std::shared_ptr<Impl> self, Acceptor& acceptor, bool probe_only) {
    for (;;) {
      beast::error_code ec;
      Socket socket = co_await acceptor.async_accept(self->NextContext(), asio::redirect_error(kUseAwaitable, ec));
      if (ec) {
        if (self->draining_.load()) {
          co_await self->AcceptBacklog(acceptor, probe_only);
          acceptor.close(ec);
          co_return;
        }
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        // Out of file descriptors and the like: back off instead of spinning.
        kLog.warn("http: accept failed: {}", ec.message());
        Timer timer(acceptor.get_executor(), std::chrono::milliseconds(50));
        co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
        continue;
      }
      self->StartSession(std::move(socket), probe_only);
      // Take every other connection already queued now, rather than one per
      // trip through the event loop: behind hundreds of busy connections a
      // trip takes milliseconds, and a burst of new clients would wait
      // seconds for their turn to be accepted.
      acceptor.non_blocking(true, ec);
      for (int i = 0; i < 1024 && !ec; ++i) {
        Socket next(self->NextContext());
        acceptor.accept(next, ec);
        if (!ec) self->StartSession(std::move(next), probe_only);
      }
    }
  }

  // Connections that completed the TCP handshake are queued by the kernel
  // until accepted; closing the listener resets them after the client has
  // sent its request. So take the queue (serving each connection one last
  // request) until it has stayed empty for a moment, then close. A client
  // connecting in the instant between the last check and the close can
  // still be reset: every TCP server has that window; this keeps it small.
  Awaitable<void> AcceptBacklog(Acceptor& acceptor, bool probe_only) {
    constexpr auto kQuiet = std::chrono::milliseconds(25);
    constexpr auto kMax = std::chrono::milliseconds(250);
    beast::error_code ec;
    acceptor.non_blocking(true, ec);
    const auto started = Clock::now();
    auto last_accept = started;
    Timer timer(acceptor.get_executor());
    while (Clock::now() - started < kMax && Clock::now() - last_accept < kQuiet) {
      for (;;) {
        Socket socket(NextContext());
        acceptor.accept(socket, ec);
        if (ec) break;
        last_accept = Clock::now();
        StartSession(std::move(socket), probe_only);
      }
      timer.expires_after(std::chrono::milliseconds(2));
      co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    }
  }

  void StartSession(Socket socket, bool probe_only) {
    beast::error_code ec;
    if (connections_.load() >= static_cast<std::int64_t>(opt_.max_connections)) {
      probe_.Refused("max_connections");
      socket.close(ec);
      return;
    }
    const auto ep = socket.remote_endpoint(ec);
    std::string client = ec ? std::string() : ep.address().to_string();
    if (!client.empty()) {
      // One client address may not hold more than its share of the slots.
      std::lock_guard lock(clients_mu_);
      std::size_t& held = clients_[client];
      if (held >= opt_.max_connections_per_client) {
        probe_.Refused("per_client");
        socket.close(ec);
        return;
      }
      ++held;
    }
    auto session = std::make_shared<Session>(std::move(socket));
    session->client = std::move(client);
    auto executor = session->stream.get_executor();
    asio::co_spawn(executor, Serve(shared_from_this(), session, probe_only), asio::detached);
  }

  void Track(const std::shared_ptr<Session>& s, bool add) {
    std::lock_guard lock(sessions_mu_);
    if (add) {
      sessions_.insert(s);
    } else {
      sessions_.erase(s);
    }
    probe_.Connections(connections_.fetch_add(add ? 1 : -1) + (add ? 1 : -1));
  }

  static Awaitable<void> Serve(std::shared_ptr<Impl> self, std::shared_ptr<Session> session,
                                     bool probe_only) {
    self->Track(session, true);
    try {
      co_await self->ServeLoop(*session, probe_only);
    } catch (const std::exception& e) {
      kLog.warn("http: connection ended by an exception: {}", e.what());
    }
    beast::error_code ec;
    session->stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
    session->stream.close();
    if (!session->client.empty()) {
      std::lock_guard lock(self->clients_mu_);
      auto it = self->clients_.find(session->client);
      if (it != self->clients_.end() && --it->second == 0) self->clients_.erase(it);
    }
    self->Track(session, false);
  }

  // Serializes and writes a response. Errors end the connection on the next
  // read; the caller does not need them.
  Awaitable<void> Write(Session& s, const Response& resp, const WireOptions& options) {
    SerializeResponse(resp, options, s.out);
    beast::error_code ec;
    s.stream.expires_after(opt_.read_timeout);
    co_await asio::async_write(s.stream, asio::buffer(s.out), asio::redirect_error(kUseAwaitable, ec));
  }

  Awaitable<void> ServeLoop(Session& s, bool probe_only) {
    {
      beast::error_code ec;
      const auto ep = s.stream.socket().remote_endpoint(ec);
      if (!ec) s.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    for (;;) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(opt_.body_limit_bytes);
      parser.header_limit(static_cast<std::uint32_t>(opt_.header_limit_bytes));
      beast::error_code ec;

      s.idle = s.buffer.size() == 0;
      s.idle_since = Clock::now();
      if (s.buffer.size() == 0) {
        // Idle between requests: up to the keep-alive timeout for the first
        // byte. From then on the whole header must come within
        // header_timeout, so a client that trickles bytes cannot keep a
        // connection for long.
        s.stream.expires_after(draining_.load() ? kDrainIdleGrace : opt_.keepalive_timeout);
        const std::size_t n = co_await s.stream.async_read_some(s.buffer.prepare(kFirstRead),
                                                                asio::redirect_error(kUseAwaitable, ec));
        if (ec) co_return;  // closed, or idle too long: nothing to answer
        s.buffer.commit(n);
      }
      s.idle = false;
      s.stream.expires_after(opt_.header_timeout);
      co_await bhttp::async_read_header(s.stream, s.buffer, parser, asio::redirect_error(kUseAwaitable, ec));
      const auto started = Clock::now();
      const auto arrived = std::chrono::system_clock::now();
      if (ec) {
        const int status = StatusForParseError(ec);
        // Named locals, not temporaries, in co_await expressions: GCC 12
        // destroys such temporaries twice.
        const std::string message =
            status == 413 ? "request body exceeds the limit of " + std::to_string(opt_.body_limit_bytes) + " bytes"
                          : ec.message();
        // The start line is parsed before the body limit trips: its path
        // picks the error format (UCXI answers in its own envelope).
        const std::string target = status == 413 ? std::string(parser.get().target()) : std::string();
        const std::string path = target.substr(0, target.find('?'));
        if (status != 0) co_await SendBareError(s, status, message, path);
        if (status == 413) co_await DiscardInput(s);
        co_return;
      }

      const BeastRequest& head = parser.get();
      const bool expects_body = parser.content_length().has_value() ? *parser.content_length() > 0 : parser.chunked();
      if (parser.content_length() && *parser.content_length() > opt_.body_limit_bytes) {
        const std::string message =
            "request body exceeds the limit of " + std::to_string(opt_.body_limit_bytes) + " bytes";
        const std::string target(head.target());
        const std::string path = target.substr(0, target.find('?'));
        co_await SendBareError(s, 413, message, path);
        co_await DiscardInput(s);
        co_return;
      }
      in_flight_.fetch_add(1);
      probe_.InFlight(in_flight_.load());
      struct InFlightGuard {
        Impl* impl;
        ~InFlightGuard() {
          impl->probe_.InFlight(impl->in_flight_.fetch_sub(1) - 1);
          impl->drain_cv_.notify_all();
        }
      } guard{this};

      if (expects_body) {
        const auto expect = head[bhttp::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, head.version()};
          co_await bhttp::async_write(s.stream, cont, asio::redirect_error(kUseAwaitable, ec));
          if (ec) co_return;
        }
        s.stream.expires_after(opt_.read_timeout);
        co_await bhttp::async_read(s.stream, s.buffer, parser, asio::redirect_error(kUseAwaitable, ec));
        if (ec) {
          const int status = StatusForParseError(ec);
          if (status != 0) {
            const std::string message =
                status == 413 ? "request body exceeds the limit of " + std::to_string(opt_.body_limit_bytes) + " bytes"
                              : ec.message();
            const std::string target(parser.get().target());
            const std::string path = target.substr(0, target.find('?'));
            co_await SendBareError(s, status, message, path);
            if (status == 413) co_await DiscardInput(s);
          }
          co_return;
        }
      }

      BeastRequest beast_req = parser.release();
      Request req;
      std::size_t route_id = HttpProbe::kUnmatched;
      const std::string_view method_text(beast_req.method_string().data(), beast_req.method_string().size());
      req.method = ParseMethod(method_text);
      req.method_text = std::string(method_text);
      req.target = std::string(beast_req.target());
      req.remote_address = s.remote;
      for (const auto& field : beast_req) {
        req.headers.Add(std::string(field.name_string()), std::string(field.value()));
      }
      req.client_address = opt_.trusted_proxies.empty()
                               ? s.client
                               : security::ClientBehindProxies(s.client, req.headers.Find("X-Forwarded-For"),
                                                               opt_.trusted_proxies);
      req.body = std::move(beast_req.body());
      const std::string* incoming_id = req.headers.Find("X-Request-ID");
      req.request_id = incoming_id && ValidRequestId(*incoming_id) ? *incoming_id : NewRequestId();

      Response resp;
      if (!ParseTarget(req)) {
        resp = router_->MakeError(req.target.substr(0, req.target.find('?')), 400, "bad_request",
                                  "malformed request target", req.request_id);
      } else {
        const Route* async_route = nullptr;
        if (auto sync = Dispatch(req, probe_only, route_id, &async_route)) {
          resp = std::move(*sync);
        } else {
          bool failed = false;
          try {
            resp = co_await CallAsync(*async_route, req);
          } catch (const std::exception& e) {
            kLog.error("http: async handler for {} threw: {} (request {})", async_route->pattern, e.what(),
                          req.request_id);
            failed = true;
          }
          if (failed) resp = router_->MakeError(req.path, 500, "internal", "internal error", req.request_id);
        }
      }

      for (const auto& [name, value] : req.response_headers.All()) {
        if (resp.headers.Find(name) == nullptr) resp.headers.Set(name, value);
      }
      const bool keep_alive = beast_req.keep_alive() && !draining_.load();
      const std::size_t bytes = resp.body.size();
      const std::string_view route = req.route.empty() ? std::string_view("unmatched") : req.route;
      const WireOptions wire{beast_req.version(), keep_alive, req.method == Method::kHead, req.request_id};
      co_await Write(s, resp, wire);

      const auto elapsed = Clock::now() - started;
      served_.fetch_add(1, std::memory_order_relaxed);
      probe_.RequestDone(MethodName(req.method), route_id, resp.status,
                         std::chrono::duration<double>(elapsed).count());
      RequestRecord record{arrived,       MethodName(req.method), route,
                           req.path,      resp.status,            elapsed,
                           req.request_id, req.identity.principal, req.remote_address,
                           bytes,         req.client_address,
                           resp.status >= 400 ? std::string_view(resp.body) : std::string_view()};
      for (const auto& observer : observers_) observer(record);
      if (access_log_) {
        access_log_->info("{} \"{} {}\" {} {} {:.3f}ms rid={} principal={}", req.remote_address,
                          method_text, req.path, resp.status, bytes,
                          std::chrono::duration<double, std::milli>(elapsed).count(), req.request_id,
                          req.identity.principal);
      }
      if (!keep_alive || !s.stream.socket().is_open()) co_return;
    }
  }

  // A request without an Authorization header, with a browser session
  // cookie: the session's identity through RBAC (*decision), or the 401/403
  // that ends the request (an unknown or expired session, a missing CSRF
  // token on a state-changing request).
  std::optional<Response> SessionDecision(const Request& req, const Route& route,
                                          std::optional<security::AccessDecision>* decision) {
    const std::string* cookie = req.headers.Find("Cookie");
    if (cookie == nullptr) return std::nullopt;
    const bool unsafe = req.method != Method::kGet && req.method != Method::kHead && req.method != Method::kOptions;
    const std::string* csrf = req.headers.Find("X-CSRF-Token");
    security::SessionCheck s = opt_.sessions->Check(*cookie, unsafe, csrf ? std::string_view(*csrf) : "");
    switch (s.kind) {
      case security::SessionCheck::Kind::kNone: return std::nullopt;
      case security::SessionCheck::Kind::kInvalid:
        return router_->MakeError(req.path, 401, "unauthorized", s.reason, req.request_id);
      case security::SessionCheck::Kind::kCsrf:
        return router_->MakeError(req.path, 403, "forbidden", s.reason, req.request_id);
      case security::SessionCheck::Kind::kValid:
        *decision = access_->Authorize(std::move(s.identity), route.permission, req.client_address);
        return std::nullopt;
    }
    return std::nullopt;
  }

  // One token of the caller's bucket (its principal, else its client
  // address) for the request's class; the X-RateLimit-* headers go on the
  // response either way, and a refusal is a 429 with Retry-After.
  std::optional<Response> RateLimit(Request& req) {
    const bool write = req.method != Method::kGet && req.method != Method::kHead;
    const std::string key =
        req.identity.authenticated ? "principal:" + req.identity.principal : "client:" + req.client_address;
    const auto d = opt_.rate_limiter->Take(key, write ? security::RouteClass::kWrite : security::RouteClass::kRead);
    auto whole = [](double seconds) { return std::to_string(static_cast<long long>(std::ceil(seconds))); };
    req.response_headers.Set("X-RateLimit-Limit", std::to_string(static_cast<long long>(d.limit)));
    req.response_headers.Set("X-RateLimit-Remaining", std::to_string(static_cast<long long>(d.remaining)));
    req.response_headers.Set("X-RateLimit-Reset", whole(d.reset_seconds));
    if (d.allowed) return std::nullopt;
    probe_.RateLimited(write);
    Response resp = router_->MakeError(
        req.path, 429, "too_many_requests",
        std::string("rate limit of ") + (write ? "writes" : "reads") + " exceeded for " +
            (req.identity.authenticated ? "principal " + req.identity.principal : "client " + req.client_address) +
            "; retry in " + whole(d.retry_after) + " s",
        req.request_id);
    resp.headers.Set("Retry-After", whole(std::max(1.0, d.retry_after)));
    return resp;
  }

  // Splits the target into a decoded path and the raw query.
  static bool ParseTarget(Request& req) {
    const std::string_view target = req.target;
    if (target.empty() || target.front() != '/') return false;
    const auto q = target.find('?');
    auto path = PercentDecode(target.substr(0, q), false);
    if (!path || path->find('\0') != std::string::npos) return false;
    req.path = std::move(*path);
    if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
    return true;
  }

  // Routes, checks access and runs middlewares and a synchronous handler.
  // Returns nullopt when the route's handler is asynchronous: the caller
  // then awaits it (*async_route), so the common synchronous path costs no
  // coroutine frame.
  std::optional<Response> Dispatch(Request& req, bool probe_only, std::size_t& route_id, const Route** async_route) {
    RouteMatch match = router_->Match(req.method, req.path);
    if (match.kind == RouteMatch::Kind::kFound && probe_only && !match.route->probe) {
      match.kind = RouteMatch::Kind::kNotFound;
    }
    if (match.kind == RouteMatch::Kind::kNotFound) {
      return router_->MakeError(req.path, 404, "not_found", "no route for " + req.path, req.request_id);
    }
    if (match.kind == RouteMatch::Kind::kMethodNotAllowed) {
      Response resp;
      if (req.method == Method::kOptions) {
        resp = Response::Text(204, "");
      } else {
        resp = router_->MakeError(req.path, 405, "method_not_allowed",
                                  req.method_text + " is not allowed on " + req.path, req.request_id);
      }
      resp.headers.Set("Allow", AllowHeader(match.allowed));
      return resp;
    }

    const Route& route = *match.route;
    route_id = route.id;
    req.route = route.pattern;
    req.params = std::move(match.params);

    if (route.permission == kPublic) {
      // A public route may still tell a known caller more (health details):
      // an identity is set when the request carries a valid one.
      const std::string* authorization = req.headers.Find("Authorization");
      if (authorization && access_) req.identity = access_->Identify(*authorization, req.client_address);
    } else {
      if (!access_) {
        return router_->MakeError(req.path, 500, "internal", "access control is not configured", req.request_id);
      }
      const std::string* authorization = req.headers.Find("Authorization");
      std::optional<security::AccessDecision> by_session;
      if (authorization == nullptr && opt_.sessions) {
        if (auto refused = SessionDecision(req, route, &by_session)) return refused;
      }
      auto decision = by_session ? std::move(*by_session)
                                 : access_->Check(authorization ? std::string_view(*authorization) : std::string_view{},
                                                  route.permission, req.client_address);
      if (decision.kind == security::AccessDecision::Kind::kThrottled) {
        Response resp = router_->MakeError(req.path, 429, "too_many_requests", decision.reason, req.request_id);
        resp.headers.Set("Retry-After", std::to_string(decision.retry_after_seconds));
        return resp;
      }
      if (decision.kind == security::AccessDecision::Kind::kUnauthenticated) {
        Response resp = router_->MakeError(req.path, 401, "unauthorized", decision.reason, req.request_id);
        resp.headers.Set("WWW-Authenticate", "Bearer realm=\"bzzz\"");
        return resp;
      }
      req.identity = std::move(decision.identity);
      req.permits = &permits_;
      if (decision.kind == security::AccessDecision::Kind::kForbidden) {
        return router_->MakeError(req.path, 403, "forbidden", decision.reason, req.request_id);
      }
    }

    if (opt_.rate_limiter && !route.probe) {
      if (auto refused = RateLimit(req)) return refused;
    }
    for (const auto& middleware : middlewares_) {
      if (auto early = middleware(req, route)) return early;
    }

    if (!route.handler || route.blocking) {
      *async_route = &route;
      return std::nullopt;
    }
    try {
      return route.handler(req);
    } catch (const std::exception& e) {
      kLog.error("http: handler for {} {} threw: {} (request {})", MethodName(req.method), route.pattern,
                    e.what(), req.request_id);
    }
    return router_->MakeError(req.path, 500, "internal", "internal error", req.request_id);
  }

  // Suspends the coroutine until the async handler's Responder is called,
  // then resumes it on the connection's strand.
  // A blocking route's handler (sync or async) is called on the worker
  // pool instead; a throw there becomes a 500.
  Awaitable<Response> CallAsync(const Route& route, Request& req) {
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, void(Response)>(
        [this, &route, &req](auto handler) {
          using HandlerType = decltype(handler);
          auto shared = std::make_shared<HandlerType>(std::move(handler));
          auto once = std::make_shared<std::atomic<bool>>(false);
          Responder respond = [shared, once](Response response) {
            if (once->exchange(true)) return;  // a second call is a bug; ignore it
            auto executor = asio::get_associated_executor(*shared);
            asio::post(executor, [shared, response = std::move(response)]() mutable {
              (*shared)(std::move(response));
            });
          };
          if (!route.blocking) {
            route.async_handler(req, std::move(respond));
            return;
          }
          asio::post(*blocking_pool_, [this, &route, &req, respond = std::move(respond)]() mutable {
            try {
              if (route.handler) {
                respond(route.handler(req));
              } else {
                route.async_handler(req, respond);
              }
            } catch (const std::exception& e) {
              kLog.error("http: handler for {} {} threw: {} (request {})", MethodName(req.method), route.pattern,
                            e.what(), req.request_id);
              respond(router_->MakeError(req.path, 500, "internal", "internal error", req.request_id));
            }
          });
        },
        kUseAwaitable);
  }

  // An error before the request could be parsed: answer and close.
  Awaitable<void> SendBareError(Session& s, int status, const std::string& message, std::string path = "") {
    const std::string id = NewRequestId();
    const Response resp = router_->MakeError(path, status, ReasonCode(status), message, id);
    const WireOptions wire{11, false, false, id};
    const auto started = Clock::now();
    co_await Write(s, resp, wire);
    const auto elapsed = Clock::now() - started;
    probe_.RequestDone("OTHER", HttpProbe::kUnmatched, status, std::chrono::duration<double>(elapsed).count());
    // Observed like any request, so /debug/requests and the access log show
    // what was refused and why.
    const RequestRecord record{std::chrono::system_clock::now(), "OTHER", "unparsed", "", status, elapsed, id,
                               "anonymous", s.remote, resp.body.size(), s.remote, resp.body};
    for (const auto& observer : observers_) observer(record);
    if (access_log_) {
      access_log_->info("{} \"(unparsed request)\" {} {} rid={} reason={}", s.remote, status, resp.body.size(), id,
                        message);
    }
  }

  // After refusing a body, read (and drop) what the client is still sending
  // for a moment, so that it sees our answer instead of a reset.
  Awaitable<void> DiscardInput(Session& s) {
    beast::error_code ec;
    s.stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
    s.stream.expires_after(std::chrono::milliseconds(500));
    std::vector<char> sink(64 * 1024);
    std::size_t total = 0;
    while (!ec && total < (64u << 20)) {
      total += co_await s.stream.async_read_some(asio::buffer(sink), asio::redirect_error(kUseAwaitable, ec));
    }
  }

  void StopAccepting() {
    if (draining_.exchange(true)) return;
    // Cancel the pending accepts on the acceptors' own strands; each accept
    // loop then takes the backlog and closes its listener.
    for (Acceptor* acceptor : {&*api_, &*probe_acceptor_}) {
      asio::post(acceptor->get_executor(), [self = shared_from_this(), acceptor] {
        beast::error_code ec;
        if (acceptor->is_open()) acceptor->cancel(ec);
      });
    }
  }

  // Closes connections that have waited for a request since before the drain.
  void CloseIdle() {
    std::vector<std::shared_ptr<Session>> sessions;
    {
      std::lock_guard lock(sessions_mu_);
      sessions.assign(sessions_.begin(), sessions_.end());
    }
    const auto now = Clock::now();
    for (auto& s : sessions) {
      asio::post(s->stream.get_executor(), [s, now] {
        if (s->idle && s->buffer.size() == 0 && now - s->idle_since >= kDrainIdleGrace) {
          beast::error_code ec;
          s->stream.socket().shutdown(asio::socket_base::shutdown_both, ec);
          s->stream.cancel();
        }
      });
    }
  }

  bool WaitDrained(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::unique_lock lock(drain_mu_);
    while (Clock::now() < deadline) {
      if (in_flight_.load() == 0) {
        if (connections_.load() == 0) return true;
        lock.unlock();
        CloseIdle();
        lock.lock();
      }
      drain_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return in_flight_.load() == 0;
  }

  void Stop() {
    std::call_once(stop_once_, [this] {
      StopAccepting();
      CloseIdle();
      work_.clear();
      for (auto& context : contexts_) context->stop();
      for (auto& t : threads_) {
        if (t.joinable()) t.join();
      }
      // Blocking handlers still running finish; their answers go nowhere.
      blocking_pool_->stop();
      blocking_pool_->join();
      // Suspended coroutines hold references to this object: destroy them
      // now (with their io_contexts), not never. Acceptors go first: they
      // must not outlive their io_context.
      api_.reset();
      probe_acceptor_.reset();
      {
        std::lock_guard lock(sessions_mu_);
        sessions_.clear();
      }
      contexts_.clear();
    });
  }

  ServerOptions opt_;
  std::shared_ptr<const Router> router_;
  std::shared_ptr<const security::AccessController> access_;
  HttpProbe probe_;
  std::vector<Middleware> middlewares_;
  // Request::Allowed: the access controller's RBAC for the request's identity.
  std::function<bool(const security::Identity&, std::string_view)> permits_ =
      [this](const security::Identity& identity, std::string_view permission) {
        return access_ != nullptr && access_->Allows(identity, permission);
      };
  std::vector<RequestObserver> observers_;
  std::shared_ptr<spdlog::logger> access_log_;

  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::atomic<std::size_t> next_context_{0};
  std::vector<asio::executor_work_guard<Executor>> work_;
  // Optional so that Stop() can destroy them before their io_context.
  std::optional<Acceptor> api_;
  std::optional<Acceptor> probe_acceptor_;
  std::vector<std::thread> threads_;
  std::unique_ptr<asio::thread_pool> blocking_pool_;
  std::once_flag stop_once_;

  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<std::int64_t> connections_{0};
  std::mutex clients_mu_;
  std::unordered_map<std::string, std::size_t> clients_;  // open connections per client address
  std::atomic<std::uint64_t> served_{0};
  std::atomic<bool> draining_{false};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;
  std::mutex sessions_mu_;
  std::unordered_set<std::shared_ptr<Session>> sessions_;
};

Server::Server(ServerOptions options, std::shared_ptr<const Router> router,
               std::shared_ptr<const security::AccessController> access, prometheus::Registry* metrics)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(router), std::move(access), metrics)) {}

Server::~Server() { Stop(); }

void Server::Use(Middleware middleware) { impl_->middlewares_.push_back(std::move(middleware)); }
void Server::Observe(RequestObserver observer) { impl_->observers_.push_back(std::move(observer)); }
Status Server::Start() { return impl_->Start(); }
std::uint16_t Server::Port() const {
  if (!impl_->api_) return 0;
  beast::error_code ec;
  const auto ep = impl_->api_->local_endpoint(ec);
  return ec ? 0 : ep.port();
}
std::uint16_t Server::ProbePort() const {
  if (!impl_->probe_acceptor_) return 0;
  beast::error_code ec;
  const auto ep = impl_->probe_acceptor_->local_endpoint(ec);
  return ec ? 0 : ep.port();
}
void Server::StopAccepting() { impl_->StopAccepting(); }
bool Server::WaitDrained(std::chrono::milliseconds timeout) { return impl_->WaitDrained(timeout); }
void Server::Stop() { impl_->Stop(); }
std::int64_t Server::InFlight() const { return impl_->in_flight_.load(); }
std::int64_t Server::OpenConnections() const { return impl_->connections_.load(); }
std::uint64_t Server::RequestsServed() const { return impl_->served_.load(); }
int Server::IoThreads() const { return static_cast<int>(impl_->contexts_.size()); }

}  // namespace bzzz::http
