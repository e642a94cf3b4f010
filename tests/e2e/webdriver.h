// A real browser for end-to-end tests: Debian's headless Chromium driven by
// chromedriver over the W3C WebDriver protocol (JSON over HTTP on loopback).
// Test-only. When chromedriver or Chromium is missing, ok() is false and
// why() says so (scripts/setup.sh installs both).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "cli/client.h"
#include "support/support.h"

namespace bzzz::testing {

class WebDriver {
 public:
  static constexpr char kElement[] = "element-6066-11e4-a52e-4f735466cecf";
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
            // The page's console messages, for GET of BrowserLog().
            {"goog:loggingPrefs", {{"browser", "ALL"}}},
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
  // The first element matching a CSS selector (its WebDriver reference), or
  // "" when there is none.
  std::string Find(const std::string& css) {
    const nlohmann::json r =
        Call("POST", Session("/element"), nlohmann::json{{"using", "css selector"}, {"value", css}}.dump());
    const nlohmann::json v = r.value("value", nlohmann::json::object());
    return v.is_object() ? v.value(kElement, "") : "";
  }
  // Clicks the element as a user would (scrolled into view, must be
  // visible and enabled); false when there is no such element or the click
  // was refused.
  bool Click(const std::string& css) {
    const std::string e = Find(css);
    if (e.empty()) return false;
    return Call("POST", Session("/element/" + e + "/click"), "{}").value("value", nlohmann::json(1)).is_null();
  }
  // Clears a field, then types `text` into it, key by key.
  bool Type(const std::string& css, const std::string& text) {
    const std::string e = Find(css);
    if (e.empty()) return false;
    Call("POST", Session("/element/" + e + "/clear"), "{}");
    return Call("POST", Session("/element/" + e + "/value"), nlohmann::json{{"text", text}}.dump())
        .value("value", nlohmann::json(1))
        .is_null();
  }
  // Presses keys on the focused element (e.g. "\uE004" is Tab, "\uE007" Enter).
  void Keys(const std::string& keys) {
    nlohmann::json actions = nlohmann::json::array();
    nlohmann::json down = nlohmann::json::array();
    std::size_t i = 0;
    while (i < keys.size()) {
      // One UTF-8 character per key.
      std::size_t n = 1;
      const unsigned char b = static_cast<unsigned char>(keys[i]);
      if (b >= 0xF0) n = 4;
      else if (b >= 0xE0) n = 3;
      else if (b >= 0xC0) n = 2;
      const std::string key = keys.substr(i, n);
      down.push_back({{"type", "keyDown"}, {"value", key}});
      down.push_back({{"type", "keyUp"}, {"value", key}});
      i += n;
    }
    actions.push_back({{"type", "key"}, {"id", "keyboard"}, {"actions", down}});
    Call("POST", Session("/actions"), nlohmann::json{{"actions", actions}}.dump());
  }
  // Sets the browser window's size in CSS pixels.
  void Resize(int width, int height) {
    Call("POST", Session("/window/rect"), nlohmann::json{{"width", width}, {"height", height}}.dump());
  }
  // Saves a PNG of the viewport; false when the browser gave none.
  bool Screenshot(const std::string& path) {
    const std::string b64 = Call("GET", Session("/screenshot")).value("value", "");
    if (b64.empty()) return false;
    const auto decoded = FromBase64(b64);
    if (!decoded.ok()) return false;
    const std::string& png = *decoded;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(png.data(), 1, png.size(), f) == png.size();
    std::fclose(f);
    return ok;
  }
  // The page's console messages since the last call: each {level,
  // message, source, timestamp} (level "SEVERE" for errors).
  nlohmann::json BrowserLog() {
    return Call("POST", Session("/se/log"), nlohmann::json{{"type", "browser"}}.dump())
        .value("value", nlohmann::json::array());
  }

  // Empties the browser's HTTP cache (the next load is a first visit).
  void ClearCache() {
    Call("POST", Session("/goog/cdp/execute"),
         nlohmann::json{{"cmd", "Network.clearBrowserCache"}, {"params", nlohmann::json::object()}}.dump());
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
