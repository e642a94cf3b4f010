// Fuzzes the write and read paths of the API end to end, past the parsers:
// the real UCXI and task handlers (ucxl/ucxi_api.h, tasks/api.h) on a real
// SQLite store, so that what a request stores is also serialized back (task
// views, UCXI envelopes, histories, search results). No agent runs, so no
// submitted task is ever executed.
//
// Input: "METHOD TARGET\n" then header lines "Name: value\n", an empty
// line, and the body. Properties: no crash, no exception; no 500 (a
// handler that fails after validation is a bug); every JSON answer is
// valid JSON.
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "http/message.h"
#include "http/router.h"
#include "storage/sqlite/sqlite.h"
#include "tasks/api.h"
#include "ucxl/ucxi_api.h"

namespace {

using namespace bzzz;

struct Api {
  std::string dir;
  storage::Storage storage;
  std::shared_ptr<ucxl::UcxiServices> ucxi;
  std::shared_ptr<tasks::TaskServices> tasks;
  http::Router router;

  Api() {
    char pattern[] = "/tmp/bzzz-api-fuzz-XXXXXX";
    if (mkdtemp(pattern) == nullptr) std::abort();
    dir = pattern;
    config::Config config;
    config.node.data_dir = dir + "/data";
    config.agents.initial_agents = 0;  // nothing submitted ever runs
    config.agents.autoscaling.enabled = false;
    config.agents.autoscaling.min_agents = 0;
    storage::sqlite::SqliteOptions o;
    o.path = dir + "/bzzz.db";
    auto opened = storage::sqlite::Open(o);
    if (!opened.ok() || !opened->store->Migrate().ok()) std::abort();
    storage = std::move(opened).value();
    ucxi = ucxl::UcxiServices::Create(storage.contexts, nullptr, config, nullptr);
    auto started = tasks::TaskServices::Start(storage.tasks, config, "fuzz-node", nullptr);
    if (!started.ok()) std::abort();
    tasks = std::move(started).value();
    if (!ucxi->RegisterRoutes(router).ok() || !tasks->RegisterRoutes(router).ok()) std::abort();
  }
  ~Api() {
    tasks.reset();
    ucxi.reset();
    storage = {};
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Api& TheApi() {
  static Api api;
  return api;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto line_end = input.find('\n');
  if (line_end == std::string_view::npos) return 0;
  const std::string_view line = input.substr(0, line_end);
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return 0;

  http::Request req;
  req.method_text = std::string(line.substr(0, space));
  req.method = http::ParseMethod(req.method_text);
  req.target = std::string(line.substr(space + 1));
  const auto q = req.target.find('?');
  auto path = http::PercentDecode(std::string_view(req.target).substr(0, q), false);
  if (!path) return 0;
  req.path = *path;
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  std::string_view rest = input.substr(line_end + 1);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    const std::string_view header = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (header.empty()) break;
    const auto colon = header.find(':');
    if (colon == std::string_view::npos) return 0;
    std::string_view value = header.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.Add(std::string(header.substr(0, colon)), std::string(value));
  }
  req.body = std::string(rest);
  req.request_id = "fuzz";
  req.client_address = "127.0.0.1";
  req.identity.principal = "fuzz";
  req.identity.roles = {"system_admin"};
  req.identity.method = "api-token";
  req.identity.authenticated = true;

  Api& api = TheApi();
  const auto match = api.router.Match(req.method, req.path);
  if (match.kind != http::RouteMatch::Kind::kFound) return 0;
  req.route = match.route->pattern;
  req.params = match.params;
  http::Response response;
  if (match.route->handler) {
    response = match.route->handler(req);
  } else {
    std::promise<http::Response> answered;
    auto future = answered.get_future();
    match.route->async_handler(req, [&answered](http::Response r) { answered.set_value(std::move(r)); });
    Check(future.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    response = future.get();
  }
  static const bool verbose = std::getenv("BZZZ_FUZZ_VERBOSE") != nullptr;  // for corpus upkeep
  if (verbose) std::fprintf(stderr, "%s %s -> %d %.160s\n", req.method_text.c_str(), req.path.c_str(), response.status,
                            response.body.c_str());
  // 500 is a handler that failed after validation; 503 (no DHT here) is fine.
  Check(response.status >= 200 && response.status < 600 && response.status != 500);
  if (response.content_type.rfind("application/json", 0) == 0 && !response.body.empty()) {
    Check(nlohmann::json::accept(response.body));
  }
  return 0;
}
