#include "http/message.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "base/errc.h"
#include "base/json.h"

namespace bzzz::http {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kHead: return "HEAD";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kPatch: return "PATCH";
    case Method::kDelete: return "DELETE";
    case Method::kOptions: return "OPTIONS";
    case Method::kOther: return "OTHER";
  }
  return "OTHER";
}

Method ParseMethod(std::string_view text) {
  if (text == "GET") return Method::kGet;
  if (text == "HEAD") return Method::kHead;
  if (text == "POST") return Method::kPost;
  if (text == "PUT") return Method::kPut;
  if (text == "PATCH") return Method::kPatch;
  if (text == "DELETE") return Method::kDelete;
  if (text == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

const std::string* Headers::Find(std::string_view name) const {
  for (const auto& [n, v] : items_) {
    if (EqualsIgnoreCase(n, name)) return &v;
  }
  return nullptr;
}

void Headers::Set(std::string name, std::string value) {
  std::erase_if(items_, [&](const auto& item) { return EqualsIgnoreCase(item.first, name); });
  items_.emplace_back(std::move(name), std::move(value));
}

void Headers::Add(std::string name, std::string value) { items_.emplace_back(std::move(name), std::move(value)); }

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    const auto eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), true);
    if (!key || *key != name) continue;
    if (eq == std::string_view::npos) return std::string{};
    return PercentDecode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

Result<long long> Request::IntParam(std::string_view name, long long fallback, long long lo, long long hi) const {
  auto v = QueryParam(name);
  if (!v) return fallback;
  try {
    std::size_t used = 0;
    const long long n = std::stoll(*v, &used);
    if (used != v->size() || n < lo || n > hi) throw std::out_of_range("");
    return n;
  } catch (const std::exception&) {
    return InvalidArgument(std::string(name) + ": an integer " + std::to_string(lo) + ".." + std::to_string(hi));
  }
}

Response Response::Json(int status, std::string json) {
  Response r;
  r.status = status;
  r.body = std::move(json);
  return r;
}

Response Response::Text(int status, std::string text, std::string content_type) {
  Response r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.body = std::move(text);
  return r;
}

Response ErrorResponse(int status, std::string_view code, std::string_view message,
                       std::string_view request_id) {
  nlohmann::json body = {{"error",
                          {{"code", code}, {"message", message}, {"request_id", request_id}}}};
  // Replace rather than throw on invalid UTF-8 echoed from the request.
  return Response::Json(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> PercentDecode(std::string_view in, bool form_encoding) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && form_encoding) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::chrono::milliseconds> TimeoutFromBody(std::string_view body, std::chrono::milliseconds fallback) {
  if (body.empty()) return fallback;
  const nlohmann::json j = ParseJson(body);
  if (!j.is_object()) return InvalidArgument("body must be a JSON object");
  if (!j.contains("timeout_ms")) return fallback;
  const auto& t = j["timeout_ms"];
  if (!t.is_number_integer() || t.get<long long>() < 1 || t.get<long long>() > 60000) {
    return InvalidArgument("timeout_ms must be an integer from 1 to 60000");
  }
  return std::chrono::milliseconds(t.get<long long>());
}

int HttpStatusOf(const Status& status) {
  if (const ErrorCategory* category = CategoryOf(status)) return category->HttpStatus(status.reason().value());
  int code = 500;
  switch (status.code()) {
    case StatusCode::kOk: code = 200; break;
    case StatusCode::kInvalidArgument: code = 400; break;
    case StatusCode::kUnauthenticated: code = 401; break;
    case StatusCode::kPermissionDenied: code = 403; break;
    case StatusCode::kNotFound: code = 404; break;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
    case StatusCode::kFailedPrecondition: code = 409; break;
    case StatusCode::kResourceExhausted: code = 429; break;
    case StatusCode::kUnavailable: code = 503; break;
    case StatusCode::kTimeout: code = 504; break;
    case StatusCode::kInternal: code = 500; break;
  }
  return code;
}

Response ErrorFromStatus(const Status& status, std::string_view request_id) {
  const int code = HttpStatusOf(status);
  // The codes the server's own errors use for these statuses.
  std::string_view name = code == 400 ? "bad_request" : code == 429 ? "too_many_requests" : StatusCodeName(status.code());
  Response r = ErrorResponse(code, name, status.message(), request_id);
  if (code == 429 || code == 503) r.headers.Set("Retry-After", "1");
  return r;
}

}  // namespace bzzz::http
