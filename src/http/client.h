// Client: one blocking HTTP(S) request (libcurl). Used by the CLI to reach a
// running node and by the http and llm executors. Thread-safe: every call
// opens its own connection.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace bzzz::http {

struct ClientOptions {
  std::string url = "http://127.0.0.1:8080";  // --url, BZZZ_URL
  std::string token;                           // --token, BZZZ_TOKEN
  std::chrono::milliseconds timeout{10000};
  std::vector<std::string> headers;            // extra "Name: value" lines
  std::string user_agent = "bzzz-cli";
  std::size_t max_response_bytes = 64u << 20;  // a longer answer fails with ResourceExhausted
  // When set: called with the URL's host and each address the connection
  // is about to be made to (after resolution, so a second DNS answer gains
  // nothing); a non-empty answer refuses that address, and a call that
  // reaches no allowed address fails with the answer (Unavailable). Such a
  // call also ignores proxy settings of the environment and speaks only
  // http and https.
  std::function<std::string(std::string_view host, std::string_view ip)> connect_check;
};

struct ClientResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

// Sends one request to options.url + path. Unavailable when the node cannot be reached; the HTTP
// status of any answer (even 4xx/5xx) is in the response.
Result<ClientResponse> Call(const ClientOptions& options, std::string_view method, std::string_view path,
                            std::string_view body = {}, std::string_view content_type = "application/json");

// GET `url` (a whole URL) and the body of a 200 answer; any other status is
// Unavailable naming it. For documents the node fetches (an OIDC issuer's
// discovery document and keys).
Result<std::string> GetBody(const std::string& url, std::chrono::milliseconds timeout, std::size_t max_bytes,
                            std::string_view user_agent = "bzzz");

}  // namespace bzzz::http
