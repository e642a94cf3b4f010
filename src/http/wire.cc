#include "http/wire.h"

#include <charconv>
#include <ctime>

namespace bzzz::http {

namespace {

// Sent on every response (docs/api.md, "Security headers").
constexpr std::string_view kSecurityHeaders =
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n";
// Unless the response sets its own (the web console's page and files).
constexpr std::string_view kDefaultPolicy = "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n";

bool Safe(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The IMF-fixdate of now, recomputed once a second per thread.
std::string_view HttpDate() {
  thread_local std::time_t cached = 0;
  thread_local char text[64];
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = now;
  }
  return {text, length};
}

void AppendNumber(std::string& out, std::size_t n) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
  out.append(buf, end);
}

}  // namespace

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void SerializeResponse(const Response& response, const WireOptions& options, std::string& out) {
  out.clear();
  const int status = response.status >= 100 && response.status <= 999 ? response.status : 500;
  // 1xx, 204 and 304 responses carry no body (RFC 9110).
  const bool bodiless = status < 200 || status == 204 || status == 304;
  out += options.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  AppendNumber(out, static_cast<std::size_t>(status));
  out += ' ';
  out += ReasonPhrase(status);
  out += "\r\nServer: bzzz\r\nDate: ";
  out += HttpDate();
  out += "\r\n";
  if (!bodiless && Safe(response.content_type)) {
    out += "Content-Type: ";
    out += response.content_type;
    out += "\r\n";
  }
  if (Safe(options.request_id)) {
    out += "X-Request-ID: ";
    out += options.request_id;
    out += "\r\n";
  }
  out += kSecurityHeaders;
  bool cache_control = false, policy = false;
  for (const auto& [name, value] : response.headers.All()) {
    if (name.empty() || !Safe(name) || !Safe(value) || EqualsIgnoreCase(name, "Content-Length") ||
        EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Transfer-Encoding")) {
      continue;  // framing headers are ours alone
    }
    if (EqualsIgnoreCase(name, "Cache-Control")) cache_control = true;
    if (EqualsIgnoreCase(name, "Content-Security-Policy")) policy = true;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!cache_control) out += "Cache-Control: no-store\r\n";
  if (!policy) out += kDefaultPolicy;
  if (!options.keep_alive) {
    out += "Connection: close\r\n";
  } else if (options.version == 10) {
    out += "Connection: keep-alive\r\n";
  }
  if (!bodiless) {
    out += "Content-Length: ";
    AppendNumber(out, response.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  if (!bodiless && !options.head) out += response.body;
}

}  // namespace bzzz::http
