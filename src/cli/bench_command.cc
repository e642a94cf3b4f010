#include "cli/bench_command.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"

namespace bzzz::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Route {
  std::string label;   // "GET /health"
  bhttp::verb method;
  std::string target;
  std::string body;
};

// One route's run: a latency per answered request, and the errors.
struct RouteRun {
  std::vector<double> latencies_ms;  // of every answered request
  std::size_t unanswered = 0;        // failed connections, resets, timeouts
  std::size_t bad_status = 0;        // answered, but not 2xx
  double seconds = 0;
};

struct Load {
  tcp::resolver::results_type endpoints;
  std::string host;
  std::string token;
  Route route;
  Clock::time_point start, end;
  double rate = 0;          // requests per second in all; 0: as fast as possible
  std::size_t next = 0;     // the next request's ticket (one thread: no atomics)
  RouteRun run;
};

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

// One user: a keep-alive connection taking tickets until the run ends.
asio::awaitable<void> User(Load& load) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  bool connected = false;
  beast::flat_buffer buffer;
  asio::steady_timer timer(executor);
  for (;;) {
    const std::size_t ticket = load.next++;
    const Clock::time_point due =
        load.rate > 0 ? load.start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(static_cast<double>(ticket) / load.rate))
                      : Clock::now();
    if (due >= load.end) co_return;
    if (due > Clock::now()) {
      timer.expires_at(due);
      boost::system::error_code ignored;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    boost::system::error_code ec;
    if (!connected) {
      stream.expires_after(std::chrono::seconds(10));
      co_await stream.async_connect(load.endpoints, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        ++load.run.unanswered;
        continue;
      }
      connected = true;
    }
    bhttp::request<bhttp::string_body> req{load.route.method, load.route.target, 11};
    req.set(bhttp::field::host, load.host);
    req.keep_alive(true);
    if (!load.token.empty()) req.set(bhttp::field::authorization, "Bearer " + load.token);
    if (!load.route.body.empty()) {
      req.set(bhttp::field::content_type, "application/json");
      req.body() = load.route.body;
    }
    req.prepare_payload();
    stream.expires_after(std::chrono::seconds(10));
    co_await bhttp::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    bhttp::response<bhttp::string_body> res;
    if (!ec) co_await bhttp::async_read(stream, buffer, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      ++load.run.unanswered;
      beast::error_code closed;
      stream.socket().close(closed);
      connected = false;
      buffer.clear();
      continue;
    }
    // From when the request was due (open loop), not from when it was sent.
    load.run.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
    if (res.result_int() < 200 || res.result_int() >= 300) ++load.run.bad_status;
    if (!res.keep_alive()) {
      beast::error_code closed;
      stream.socket().close(closed);
      connected = false;
    }
  }
}

}  // namespace

struct BenchCommand::Args {
  ClientArgs client;
  int seconds = 10;
  double rate = 1000;
  int users = 500;
  std::vector<std::string> routes = {"health", "info", "tasks"};
  bool as_json = false;
  CLI::App* cmd = nullptr;

  int Execute() {
    const ClientOptions options = ClientFrom(client);
    // The URL's host and port (http:// only: a load test of a TLS proxy is
    // the proxy's).
    std::string rest = options.url;
    if (rest.rfind("http://", 0) != 0) {
      PrintError("bench needs an http:// URL, not " + options.url);
      return kExitUsage;
    }
    rest = rest.substr(7);
    if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
    const auto colon = rest.rfind(':');
    const std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
    const std::string port = colon == std::string::npos ? "80" : rest.substr(colon + 1);

    std::vector<Route> plan;
    for (const auto& r : routes) {
      if (r == "health") plan.push_back({"GET /health", bhttp::verb::get, "/health", ""});
      if (r == "info") plan.push_back({"GET /info (token)", bhttp::verb::get, "/info", ""});
      if (r == "tasks") {
        plan.push_back({"POST /api/v1/tasks (no-op)", bhttp::verb::post, "/api/v1/tasks",
                        R"({"executor":"builtin","input":{"op":"echo","value":1}})"});
      }
    }
    asio::io_context io;
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec) {
      PrintError("cannot resolve " + rest + ": " + ec.message());
      return kExitUnreachable;
    }
    nlohmann::json results = nlohmann::json::array();
    bool all_ok = true;
    if (!as_json) {
      std::printf("bzzz bench: %s, %d users, %s, %d s per route\n", options.url.c_str(), users,
                  rate > 0 ? (std::to_string(static_cast<int>(rate)) + " req/s").c_str() : "as fast as possible",
                  seconds);
      std::printf("%-28s %9s %9s %8s %8s %8s %8s %8s %8s  %s\n", "route", "requests", "req/s", "p50 ms", "p90 ms",
                  "p95 ms", "p99 ms", "max ms", "errors", "nO KPI");
    }
    for (const Route& route : plan) {
      Load load;
      load.endpoints = endpoints;
      load.host = rest;
      load.token = options.token;
      load.route = route;
      load.rate = rate;
      load.start = Clock::now() + std::chrono::milliseconds(100);
      load.end = load.start + std::chrono::seconds(seconds);
      for (int u = 0; u < users; ++u) asio::co_spawn(io, User(load), asio::detached);
      io.restart();
      io.run();
      load.run.seconds = std::chrono::duration<double>(std::min(Clock::now(), load.end) - load.start).count();
      RouteRun& r = load.run;
      std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
      const std::size_t answered = r.latencies_ms.size();
      const std::size_t attempted = answered + r.unanswered;
      const std::size_t errors = r.unanswered + r.bad_status;
      const double rps = r.seconds > 0 ? static_cast<double>(answered) / r.seconds : 0;
      const double p50 = Percentile(r.latencies_ms, 50), p90 = Percentile(r.latencies_ms, 90),
                   p95 = Percentile(r.latencies_ms, 95), p99 = Percentile(r.latencies_ms, 99),
                   max = r.latencies_ms.empty() ? 0 : r.latencies_ms.back();
      const double error_ratio = attempted ? static_cast<double>(errors) / static_cast<double>(attempted) : 1;
      std::vector<std::string> missed;
      if (answered == 0) missed.push_back("no answer");
      if (p50 >= 100) missed.push_back("p50");
      if (p90 >= 300) missed.push_back("p90");
      if (p95 >= 500) missed.push_back("p95");
      if (p99 >= 1000) missed.push_back("p99");
      if (error_ratio >= 0.001) missed.push_back("errors");
      if (rate >= 1000 && users >= 500 && rps < 0.95 * rate) missed.push_back("throughput");
      std::string verdict = missed.empty() ? "met" : "missed:";
      for (const auto& m : missed) verdict += " " + m;
      all_ok = all_ok && missed.empty();
      results.push_back({{"route", route.label},
                         {"requests", answered},
                         {"requests_per_second", rps},
                         {"p50_ms", p50},
                         {"p90_ms", p90},
                         {"p95_ms", p95},
                         {"p99_ms", p99},
                         {"max_ms", max},
                         {"errors", errors},
                         {"kpi_met", missed.empty()}});
      if (!as_json) {
        std::printf("%-28s %9zu %9.1f %8.2f %8.2f %8.2f %8.2f %8.2f %8zu  %s\n", route.label.c_str(), answered, rps,
                    p50, p90, p95, p99, max, errors, verdict.c_str());
        std::fflush(stdout);
      }
      if (answered == 0) {
        if (!as_json) PrintError("no request to " + options.url + " was answered");
        if (as_json) std::cout << results.dump(2) << "\n";
        return kExitUnreachable;
      }
    }
    if (as_json) std::cout << nlohmann::json{{"url", options.url}, {"results", results}}.dump(2) << "\n";
    return all_ok ? kExitOk : kExitFailure;
  }
};

BenchCommand::BenchCommand(CLI::App& app) : args_(std::make_unique<Args>()) {
  Args& a = *args_;
  a.cmd = app.add_subcommand("bench", "measure a running node against the nO KPI table (open-loop load)");
  AddClientOptions(a.cmd, a.client);
  a.cmd->add_option("--seconds", a.seconds, "how long each route is driven")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  a.cmd->add_option("--rate", a.rate, "requests per second in all (0: as fast as the users can)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  a.cmd->add_option("--users", a.users, "concurrent users (keep-alive connections)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  a.cmd->add_option("--route", a.routes, "health, info, tasks (repeatable)")
      ->check(CLI::IsMember({"health", "info", "tasks"}));
  a.cmd->add_flag("--json", a.as_json, "print the results as JSON");
}

BenchCommand::~BenchCommand() = default;

std::optional<int> BenchCommand::Run() {
  if (!*args_->cmd) return std::nullopt;
  return args_->Execute();
}

}  // namespace bzzz::cli
