// Writing a Response as HTTP/1.1 bytes.
//
// The server serializes responses itself rather than through Beast's
// serializer: one pass into a buffer the connection reuses, with no
// per-header allocation. Parsing stays with Beast. Pure functions;
// thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"

namespace bzzz::http {

struct WireOptions {
  unsigned version = 11;           // 10 or 11, from the request
  bool keep_alive = true;          // false: "Connection: close"
  bool head = false;               // HEAD: headers only, Content-Length of the body
  std::string_view request_id;
};

// Appends the status line, the standard and security headers, the
// response's own headers and the body to `out` (which is cleared first).
// Header names or values containing CR, LF or NUL are dropped (they would
// let a value inject headers).
void SerializeResponse(const Response& response, const WireOptions& options, std::string& out);

// "OK", "Not Found", ... ("Unknown" for codes without a standard phrase).
std::string_view ReasonPhrase(int status);

}  // namespace bzzz::http
