// Helpers shared by the CLI's command files (internal to src/cli).
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "http/message.h"

namespace bzzz::cli {

void PrintError(const std::string& message);

using http::PercentEncode;

struct ClientArgs {
  ClientOptions options;
  int timeout_ms = 10000;
};

// --url (BZZZ_URL), --token (BZZZ_TOKEN), --timeout-ms. Without a token,
// a node on this machine (a loopback URL) is reached with the admin token
// it made for itself on a first run: ${BZZZ_DATA_DIR:-data}/admin.token.
void AddClientOptions(CLI::App* cmd, ClientArgs& c);
// The client options parsed into `c`, with --timeout-ms applied.
ClientOptions ClientFrom(const ClientArgs& c);
// That token, or "" (not loopback, or no readable file).
std::string LocalAdminToken(const std::string& url);

// Prints the body (pretty JSON when it is JSON) and maps the status to an
// exit code (401/403 → kExitAuth, unreachable → kExitUnreachable).
int Report(const Result<ClientResponse>& response, int ok_status_max = 299);

// The JSON body of a 2xx answer; otherwise prints the error and sets `code`.
std::optional<nlohmann::json> CallJsonResult(const ClientResponse& response, int* code);
std::optional<nlohmann::json> CallJson(const ClientOptions& options, const char* method, const std::string& path,
                                       const std::string& body, int* code);

}  // namespace bzzz::cli
