// Client: how CLI subcommands reach a running node over HTTP(S) (libcurl).
// Thread-compatible: one call at a time per ClientOptions is not required;
// every call opens its own connection.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace bzzz::cli {

struct ClientOptions {
  std::string url = "http://127.0.0.1:8080";  // --url, BZZZ_URL
  std::string token;                           // --token, BZZZ_TOKEN
  std::chrono::milliseconds timeout{10000};
};

struct ClientResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

// Sends one request. Unavailable when the node cannot be reached; the HTTP
// status of any answer (even 4xx/5xx) is in the response.
Result<ClientResponse> Call(const ClientOptions& options, std::string_view method, std::string_view path,
                            std::string_view body = {}, std::string_view content_type = "application/json");

}  // namespace bzzz::cli
