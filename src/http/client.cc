#include "http/client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

namespace bzzz::http {

namespace {

struct Sink {
  std::string* body;
  std::size_t limit;
  bool overflow = false;
};

std::size_t Append(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  if (sink->body->size() + size * count > sink->limit) {
    sink->overflow = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  sink->body->append(data, size * count);
  return size * count;
}

// What the open-socket callback needs: the check, the URL's host, and why
// an address was refused.
struct ConnectGate {
  const std::function<std::string(std::string_view, std::string_view)>* check;
  std::string host;
  std::string refused;
};

curl_socket_t OpenChecked(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* gate = static_cast<ConnectGate*>(user);
  char text[INET6_ADDRSTRLEN] = {};
  if (address->family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&address->addr)->sin_addr, text, sizeof text);
  } else if (address->family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&address->addr)->sin6_addr, text, sizeof text);
  } else {
    gate->refused = "not an IP address";
    return CURL_SOCKET_BAD;
  }
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  if (std::string why = (*gate->check)(gate->host, text); !why.empty()) {
    gate->refused = std::move(why);
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

}  // namespace

Result<ClientResponse> Call(const ClientOptions& options, std::string_view method, std::string_view path,
                            std::string_view body, std::string_view content_type) {
  static CurlGlobal global;
  CURL* curl = curl_easy_init();
  if (!curl) return Internal("cannot initialize libcurl");
  std::string url = options.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  const std::string method_text(method);
  std::string request_body(body);
  ClientResponse response;
  curl_slist* headers = nullptr;
  std::string auth;
  if (!options.token.empty()) {
    auth = "Authorization: Bearer " + options.token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  const std::string type = "Content-Type: " + std::string(content_type);
  if (!body.empty()) headers = curl_slist_append(headers, type.c_str());
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");
  for (const auto& h : options.headers) headers = curl_slist_append(headers, h.c_str());
  Sink sink{&response.body, options.max_response_bytes};

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method_text.c_str());
  if (method_text == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (!body.empty() || method_text == "POST" || method_text == "PUT" || method_text == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request_body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<long>(options.timeout.count(), 5000)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options.user_agent.c_str());
  // Never send the token to a host that redirects us elsewhere.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  ConnectGate gate{&options.connect_check, "", ""};
  if (options.connect_check) {
    if (CURLU* u = curl_url()) {
      char* host = nullptr;
      if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
          curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        gate.host = host;
        curl_free(host);
      }
      curl_url_cleanup(u);
    }
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, &OpenChecked);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &gate);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  }

  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  char* ct = nullptr;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) response.content_type = ct;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (sink.overflow) {
    return ResourceExhausted("the answer of " + options.url + " is longer than " +
                             std::to_string(options.max_response_bytes) + " bytes");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Timeout("no answer from " + options.url + " within " + std::to_string(options.timeout.count()) + " ms");
  }
  if (rc != CURLE_OK && !gate.refused.empty()) {
    return Unavailable("refused to connect to " + options.url + ": " + gate.refused);
  }
  if (rc != CURLE_OK) {
    return Unavailable("cannot reach " + options.url + ": " + curl_easy_strerror(rc));
  }
  response.status = static_cast<int>(status);
  return response;
}

Result<std::string> GetBody(const std::string& url, std::chrono::milliseconds timeout, std::size_t max_bytes,
                            std::string_view user_agent) {
  ClientOptions options;
  options.url = url;
  options.timeout = timeout;
  options.max_response_bytes = max_bytes;
  options.user_agent = std::string(user_agent);
  auto response = Call(options, "GET", "");
  if (!response.ok()) return response.status();
  if (response->status != 200) return Unavailable("HTTP status " + std::to_string(response->status));
  return std::move(response->body);
}

}  // namespace bzzz::http
