// A real browser for end-to-end tests: Debian's headless Chromium driven by
// chromedriver over the W3C WebDriver protocol (JSON over HTTP on loopback).
// Test-only. When chromedriver or Chromium is missing, ok() is false and
// why() says so (scripts/setup.sh installs both).
#pragma once

#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "support/support.h"

namespace bzzz::testing {

class WebDriver {
 public:
  static constexpr char kDriver[] = "/usr/bin/chromedriver";
  static constexpr char kChromium[] = "/usr/bin/chromium";

  explicit WebDriver(const TempDir& dir) {
    if (access(kDriver, X_OK) != 0 || access(kChromium, X_OK) != 0) {
      why_ = "chromium and chromium-driver are not installed (scripts/setup.sh installs them)";
      return;
    }
    const int port = FreePort();
    url_ = "http://127.0.0.1:" + std::to_string(port);
    driver_ = std::make_unique<Process>(kDriver, std::vector<std::string>{"--port=" + std::to_string(port)},
                                        std::vector<std::string>{}, dir.File("chromedriver.log"));
    if (!Eventually([&] { return Call("GET", "/status").value("value", nlohmann::json::object()).value("ready", false); },
                    std::chrono::seconds(15))) {
      why_ = "chromedriver did not become ready";
      return;
    }
    const nlohmann::json caps = {
        {"capabilities",
         {{"alwaysMatch",
           {{"browserName", "chrome"},
            {"goog:chromeOptions",
             {{"binary", kChromium},
              {"args",
               {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=" + dir.File("chromium-profile")}}}}}}}}};
    const nlohmann::json created = Call("POST", "/session", caps.dump());
    session_ = created.value("value", nlohmann::json::object()).value("sessionId", "");
    if (session_.empty()) why_ = "no browser session: " + created.dump().substr(0, 500);
  }

  ~WebDriver() {
    if (!session_.empty()) Call("DELETE", "/session/" + session_);
    if (driver_) {
      driver_->Signal(SIGTERM);
      driver_->Wait(std::chrono::seconds(5));
    }
  }

  bool ok() const { return !session_.empty(); }
  const std::string& why() const { return why_; }

  // Loads `url` as if typed in the address bar (redirects followed).
  nlohmann::json Navigate(const std::string& url) {
    return Call("POST", Session("/url"), nlohmann::json{{"url", url}}.dump());
  }
  std::string CurrentUrl() { return Call("GET", Session("/url")).value("value", ""); }
  // The page's visible text.
  std::string Text() { return Execute("return document.body ? document.body.innerText : '';").get<std::string>(); }
  // Runs `script` in the page (a function body; `return` gives the value).
  nlohmann::json Execute(const std::string& script) {
    return Call("POST", Session("/execute/sync"), nlohmann::json{{"script", script}, {"args", nlohmann::json::array()}}.dump())
        .value("value", nlohmann::json());
  }
  // Runs an asynchronous script; it ends by calling its last argument
  // with the value: `const done = arguments[arguments.length - 1]; ... done(x)`.
  nlohmann::json ExecuteAsync(const std::string& script) {
    return Call("POST", Session("/execute/async"), nlohmann::json{{"script", script}, {"args", nlohmann::json::array()}}.dump())
        .value("value", nlohmann::json());
  }
  // Lets the test's scripts past the page's Content-Security-Policy (the
  // node's API answers forbid a page to connect anywhere, which is right
  // for them; a test script standing in for the console needs to).
  void BypassCsp() {
    Call("POST", Session("/goog/cdp/execute"),
         nlohmann::json{{"cmd", "Page.setBypassCSP"}, {"params", {{"enabled", true}}}}.dump());
  }
  // The cookies the browser holds for the current page, HttpOnly included
  // (as the browser's storage has them, not as the page sees them).
  nlohmann::json Cookies() { return Call("GET", Session("/cookie")).value("value", nlohmann::json::array()); }

 private:
  std::string Session(const std::string& path) const { return "/session/" + session_ + path; }

  nlohmann::json Call(const std::string& method, const std::string& path, const std::string& body = "") {
    cli::ClientOptions o;
    o.url = url_;
    o.timeout = std::chrono::seconds(60);
    auto r = cli::Call(o, method, path, body);
    if (!r.ok()) return nlohmann::json::object();
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }

  std::string url_;
  std::string why_;
  std::string session_;
  std::unique_ptr<Process> driver_;
};

}  // namespace bzzz::testing
