#include "cli/common.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "base/json.h"
#include "cli/commands.h"

namespace bzzz::cli {

using nlohmann::json;

void PrintError(const std::string& message) { std::fprintf(stderr, "bzzz: error: %s\n", message.c_str()); }

std::string LocalAdminToken(const std::string& url) {
  const bool loopback = url.rfind("http://127.", 0) == 0 || url.rfind("http://localhost", 0) == 0 ||
                        url.rfind("http://[::1]", 0) == 0;
  if (!loopback) return "";
  const char* dir = std::getenv("BZZZ_DATA_DIR");
  const std::string path = std::string(dir && *dir ? dir : "data") + "/admin.token";
  std::ifstream in(path);
  std::string token;
  if (!std::getline(in, token)) return "";
  return token;
}

void AddClientOptions(CLI::App* cmd, ClientArgs& c) {
  cmd->add_option("--url", c.options.url, "node URL")->envname("BZZZ_URL")->capture_default_str();
  cmd->add_option("--token", c.options.token, "API token (default: BZZZ_TOKEN, then a local node's admin.token)")
      ->envname("BZZZ_TOKEN");
  cmd->add_option("--timeout-ms", c.timeout_ms, "request timeout")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  cmd->final_callback([&c] {
    if (c.options.token.empty()) c.options.token = LocalAdminToken(c.options.url);
  });
}

// Prints the body (pretty JSON when it is JSON) and maps the status to an exit code.
int Report(const Result<ClientResponse>& response, int ok_status_max) {
  if (!response.ok()) {
    PrintError(response.status().message());
    return kExitUnreachable;
  }
  const json body = ParseJson(response->body);
  if (response->status == 401 || response->status == 403) {
    const std::string message =
        !body.is_discarded() && body.contains("error") ? body["error"].value("message", "") : response->body;
    PrintError("HTTP " + std::to_string(response->status) + ": " + message);
    return kExitAuth;
  }
  std::cout << (body.is_discarded() ? response->body : body.dump(2)) << "\n";
  return response->status <= ok_status_max && response->status >= 200 ? kExitOk : kExitFailure;
}

// The JSON body of a 2xx answer; otherwise prints the error and sets `code`.
std::optional<nlohmann::json> CallJsonResult(const ClientResponse& response, int* code) {
  json parsed = ParseJson(response.body);
  if (response.status >= 300 || parsed.is_discarded()) {
    const std::string message = !parsed.is_discarded() && parsed.contains("error")
                                    ? parsed["error"].value("message", "")
                                    : response.body;
    PrintError("HTTP " + std::to_string(response.status) + ": " + message);
    *code = response.status == 401 || response.status == 403 ? kExitAuth : kExitFailure;
    return std::nullopt;
  }
  return parsed;
}

std::optional<nlohmann::json> CallJson(const ClientOptions& options, const char* method, const std::string& path,
                             const std::string& body, int* code) {
  auto response = Call(options, method, path, body);
  if (!response.ok()) {
    PrintError(response.status().message());
    *code = kExitUnreachable;
    return std::nullopt;
  }
  return CallJsonResult(*response, code);
}

ClientOptions ClientFrom(const ClientArgs& c) {
  ClientOptions options = c.options;
  options.timeout = std::chrono::milliseconds(c.timeout_ms);
  return options;
}

}  // namespace bzzz::cli
