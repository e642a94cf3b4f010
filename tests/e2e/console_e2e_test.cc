// The web console (docs/console.md) in a real browser: headless Chromium
// driven over WebDriver against real bzzz nodes on loopback.
//
// Three nodes and a bootstrap node: an admin signs in with a token, watches
// a task submitted to the console's node run to success on another node,
// resolves an escalated HMMM room, scales the agent pool, visits every
// view; a read-only user sees no control that changes anything; the admin
// node is killed and the console shows the new admin; the console's own
// node restarts and the page reconnects and says so. A user of the
// identity provider signs in through it. Screenshots of each view are saved
// under $BZZZ_ARTIFACTS_DIR/console (build/artifacts/console by ctest), and
// the browser's console must stay free of errors.
//
// A single node measures the page's weight and first render (the figures
// in BENCHMARKS.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdlib>

#include "e2e/cluster.h"
#include "e2e/local_idp.h"
#include "e2e/webdriver.h"
#include "security/authenticator.h"

namespace bzzz::e2e {
namespace {

using testing::Eventually;
using testing::ReadFile;
using testing::WebDriver;

const std::string kReaderToken = "reader-token-e2e-console-00000001";  // role read_only

std::string ArtifactsDir() {
  const char* dir = std::getenv("BZZZ_ARTIFACTS_DIR");
  std::string d = (dir && *dir) ? dir : "/tmp/bzzz-artifacts";
  d += "/console";
  ::mkdir(d.substr(0, d.rfind('/')).c_str(), 0755);
  ::mkdir(d.c_str(), 0755);
  return d;
}

// The browser, with what the console tests ask of it.
struct Console {
  WebDriver& b;
  std::string url;  // the node's base URL
  std::string shots = ArtifactsDir();
  json errors = json::array();  // SEVERE console messages that are not expected

  std::string Str(const std::string& script) {
    const json v = b.Execute(script);
    return v.is_string() ? v.get<std::string>() : "";
  }
  int Count(const std::string& css) {
    const json v = b.Execute("return document.querySelectorAll(" + json(css).dump() + ").length;");
    return v.is_number() ? v.get<int>() : -1;
  }
  std::string TextOf(const std::string& css) {
    return Str("const e = document.querySelector(" + json(css).dump() + "); return e ? e.textContent.trim() : '';");
  }
  std::string Attr(const std::string& css, const std::string& name) {
    return Str("const e = document.querySelector(" + json(css).dump() + "); return e ? (e.getAttribute(" +
               json(name).dump() + ") || '') : '';");
  }
  bool Wait(const std::string& css, std::chrono::milliseconds timeout = 20s) {
    return Eventually([&] { return Count(css) > 0; }, timeout);
  }
  // Opens a view by its hash and waits for its first data.
  bool Open(const std::string& hash, const std::string& view) {
    b.Execute("location.hash = " + json(hash).dump() + ";");
    return Wait("#view[data-view=\"" + view + "\"][data-ready]");
  }
  void Shot(const std::string& name) { EXPECT_TRUE(b.Screenshot(shots + "/" + name + ".png")) << name; }
  // Collects the console's messages; `network_ok` tells which failed loads
  // are expected (a node being killed or restarted).
  void CollectLog(bool network_ok = false) {
    for (const auto& e : b.BrowserLog()) {
      if (e.value("level", "") != "SEVERE") continue;
      if (network_ok && e.value("source", "") == "network") continue;
      errors.push_back(e);
    }
  }
  void SignIn(const std::string& token) {
    ASSERT_TRUE(Wait("#signin-main:not([hidden]) #token-input")) << b.Text();
    ASSERT_TRUE(b.Type("#token-input", token));
    ASSERT_TRUE(b.Click("#token-submit"));
  }
  // Every interactive element has a name a screen reader can say.
  int Unnamed() {
    const json v = b.Execute(R"(
      let n = 0;
      for (const e of document.querySelectorAll('a[href], button, input, select, textarea')) {
        if (e.type === 'hidden' || e.closest('[hidden]')) continue;
        const named = (e.getAttribute('aria-label') || '').trim() || (e.labels && e.labels.length) ||
                      (e.textContent || '').trim() || (e.getAttribute('title') || '').trim() ||
                      (e.getAttribute('aria-labelledby') || '').trim();
        if (!named) n++;
      }
      return n;)");
    return v.is_number() ? v.get<int>() : -1;
  }
};

// Each test: a cluster (started by the test) and a browser; without
// Chromium the test is skipped, except in CI.
class ConsoleEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    browser_ = std::make_unique<WebDriver>(c.dir);
    if (!browser_->ok()) {
      if (std::getenv("CI") != nullptr) FAIL() << "CI must run the browser test: " << browser_->why();
      GTEST_SKIP() << browser_->why();
    }
  }
  Cluster c;
  std::unique_ptr<WebDriver> browser_;
};

json Api(const Cluster& c, int node, const char* method, const std::string& path, const json& body = nullptr,
         int* status = nullptr) {
  cli::ClientOptions o;
  o.url = c.Url(node);
  o.token = kAdminToken;
  o.timeout = 10s;
  auto r = cli::Call(o, method, path, body.is_null() ? "" : body.dump());
  if (status) *status = r.ok() ? r->status : 0;
  if (!r.ok()) return json::object();
  const json j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

TEST_F(ConsoleEndToEnd, OperatorsFollowTheClusterInARealBrowser) {
  WebDriver& browser = *browser_;
  const std::string config = c.dir.Write(
      "bzzz.yaml", "security:\n  api_tokens:\n    - name: reader\n      token_hash: \"" +
                       security::HashToken(kReaderToken) + "\"\n      roles: [read_only]\n");
  c.node_args = {"--config", config,
                 "--bootstrap-expect", "3",
                 "--set", "security.rate_limit.enabled=false",
                 "--set", "tasks.retry_backoff_base=2s",
                 "--set", "tasks.retry_backoff_max=2s",
                 "--set", "hmmm.escalation_keywords=stuck,manual intervention",
                 "--set", "console.history_interval=500ms"};
  c.StartBootstrap();
  for (int i = 0; i < 3; ++i) c.StartNode(i, true, {"--set", "node.capabilities=cap" + std::to_string(i)});
  std::vector<std::string> ids;
  std::string admin;
  ASSERT_TRUE(c.AwaitAdmin(3, ids, admin, 60s)) << c.AllLogs();
  ASSERT_TRUE(Eventually([&] { return c.Peers(0) >= 3 && c.Peers(1) >= 3 && c.Peers(2) >= 3; }, 30s));
  int a = 0;
  for (int i = 0; i < 3; ++i) a = ids[i] == admin ? i : a;
  const int home = (a + 1) % 3;    // the node the console talks to
  const int worker = (a + 2) % 3;  // the node that runs the lent task

  // The cluster works while the console watches: a steady trickle of tasks
  // to every node (about 30 a second) until the test ends.
  std::atomic<bool> done{false};
  std::thread load([&] {
    for (int n = 0; !done; ++n) {
      Api(c, n % 3, "POST", "/api/v1/tasks", {{"executor", "builtin"}, {"input", {{"op", "echo"}, {"value", n}}}});
      std::this_thread::sleep_for(33ms);
    }
  });
  struct Join {
    std::atomic<bool>& done;
    std::thread& t;
    ~Join() {
      done = true;
      t.join();
    }
  } join{done, load};

  Console ui{browser, c.Url(home)};
  browser.Resize(1280, 800);
  browser.Navigate(ui.url + "/ui/");

  // Sign in: a wrong token is refused with the API's reason; the admin's
  // token opens the console.
  ui.SignIn("not-a-token");
  ASSERT_TRUE(Eventually([&] { return !ui.TextOf("#signin-error").empty(); }, 10s)) << browser.Text();
  ui.Shot("signin");
  ui.CollectLog(/*network_ok=*/true);  // the browser logs the refused token's 401
  ui.SignIn(kAdminToken);
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#whoami").find("bootstrap-admin") != std::string::npos; }, 10s))
      << browser.Text();

  // The cluster at a glance: every node, the admin and its term.
  ASSERT_TRUE(ui.Open("#/cluster", "cluster")) << browser.Text();
  ASSERT_TRUE(Eventually([&] { return ui.Count("#nodes tr[data-node-id]") >= 3; }, 20s)) << browser.Text();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ui.Count("#nodes tr[data-node-id=\"" + ids[i] + "\"]"), 1) << i;
  ASSERT_TRUE(Eventually([&] { return ui.Attr("#admin-id", "data-node-id") == admin; }, 20s)) << browser.Text();
  EXPECT_FALSE(ui.TextOf("#admin-term").empty());
  EXPECT_GE(ui.Count("#leadership li"), 1);
  EXPECT_EQ(ui.Unnamed(), 0) << "a control without an accessible name";
  ui.Shot("cluster");

  // A press that spans a refresh still clicks the button pressed: held
  // down, the trigger's part does not draw again although its data
  // changes (tasks that make this node's agents busy: the part shows how
  // many are); released, the click opens the confirmation, and the new
  // drawing follows.
  const std::string pressed = "window.pressedButton";
  const auto busy_agents = [](const json& sample) {
    const json v = sample.contains("in_flight") ? sample["in_flight"] : json();
    return v.is_number() ? v.get<double>() : -1.0;  // null: not known
  };
  const json history = Api(c, home, "GET", "/api/v1/console/history");
  const int before_press = history.value("seq", 0);
  ASSERT_FALSE(history.value("samples", json::array()).empty()) << history.dump();
  const double busy_before = busy_agents(history["samples"].back());
  ASSERT_EQ(ui.Str("const b = document.querySelector('button[data-action=\"trigger-election\"]'); " + pressed +
                   " = b; if (!b) return ''; b.dispatchEvent(new PointerEvent('pointerdown', {bubbles: true})); "
                   "return 'pressed';"),
            "pressed")
      << browser.Text();
  for (int i = 0; i < 2; ++i) {
    const json busy = Api(c, home, "POST", "/api/v1/tasks",
                          {{"executor", "builtin"},
                           {"input", {{"op", "sleep"}, {"ms", 4000}}},
                           {"capabilities", {"cap" + std::to_string(home)}}});
    ASSERT_TRUE(busy.contains("id")) << busy.dump();
  }
  // The page long-polls the same history: once a sample shows another
  // number of busy agents than before the press, and a later one exists,
  // the page has had a refresh with changed data.
  ASSERT_TRUE(Eventually(
      [&] {
        const json h = Api(c, home, "GET", "/api/v1/console/history?after=" + std::to_string(before_press));
        int changed_seq = 0;
        for (const json& s : h.value("samples", json::array())) {
          if (changed_seq == 0 && busy_agents(s) != busy_before) changed_seq = s.value("seq", 0);
        }
        return changed_seq > 0 && h.value("seq", 0) > changed_seq;
      },
      15s));
  EXPECT_EQ(ui.Str("return String(" + pressed + ".isConnected);"), "true") << "the pressed button was drawn again";
  ui.Str("const b = " + pressed + "; b.dispatchEvent(new PointerEvent('pointerup', {bubbles: true})); b.click(); "
         "return '';");
  ASSERT_TRUE(ui.Wait("#confirm[open]", 5s)) << "the click reached the pressed button";
  ASSERT_TRUE(browser.Click("#confirm-cancel"));
  EXPECT_TRUE(Eventually([&] { return ui.Str("return String(" + pressed + ".isConnected);") == "false"; }, 10s))
      << "the part draws again once released";
  EXPECT_EQ(Api(c, home, "GET", "/api/election/status").value("admin_id", ""), admin) << "cancelled: no election";

  // A task submitted to the console's node runs on another node (only that
  // node has the capability); its page follows it live to success.
  const json task = Api(c, home, "POST", "/api/v1/tasks",
                        {{"executor", "builtin"},
                         {"input", {{"op", "sleep"}, {"ms", 3000}}},
                         {"project", "console-e2e"},
                         {"capabilities", {"cap" + std::to_string(worker)}}});
  ASSERT_TRUE(task.is_object() && task.contains("id")) << task.dump();
  const std::string task_id = task["id"];
  ASSERT_TRUE(ui.Open("#/tasks/" + task_id, "task")) << browser.Text();
  std::set<std::string> states_seen;
  ASSERT_TRUE(Eventually(
      [&] {
        states_seen.insert(ui.TextOf("#task-state"));
        return ui.TextOf("#task-state") == "succeeded";
      },
      45s))
      << browser.Text() << Api(c, home, "GET", "/api/v1/tasks/" + task_id).dump();
  EXPECT_GE(states_seen.size(), 2u) << "the page showed the task before it finished";
  bool on_worker = false;
  for (const json& e : browser.Execute("return [...document.querySelectorAll('#task-events li')].map(e => e.textContent);")) {
    on_worker = on_worker || e.get<std::string>().find(ids[worker]) != std::string::npos;
  }
  EXPECT_TRUE(on_worker) << "the events name the node that ran it: " << browser.Text();
  EXPECT_EQ(Api(c, home, "GET", "/api/v1/tasks/" + task_id)["attempts"].back()["node_id"], ids[worker]);
  ui.Shot("task");
  // The list, filtered to the project among the tasks of the load.
  ASSERT_TRUE(ui.Open("#/tasks", "tasks"));
  ASSERT_TRUE(browser.Type("#tf-project", "console-e2e"));
  ASSERT_TRUE(browser.Click("form[aria-label=\"Filters\"] button[type=\"submit\"]"));
  // (The unfiltered list may show the task too: wait for the filtered one.)
  ASSERT_TRUE(Eventually([&] { return ui.Count("tr[data-task-id]") == 1; }, 10s)) << "only the project's task";
  EXPECT_EQ(ui.Count("tr[data-task-id=\"" + task_id + "\"]"), 1) << browser.Text();
  ui.Shot("tasks");

  // An escalation resolved from the console: a failing task's room
  // escalates on a keyword; the operator answers with a new input.
  const json failing = Api(c, home, "POST", "/api/v1/tasks",
                           {{"executor", "builtin"},
                            {"input", {{"op", "fail"}, {"message", "missing header"}}},
                            {"capabilities", {"cap" + std::to_string(home)}},
                            {"max_attempts", 50}});
  ASSERT_TRUE(failing.is_object() && failing.contains("id")) << failing.dump();
  const std::string room = failing["id"];
  int st = 0;
  Api(c, home, "POST", "/api/v1/hmmm/rooms",
      {{"title", "the build fails"}, {"task_id", room}, {"seed", {{"type", "help_request"}, {"agent", "asker"}, {"body", "missing header"}}}},
      &st);
  ASSERT_EQ(st, 201);
  Api(c, home, "POST", "/api/v1/hmmm/rooms/" + room + "/messages",
      {{"type", "help_response"}, {"agent", "helper"}, {"body", "this needs manual intervention"}}, &st);
  ASSERT_EQ(st, 201);
  ASSERT_TRUE(Eventually([&] { return Api(c, home, "GET", "/api/v1/tasks/" + room).value("state", "") == "escalated"; }, 15s));
  ASSERT_TRUE(ui.Open("#/rooms", "rooms"));
  ASSERT_TRUE(ui.Wait("tr[data-room-id=\"" + room + "\"]")) << browser.Text();
  ui.Shot("rooms");
  ASSERT_TRUE(ui.Open("#/rooms/" + room, "room")) << browser.Text();
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#room-state") == "escalated"; }, 10s)) << browser.Text();
  EXPECT_GE(ui.Count("#room-messages li"), 2);
  ASSERT_TRUE(browser.Click("#resolve-kind option[value=\"retry\"]")) << browser.Text();
  ASSERT_TRUE(browser.Type("#resolve-input", R"({"op": "echo", "value": "vendored"})"));
  if (ui.Count("#resolve-text") > 0) {
    ASSERT_TRUE(browser.Type("#resolve-text", "vendor the header"));
  }
  ASSERT_TRUE(browser.Click("button[data-action=\"resolve\"]"));
  ASSERT_TRUE(ui.Wait("#confirm[open]", 5s)) << "a change asks first";
  ui.Shot("confirm");
  ASSERT_TRUE(browser.Click("#confirm-ok"));
  ASSERT_TRUE(Eventually([&] { return Api(c, home, "GET", "/api/v1/tasks/" + room).value("state", "") == "succeeded"; }, 30s))
      << browser.Text();
  EXPECT_EQ(Api(c, home, "GET", "/api/v1/tasks/" + room)["result"]["value"], "vendored");
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#room-state") == "resolved"; }, 15s)) << browser.Text();
  ui.Shot("room");

  // The agent pool scaled within its bounds, after a confirmation.
  ASSERT_TRUE(ui.Open("#/agents", "agents"));
  ASSERT_TRUE(browser.Type("#scale-agents", "3"));
  ASSERT_TRUE(browser.Click("button[data-action=\"scale\"]"));
  ASSERT_TRUE(ui.Wait("#confirm[open]", 5s));
  ASSERT_TRUE(browser.Click("#confirm-ok"));
  ASSERT_TRUE(Eventually([&] { return Api(c, home, "GET", "/api/v1/agents")["summary"]["size"] == 3; }, 10s));
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#scaling li").find("3 agents") != std::string::npos; }, 10s))
      << "the scaling event shows: " << browser.Text();
  ui.Shot("agents");

  // Every other view renders.
  for (const auto& [hash, view] : std::vector<std::pair<std::string, std::string>>{
           {"#/health", "health"}, {"#/dlq", "dlq"}, {"#/slurp", "slurp"}, {"#/ucxl", "ucxl"}, {"#/metrics", "metrics"}}) {
    ASSERT_TRUE(ui.Open(hash, view)) << view << ": " << browser.Text();
    EXPECT_EQ(ui.Unnamed(), 0) << view;
    ui.Shot(view);
  }
  ui.CollectLog();

  // A read-only user sees everything and can change nothing.
  ASSERT_TRUE(browser.Click("#signout"));
  ui.SignIn(kReaderToken);
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#whoami").find("reader") != std::string::npos; }, 10s));
  for (const auto& [hash, view] : std::vector<std::pair<std::string, std::string>>{
           {"#/cluster", "cluster"}, {"#/health", "health"}, {"#/tasks", "tasks"}, {"#/tasks/" + task_id, "task"},
           {"#/dlq", "dlq"}, {"#/agents", "agents"}, {"#/rooms/" + room, "room"}, {"#/slurp", "slurp"}}) {
    ASSERT_TRUE(ui.Open(hash, view)) << view << ": " << browser.Text();
    EXPECT_EQ(ui.Count("button[data-action]"), 0) << view << " shows a read-only user a control: " << browser.Text();
  }
  ui.Shot("read-only");

  // The admin is killed: the console shows the election and the new admin.
  ASSERT_TRUE(ui.Open("#/cluster", "cluster"));
  const int leaderships = ui.Count("#leadership li");
  ui.CollectLog();
  c.nodes[a]->Signal(SIGKILL);
  c.nodes[a]->Wait(10s);
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string shown = ui.Attr("#admin-id", "data-node-id");
        return !shown.empty() && shown != admin;
      },
      45s))
      << browser.Text();
  EXPECT_GT(ui.Count("#leadership li"), leaderships) << browser.Text();
  ui.Shot("election");

  // The console's own node restarts: the page notices, retries, reconnects
  // and says the node restarted.
  c.nodes[home]->Signal(SIGTERM);
  ASSERT_TRUE(Eventually([&] { return ui.Attr("#conn-status", "data-state") == "retrying"; }, 30s)) << browser.Text();
  c.nodes[home]->Wait(30s);
  ui.Shot("reconnecting");
  c.StartNode(home, true, {"--set", "node.capabilities=cap" + std::to_string(home)});
  ASSERT_TRUE(Eventually([&] { return ui.Attr("#conn-status", "data-state") == "restarted"; }, 60s))
      << browser.Text() << ReadFile(c.logs[home]);
  ASSERT_TRUE(ui.Wait("#view[data-ready]", 20s));
  ui.Shot("restarted");
  ui.CollectLog(/*network_ok=*/true);

  // Readable on a phone: no sideways scrolling of the page.
  browser.Resize(390, 844);
  ASSERT_TRUE(ui.Open("#/tasks", "tasks"));
  const json widths = browser.Execute("return [document.documentElement.scrollWidth, window.innerWidth];");
  EXPECT_LE(widths[0].get<int>(), widths[1].get<int>() + 1) << widths.dump();
  ui.Shot("tasks-phone");
  ASSERT_TRUE(ui.Open("#/cluster", "cluster"));
  ui.Shot("cluster-phone");

  // Keyboard: the skip link comes first; from the first view link, two
  // Tabs and Enter open the tasks.
  EXPECT_EQ(ui.Str("const f = document.querySelector('a[href], button, input, select, textarea, "
                   "[tabindex]:not([tabindex=\"-1\"])'); return f ? f.id : '';"),
            "skip");
  browser.Execute("document.querySelector('#nav a').focus();");
  browser.Keys("\uE004\uE004\uE007");
  EXPECT_TRUE(ui.Wait("#view[data-view=\"tasks\"][data-ready]", 10s)) << "Tab, Tab, Enter: " << browser.Text();

  ui.CollectLog();
  EXPECT_TRUE(ui.errors.empty()) << "browser console errors: " << ui.errors.dump(1);
}

// A user of the identity provider signs in through it and gets what the
// provider's role allows: an operator cancels tasks but does not resolve
// rooms (hmmm:admin is not an operator's).
TEST_F(ConsoleEndToEnd, SignInThroughTheIdentityProvider) {
  WebDriver& browser = *browser_;
  testing::LocalIdentityProvider idp;
  c.http = {testing::FreePort()};
  std::vector<std::string> flags = idp.NodeFlags();
  for (auto& f : flags) {
    if (const auto at = f.find("{port}"); at != std::string::npos) f.replace(at, 6, std::to_string(c.http[0]));
  }
  c.StartNode(0, false, flags);
  ASSERT_TRUE(Eventually([&] {
    const json s = c.Get(0, "/auth/status");
    return s.is_object() && s.value("sign_in_available", false);
  }, 30s))
      << ReadFile(c.logs[0]);
  Console ui{browser, c.Url(0)};
  browser.Resize(1280, 800);
  browser.Navigate(ui.url + "/ui/");
  ASSERT_TRUE(ui.Wait("#signin-oidc")) << browser.Text();
  ASSERT_TRUE(browser.Click("#signin-oidc"));
  ASSERT_TRUE(Eventually([&] { return ui.TextOf("#whoami").find("dana") != std::string::npos; }, 20s))
      << browser.CurrentUrl() << "\n" << browser.Text();
  const json me = browser.ExecuteAsync(
      "const done = arguments[arguments.length - 1];"
      "fetch('/api/v1/me').then(r => r.json()).then(done, e => done(String(e)));");
  EXPECT_EQ(me.value("method", ""), "session") << me.dump();
  const json task = Api(c, 0, "POST", "/api/v1/tasks", {{"executor", "builtin"}, {"input", {{"op", "sleep"}, {"ms", 60000}}}});
  ASSERT_TRUE(task.is_object() && task.contains("id")) << task.dump();
  ASSERT_TRUE(ui.Open("#/tasks/" + task["id"].get<std::string>(), "task"));
  ASSERT_TRUE(ui.Wait("button[data-action=\"cancel\"]")) << "an operator may cancel: " << browser.Text();
  ASSERT_TRUE(browser.Click("button[data-action=\"cancel\"]"));
  ASSERT_TRUE(ui.Wait("#confirm[open]", 5s));
  ASSERT_TRUE(browser.Click("#confirm-ok"));
  ASSERT_TRUE(Eventually([&] {
    const std::string s = Api(c, 0, "GET", "/api/v1/tasks/" + task["id"].get<std::string>()).value("state", "");
    return s == "cancelled" || s == "failed";
  }, 20s)) << "the cancel went out with the session's CSRF token";
  ui.Shot("operator-signed-in");
  ASSERT_TRUE(browser.Click("#signout"));
  ASSERT_TRUE(ui.Wait("#signin-main:not([hidden]) #token-input", 10s));
  ui.CollectLog();
  EXPECT_TRUE(ui.errors.empty()) << "browser console errors: " << ui.errors.dump(1);
}

// Page weight and first render of the console, as BENCHMARKS.md records
// them: bytes transferred for the page and its files, first contentful
// paint, and the time until the cluster view shows its data.
TEST_F(ConsoleEndToEnd, PageWeightAndFirstRender) {
  WebDriver& browser = *browser_;
  c.StartNode(0, false);
  ASSERT_TRUE(Eventually([&] { return c.Get(0, "/health/ready").is_object(); }, 30s)) << ReadFile(c.logs[0]);
  Console ui{browser, c.Url(0)};
  browser.Resize(1280, 800);
  browser.Navigate(ui.url + "/ui/");
  ui.SignIn(kAdminToken);
  ASSERT_TRUE(ui.Open("#/cluster", "cluster"));
  const int loads = std::getenv("BZZZ_CONSOLE_LOADS") ? std::atoi(std::getenv("BZZZ_CONSOLE_LOADS")) : 3;
  std::vector<double> paint, ready;
  double bytes = 0, first_visit = 0, transferred = 0;
  for (int i = 0; i < loads; ++i) {
    if (i == 0) browser.ClearCache();  // the first load is a first visit; the others revalidate (304)
    browser.Navigate("about:blank");  // then a fresh page (the token is kept by the tab)
    browser.Navigate(ui.url + "/ui/#/cluster");
    ASSERT_TRUE(ui.Wait("#view[data-view=\"cluster\"][data-ready]"));
    const json m = browser.ExecuteAsync(R"(
      const done = arguments[arguments.length - 1];
      const nav = performance.getEntriesByType('navigation')[0];
      const files = performance.getEntriesByType('resource').filter(r => r.name.includes('/ui/'));
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      const mark = performance.getEntriesByName('bzzz:first-data')[0];
      done({bytes: nav.encodedBodySize + files.reduce((s, r) => s + r.encodedBodySize, 0),
            transferred: nav.transferSize + files.reduce((s, r) => s + r.transferSize, 0),
            files: files.length, fcp: fcp ? fcp.startTime : -1, ready: mark ? mark.startTime : -1});)");
    ASSERT_TRUE(m.is_object()) << m.dump();
    bytes = m["bytes"].get<double>();
    transferred = m["transferred"].get<double>();
    if (i == 0) first_visit = transferred;
    EXPECT_GE(m["files"].get<int>(), 2) << m.dump();
    paint.push_back(m["fcp"].get<double>());
    ready.push_back(m["ready"].get<double>());
  }
  std::sort(paint.begin(), paint.end());
  std::sort(ready.begin(), ready.end());
  EXPECT_GT(paint[paint.size() / 2], 0) << "no first contentful paint";
  EXPECT_GT(ready[ready.size() / 2], 0) << "no bzzz:first-data mark";
  EXPECT_GT(first_visit, bytes) << "a first visit transfers every file";
  EXPECT_LT(transferred, bytes / 10) << "a revisit revalidates (304) instead of transferring the files again";
  std::printf("console: page weight %.0f bytes (page and files, uncompressed); transferred %.0f bytes on a first visit, "
              "%.0f on a revisit; first contentful paint median %.1f ms, cluster data shown median %.1f ms (%d loads)\n",
              bytes, first_visit, transferred, paint[paint.size() / 2], ready[ready.size() / 2], loads);
  ui.CollectLog();
  EXPECT_TRUE(ui.errors.empty()) << "browser console errors: " << ui.errors.dump(1);
}

}  // namespace
}  // namespace bzzz::e2e
