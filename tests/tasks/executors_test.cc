// Executors: builtin ops, the command sandbox (escape attempts: network,
// files outside the work directory, memory and fork bombs, time and output
// limits), the http webhook executor and the llm reasoning loop against a
// small local server speaking the Ollama and OpenAI chat protocols.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "executors/executors.h"
#include "executors/llm_client.h"
#include "support/support.h"

namespace bzzz::executors {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using testing::MiniServer;

class ExecutorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.node.data_dir = dir_.File("data");
    config_.agents.sandbox.memory_limit_mb = 256;
    config_.agents.sandbox.max_output_bytes = 4096;
    sandbox_ = std::make_shared<Sandbox>(config_.agents.sandbox, config_.node.data_dir);
    if (!sandbox_->Probe().ok()) GTEST_SKIP() << "bubblewrap cannot run here: " << sandbox_->Probe().ToString();
  }

  ExecResult Run(Executor& e, const std::string& input, std::chrono::milliseconds timeout = 10s,
                 const std::atomic<bool>* cancel = nullptr) {
    EXPECT_TRUE(e.Validate(input).ok()) << e.Validate(input).ToString();
    ExecContext ctx;
    ctx.task_id = "t-test";
    ctx.attempt = 1;
    ctx.input = input;
    ctx.deadline = std::chrono::steady_clock::now() + timeout;
    ctx.cancel = cancel;
    return e.Execute(ctx);
  }

  ExecResult Sh(const std::string& script, std::chrono::milliseconds timeout = 10s, json extra = json::object()) {
    auto e = MakeCommandExecutor(sandbox_);
    extra["argv"] = {"/bin/sh", "-c", script};
    return Run(*e, extra.dump(), timeout);
  }

  testing::TempDir dir_;
  config::Config config_;
  std::shared_ptr<Sandbox> sandbox_;
};

TEST(BuiltinTest, EchoSleepFailAndValidation) {
  auto e = MakeBuiltinExecutor();
  ExecContext ctx;
  ctx.deadline = std::chrono::steady_clock::now() + 5s;
  ctx.input = R"({"op":"echo","value":{"a":1}})";
  EXPECT_EQ(e->Execute(ctx).result, R"({"value":{"a":1}})");
  ctx.input = R"({"op":"sleep","ms":20})";
  EXPECT_EQ(e->Execute(ctx).outcome, ExecResult::Outcome::kSucceeded);
  ctx.input = R"({"op":"fail","message":"x"})";
  auto f = e->Execute(ctx);
  EXPECT_EQ(f.outcome, ExecResult::Outcome::kFailed);
  EXPECT_EQ(f.error, "x");
  ctx.input = R"({"op":"sleep","ms":60000})";
  ctx.deadline = std::chrono::steady_clock::now() + 50ms;
  EXPECT_EQ(e->Execute(ctx).outcome, ExecResult::Outcome::kTimedOut);
  for (const char* bad : {"[]", "{}", R"({"op":1})", R"({"op":"sleep"})", R"({"op":"sleep","ms":-1})",
                          R"({"op":"nope"})", "not json", R"({"op":"fail","message":3})"}) {
    EXPECT_EQ(e->Validate(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ExecutorsTest, CommandRunsAndReportsExitCodeAndOutput) {
  auto ok = Sh("echo out; echo err >&2; cat");
  ASSERT_EQ(ok.outcome, ExecResult::Outcome::kSucceeded) << ok.error;
  json r = json::parse(ok.result);
  EXPECT_EQ(r["stdout"], "out\n");
  EXPECT_EQ(r["stderr"], "err\n");
  EXPECT_EQ(r["exit_code"], 0);
  auto bad = Sh("echo no >&2; exit 3");
  EXPECT_EQ(bad.outcome, ExecResult::Outcome::kFailed);
  EXPECT_NE(bad.error.find("exit code 3"), std::string::npos);
  auto in = Sh("tr a-z A-Z", 10s, {{"stdin", "hello"}, {"env", {{"GREETING", "hi"}}}});
  EXPECT_EQ(json::parse(in.result)["stdout"], "HELLO");
  auto env = Sh("echo $GREETING; echo $HOME; id -u; pwd", 10s, {{"env", {{"GREETING", "hi"}}}});
  EXPECT_EQ(json::parse(env.result)["stdout"], "hi\n/work\n65534\n/work\n");
}

TEST_F(ExecutorsTest, SandboxHasNoNetwork) {
  // A server on the host's loopback is out of reach from inside.
  MiniServer server([](const std::string&, const std::string&, const std::string&) { return std::make_pair(200, std::string("{}")); });
  auto r = Sh("python3 -c \"import socket; s=socket.create_connection(('127.0.0.1', " + std::to_string(server.port()) +
              "), 2); print('CONNECTED')\"");
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kFailed);
  EXPECT_EQ(json::parse(r.result)["stdout"], "");
  EXPECT_TRUE(server.requests().empty());
  // Asking for network is refused unless the node allows it.
  auto e = MakeCommandExecutor(sandbox_);
  EXPECT_EQ(e->Validate(R"({"argv":["true"],"network":true})").code(), StatusCode::kInvalidArgument);
}

TEST_F(ExecutorsTest, SandboxSeesNoHostFilesAndCannotWriteOutside) {
  const std::string secret = dir_.Write("secret.txt", "TOP-SECRET");
  auto r = Sh("cat " + secret + "; cat /etc/shadow; cat /etc/passwd; ls /root; touch /usr/evil; touch /etc/evil; "
              "echo kept > /work/f; ls /work");
  json out = json::parse(r.result);
  EXPECT_EQ(out["stdout"].get<std::string>().find("TOP-SECRET"), std::string::npos);
  EXPECT_EQ(out["stdout"].get<std::string>().find("root:"), std::string::npos);
  EXPECT_NE(out["stderr"].get<std::string>().find("Read-only file system"), std::string::npos);
  EXPECT_NE(out["stdout"].get<std::string>().find("f\n"), std::string::npos);
  EXPECT_FALSE(std::ifstream("/usr/evil").good());
  // The work directory is private and removed afterwards.
  auto again = Sh("ls /work | wc -l");
  EXPECT_EQ(json::parse(again.result)["stdout"], "0\n");
}

TEST_F(ExecutorsTest, MemoryBombIsStoppedByTheLimit) {
  auto r = Sh("python3 -c \"x = bytearray(2 * 1024 * 1024 * 1024); print('ALLOCATED')\"", 20s, {{"memory_mb", 128}});
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kFailed);
  json out = json::parse(r.result);
  EXPECT_EQ(out["stdout"], "");
  EXPECT_NE(out["stderr"].get<std::string>().find("MemoryError"), std::string::npos) << out.dump();
}

TEST_F(ExecutorsTest, ProcessLimitHoldsAForkBombBackAsRoot) {
  if (!sandbox_->PerTaskUids()) GTEST_SKIP() << "not root: the node's own uid limits apply";
  // Far below the limit: fine; a loop forking more than max_processes fails.
  config_.agents.sandbox.max_processes = 32;
  sandbox_ = std::make_shared<Sandbox>(config_.agents.sandbox, config_.node.data_dir);
  auto r = Sh("for i in $(seq 1 100); do sleep 5 & done; wait", 3s);
  json out = json::parse(r.result);
  EXPECT_NE(out["stderr"].get<std::string>().find("fork"), std::string::npos) << out.dump();
}

// Each running task has its own uid and so its own process limit: a task
// that forks to its limit does not stop another from starting.
TEST_F(ExecutorsTest, OneTasksForkBombDoesNotStarveAnother) {
  if (!sandbox_->PerTaskUids()) GTEST_SKIP() << "not root: every task runs as the node's uid";
  config_.agents.sandbox.max_processes = 32;
  sandbox_ = std::make_shared<Sandbox>(config_.agents.sandbox, config_.node.data_dir);
  std::atomic<bool> bombing{false};
  std::thread bomb([&] {
    bombing = true;
    // The subshell forks to the limit and dies; its sleeps hold the limit
    // while the task lives on without forking.
    auto r = Sh("(for i in $(seq 1 100); do sleep 4 & done); exec sleep 4", 3s);
    json out = json::parse(r.result);
    EXPECT_NE(out["stderr"].get<std::string>().find("fork"), std::string::npos) << out.dump();
  });
  while (!bombing) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(1s);  // the bomb is at its limit
  EXPECT_EQ(Sandbox::UidsInUse(), 1u);
  auto other = Sh("echo still here");
  EXPECT_EQ(other.outcome, ExecResult::Outcome::kSucceeded) << other.result;
  EXPECT_EQ(json::parse(other.result)["stdout"], "still here\n") << other.result;
  bomb.join();
  EXPECT_EQ(Sandbox::UidsInUse(), 0u);
}

// A task cannot see another running task's work directory or processes:
// each has its own /work, mount and PID namespace (and, as root, its own
// uid owning a 0700 directory).
TEST_F(ExecutorsTest, TaskCannotReachAnotherTasksWorkDirectory) {
  std::atomic<bool> written{false};
  std::thread first([&] {
    auto r = Sh("echo secret > /work/marker-of-first && touch /tmp/marker-tmp && sleep 2", 10s);
    EXPECT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.error;
  });
  ASSERT_TRUE(testing::Eventually(
      [&] {
        std::error_code ec;
        for (const auto& e : std::filesystem::recursive_directory_iterator(
                 std::filesystem::path(config_.node.data_dir).parent_path(), ec)) {
          if (e.path().filename() == "marker-of-first") return true;
        }
        return false;
      },
      5s));
  auto second = Sh("find / -name 'marker-*' 2>/dev/null; ls /proc | grep -c '^[0-9]'; cat /work/marker-of-first 2>/dev/null");
  first.join();
  ASSERT_EQ(second.outcome, ExecResult::Outcome::kFailed) << second.result;  // cat fails
  const std::string out = json::parse(second.result)["stdout"];
  EXPECT_EQ(out.find("marker"), std::string::npos) << out;
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
  // Only its own processes: bwrap's init, the shell, ls and grep at most.
  EXPECT_LE(std::stoi(out), 5) << out;
}

// Nothing the node has open reaches a task: not its listeners, sockets or
// files, close-on-exec or not; and not its environment.
TEST_F(ExecutorsTest, TaskSeesNoDescriptorOrEnvironmentOfTheNode) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);  // deliberately not close-on-exec
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  const std::string secret_path = dir_.File("node-secret");
  { std::ofstream(secret_path) << "TOP-SECRET"; }
  const int file = open(secret_path.c_str(), O_RDONLY);
  ASSERT_GE(file, 0);
  setenv("BZZZ_ADMIN_TOKEN", "node-admin-token-never-seen", 1);
  auto r = Sh("for f in /proc/self/fd/*; do echo \"$f $(readlink $f)\"; done; env");
  unsetenv("BZZZ_ADMIN_TOKEN");
  close(listener);
  close(udp);
  close(file);
  ASSERT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.result;
  const std::string out = json::parse(r.result)["stdout"];
  EXPECT_EQ(out.find("socket:"), std::string::npos) << out;
  EXPECT_EQ(out.find("node-secret"), std::string::npos) << out;
  EXPECT_EQ(out.find("node-admin-token"), std::string::npos) << out;
  // 0, 1, 2 and the directory being listed: nothing else.
  int fds = 0;
  for (std::size_t at = out.find("/proc/self/fd/"); at != std::string::npos; at = out.find("/proc/self/fd/", at + 1)) {
    ++fds;
  }
  EXPECT_LE(fds, 4) << out;
}

// secret://NAME in env is resolved when the attempt runs: from
// BZZZ_SECRET_NAME, else from agents.secrets_file, which others must not be
// able to read; an undefined one fails the attempt and says which.
TEST_F(ExecutorsTest, SecretReferencesAreResolvedWhenTheAttemptRuns) {
  setenv("BZZZ_SECRET_API_KEY", "from-the-environment", 1);
  const std::string file = dir_.Write("secrets.json", R"({"DB_PASSWORD":"from-the-file"})");
  chmod(file.c_str(), 0600);
  auto secrets = std::make_shared<const SecretStore>(file);
  auto e = MakeCommandExecutor(sandbox_, secrets);
  auto r = Run(*e, json{{"argv", {"/bin/sh", "-c", "echo $A $B $C"}},
                        {"env", {{"A", "secret://API_KEY"}, {"B", "secret://DB_PASSWORD"}, {"C", "plain"}}}}
                       .dump());
  unsetenv("BZZZ_SECRET_API_KEY");
  ASSERT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.error;
  EXPECT_EQ(json::parse(r.result)["stdout"], "from-the-environment from-the-file plain\n");
  auto missing = Run(*e, json{{"argv", {"true"}}, {"env", {{"A", "secret://NOPE"}}}}.dump());
  EXPECT_EQ(missing.outcome, ExecResult::Outcome::kFailed);
  EXPECT_NE(missing.error.find("secret NOPE is not defined"), std::string::npos) << missing.error;
  chmod(file.c_str(), 0644);
  EXPECT_EQ(secrets->Resolve("secret://DB_PASSWORD").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(secrets->Resolve("secret://bad name").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*secrets->Resolve("not a reference"), "not a reference");
}

TEST_F(ExecutorsTest, ForkBombAndEndlessLoopsStopAtTheTimeout) {
  const auto t0 = std::chrono::steady_clock::now();
  // `exec sleep`: the shell becomes the sleep without a fork. A `sleep`
  // it had to fork could fail once the bomb holds every pid the sandbox
  // allows, and the shell would exit at once (a clean-clone CI run saw it).
  auto r = Sh("bomb() { bomb | bomb & }; bomb; exec sleep 100", 1500ms);
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kTimedOut);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  auto loop = Sh("exec >&- 2>&-; while :; do :; done", 500ms);
  EXPECT_EQ(loop.outcome, ExecResult::Outcome::kTimedOut);
}

// A program that writes bytes that are not UTF-8 (binary output, a broken
// locale) succeeds like any other: they become U+FFFD in the JSON result,
// never an exception ("executor crashed") or a task that cannot be stored.
TEST_F(ExecutorsTest, OutputThatIsNotUtf8IsKeptAsValidJson) {
  auto r = Sh("printf 'ok \\377\\376 done'; printf '\\300 err' >&2; exit 3");
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kFailed) << r.error;
  EXPECT_EQ(r.error.find("crashed"), std::string::npos) << r.error;
  const json out = json::parse(r.result);
  EXPECT_EQ(out["exit_code"], 3);
  EXPECT_NE(out["stdout"].get<std::string>().find("done"), std::string::npos);
  EXPECT_NE(out["stdout"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
}

TEST_F(ExecutorsTest, OutputIsTruncatedAtTheLimit) {
  auto r = Sh("head -c 100000 /dev/zero | tr '\\0' x");
  json out = json::parse(r.result);
  EXPECT_EQ(out["stdout"].get<std::string>().size(), 4096u);
  EXPECT_TRUE(out["stdout_truncated"].get<bool>());
}

TEST_F(ExecutorsTest, CancelStopsTheCommand) {
  std::atomic<bool> cancel{false};
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto e = MakeCommandExecutor(sandbox_);
  auto r = Run(*e, R"({"argv":["sleep","30"]})", 30s, &cancel);
  t.join();
  EXPECT_EQ(r.outcome, ExecResult::Outcome::kCancelled);
}

TEST_F(ExecutorsTest, CommandInputValidation) {
  auto e = MakeCommandExecutor(sandbox_);
  for (const char* bad : {R"({})", R"({"argv":[]})", R"({"argv":"ls"})", R"({"argv":[1]})", R"({"argv":[""]})",
                          R"({"argv":["ls"],"env":{"A":1}})", R"({"argv":["ls"],"memory_mb":1})",
                          R"({"argv":["ls"],"network":"yes"})", "[]"}) {
    EXPECT_EQ(e->Validate(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ExecutorsTest, HttpExecutorPostsTheTaskToAWebhook) {
  MiniServer server([](const std::string&, const std::string& path, const std::string& body) {
    json in = json::parse(body);
    if (path == "/fail") return std::make_pair(500, std::string(R"({"error":"nope"})"));
    return std::make_pair(200, json{{"got", in["input"]}, {"task", in["task_id"]}}.dump());
  });
  config::WebhookConfig webhooks;
  webhooks.allow = {"127.0.0.1"};  // the test's server is on loopback
  auto made = MakeHttpExecutor(webhooks);
  ASSERT_TRUE(made.ok());
  auto e = std::move(made).value();
  auto ok = Run(*e, json{{"url", server.url() + "/hook"}, {"body", {{"x", 1}}}}.dump());
  ASSERT_EQ(ok.outcome, ExecResult::Outcome::kSucceeded) << ok.error;
  json r = json::parse(ok.result);
  EXPECT_EQ(r["status"], 200);
  EXPECT_EQ(r["body"]["got"]["x"], 1);
  EXPECT_EQ(r["body"]["task"], "t-test");
  auto bad = Run(*e, json{{"url", server.url() + "/fail"}}.dump());
  EXPECT_EQ(bad.outcome, ExecResult::Outcome::kFailed);
  EXPECT_EQ(e->Validate(R"({"url":"ftp://x"})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Validate(R"({"url":"http://x","headers":{"A\r\nB":"c"}})").code(), StatusCode::kInvalidArgument);
}

// A task cannot make the node reach what only the node can reach: loopback
// (by address or by a name that resolves there), link-local (cloud
// metadata), private ranges, IPv4-mapped forms and the node's own
// addresses, unless agents.http.allow names them; non-http schemes are
// refused; an answer longer than the cap fails the attempt.
TEST_F(ExecutorsTest, HttpExecutorRefusesInternalAddresses) {
  std::atomic<int> hits{0};
  MiniServer server([&](const std::string&, const std::string&, const std::string&) {
    ++hits;
    return std::make_pair(200, std::string(2000, 'x'));
  });
  auto made = MakeHttpExecutor(config::WebhookConfig{});
  ASSERT_TRUE(made.ok());
  auto e = std::move(made).value();
  const std::string port = std::to_string(server.port());
  for (const std::string& url : std::vector<std::string>{"http://127.0.0.1:" + port + "/", "http://localhost:" + port + "/",
                                "http://[::ffff:127.0.0.1]:" + port + "/", "http://127.1:" + port + "/",
                                "http://0x7f000001:" + port + "/", "http://169.254.169.254/latest/meta-data/",
                                "http://10.1.2.3/", "http://192.168.0.1/", "http://[::1]:" + port + "/"}) {
    auto r = Run(*e, json{{"url", url}}.dump(), 5s);
    EXPECT_EQ(r.outcome, ExecResult::Outcome::kFailed) << url;
    EXPECT_NE(r.error.find("refused to connect"), std::string::npos) << url << ": " << r.error;
  }
  EXPECT_EQ(hits.load(), 0);

  // Allowed by CIDR or by host name; and the answer cap holds.
  for (const std::vector<std::string>& allow : {std::vector<std::string>{"127.0.0.0/8"}, {"localhost"}}) {
    config::WebhookConfig webhooks;
    webhooks.allow = allow;
    webhooks.max_response_bytes = 1024;
    auto allowed = MakeHttpExecutor(webhooks);
    ASSERT_TRUE(allowed.ok());
    const std::string host = allow[0] == "localhost" ? "localhost" : "127.0.0.1";
    auto r = Run(*allowed.value(), json{{"url", "http://" + host + ":" + port + "/"}}.dump(), 5s);
    EXPECT_EQ(r.outcome, ExecResult::Outcome::kFailed);
    EXPECT_NE(r.error.find("longer than 1024"), std::string::npos) << r.error;
  }
  EXPECT_EQ(hits.load(), 2);
  config::WebhookConfig bad;
  bad.allow = {"not a host"};
  EXPECT_EQ(MakeHttpExecutor(bad).status().code(), StatusCode::kInvalidArgument);
}

// A scripted model: first asks to write and read a file in the sandbox, then
// completes once it has seen the command's output.
std::pair<int, std::string> ScriptedModel(bool openai, const std::string& path, const std::string& body) {
  if (path == "/api/tags") return {200, R"({"models":[{"name":"other"},{"name":"llama3"}]})"};
  if (path == "/v1/models") return {200, R"({"object":"list","data":[{"id":"gpt-test"},{"id":"llama3"}]})"};
  json req = json::parse(body);
  const auto& messages = req["messages"];
  const std::string last = messages.back()["content"];
  std::string reply;
  if (messages.size() <= 2) {
    reply = "I will check.\n```sh\necho hello > note.txt && cat note.txt\n```";
  } else if (last.find("hello") != std::string::npos && last.find("exit code 0") != std::string::npos) {
    reply = "TASK_COMPLETE the note says hello (model " + req["model"].get<std::string>() + ")";
  } else {
    reply = "```sh\nfalse\n```";
  }
  if (openai) {
    return {200, json{{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply}}}}}}}.dump()};
  }
  return {200, json{{"model", req["model"]}, {"message", {{"role", "assistant"}, {"content", reply}}}, {"done", true}}.dump()};
}

TEST_F(ExecutorsTest, LlmLoopAgainstOllamaAndOpenAiCompatibleServers) {
  for (bool openai : {false, true}) {
    MiniServer server([openai](const std::string&, const std::string& path, const std::string& body) {
      return ScriptedModel(openai, path, body);
    });
    config::LlmConfig llm;
    llm.endpoint = server.url();
    llm.api = openai ? "openai" : "ollama";
    llm.models = {"missing", "llama3"};
    auto e = MakeLlmExecutor(llm, sandbox_);
    auto r = Run(*e, R"({"prompt":"write a note and read it back"})");
    ASSERT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.error;
    json out = json::parse(r.result);
    EXPECT_EQ(out["iterations"], 2);
    EXPECT_EQ(out["model"], "llama3");  // configured list ∩ offered
    EXPECT_EQ(out["answer"], "the note says hello (model llama3)");
    const auto reqs = server.requests();
    EXPECT_NE(reqs[1].find(openai ? "POST /v1/chat/completions" : "POST /api/chat"), std::string::npos);
    // A model the server does not offer is an error; max_iterations bounds the loop.
    auto missing = Run(*e, R"({"prompt":"x","model":"nope"})");
    EXPECT_EQ(missing.outcome, ExecResult::Outcome::kFailed);
    auto bounded = Run(*e, R"({"prompt":"x","max_iterations":1})");
    EXPECT_EQ(bounded.outcome, ExecResult::Outcome::kFailed);
    EXPECT_NE(bounded.error.find("after 1 iterations"), std::string::npos);
  }
}

// A model that runs a failing command until other agents' answers are in
// its prompt, then completes with the hints it read there; a helper's
// prompt is answered with a hint naming the server.
std::pair<int, std::string> StuckModel(bool openai, const std::string& path, const std::string& body,
                                       const std::string& first_reply = "```sh\nfalse\n```") {
  if (path == "/api/tags") return {200, R"({"models":[{"name":"llama3"}]})"};
  if (path == "/v1/models") return {200, R"({"object":"list","data":[{"id":"llama3"}]})"};
  json req = json::parse(body);
  std::string prompt;
  for (const auto& m : req["messages"]) prompt += m["content"].get<std::string>() + "\n";
  std::string reply;
  if (prompt.find("Another agent working on a task") != std::string::npos) {
    reply = "Try this:\n```sh\ntrue\n```\nHINT-" + std::string(openai ? "openai" : "ollama");
  } else if (const auto at = prompt.find("Their answers:"); at != std::string::npos) {
    std::string hints;
    for (auto h = prompt.find("HINT-", at); h != std::string::npos; h = prompt.find("HINT-", h + 1)) {
      hints += " " + prompt.substr(h, prompt.find_first_of(" \n", h) - h);
    }
    reply = "TASK_COMPLETE fixed with" + hints;
  } else {
    reply = first_reply;
  }
  if (openai) {
    return {200, json{{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply}}}}}}}.dump()};
  }
  return {200, json{{"model", req["model"]}, {"message", {{"role", "assistant"}, {"content", reply}}}, {"done", true}}.dump()};
}

// The loop is stuck when the same command keeps failing: it asks for help
// once, with the task, the reason and its last steps, and reads the answers
// into its next prompt; the helper's answer is produced by a model call
// (AnswerHelpRequest) on either protocol.
TEST_F(ExecutorsTest, AStuckLlmLoopAsksForHelpAndReadsTheAnswers) {
  for (bool openai : {false, true}) {
    MiniServer server([openai](const std::string&, const std::string& path, const std::string& body) {
      return StuckModel(openai, path, body);
    });
    config::LlmConfig llm;
    llm.endpoint = server.url();
    llm.api = openai ? "openai" : "ollama";
    llm.stuck_repeats = 3;
    auto e = MakeLlmExecutor(llm, sandbox_);
    LlmClient helper(llm);
    std::vector<HelpRequest> asked;
    ExecContext ctx;
    ctx.task_id = "t-stuck";
    ctx.attempt = 1;
    ctx.input = R"({"prompt":"make the build pass","max_iterations":8})";
    ctx.deadline = std::chrono::steady_clock::now() + 20s;
    ctx.ask_help = [&](const HelpRequest& r) -> Result<std::vector<HelpAnswer>> {
      asked.push_back(r);
      auto a = AnswerHelpRequest(helper, r.question, r.until);
      if (!a.ok()) return a.status();
      return std::vector<HelpAnswer>{{"llm-helper", "node-b", *a}, {"llm-helper", "node-c", "no idea"}};
    };
    auto r = e->Execute(ctx);
    ASSERT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.error;
    json out = json::parse(r.result);
    EXPECT_EQ(out["answer"], std::string("fixed with HINT-") + (openai ? "openai" : "ollama"));
    EXPECT_EQ(out["iterations"], 4);  // three failures, then the answer read
    EXPECT_EQ(out["help_requests"], 1);
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_NE(asked[0].reason.find("the same command failed 3 times: false"), std::string::npos) << asked[0].reason;
    EXPECT_NE(asked[0].question.find("Task: make the build pass"), std::string::npos);
    EXPECT_NE(asked[0].question.find("$ false\nexit code 1"), std::string::npos) << asked[0].question;
    EXPECT_EQ(out["transcript"][2]["help"]["answers"], 2);
  }
}

// The model may say it is stuck (NEED_HELP); a task may refuse help; a loop
// with no one to ask goes on alone; max_help_requests bounds the asking.
TEST_F(ExecutorsTest, HelpIsAskedWhenTheModelSaysSoAndOnlyWhenAllowed) {
  MiniServer server([](const std::string&, const std::string& path, const std::string& body) {
    return StuckModel(false, path, body, "I do not know which file to edit. NEED_HELP where is the config?");
  });
  config::LlmConfig llm;
  llm.endpoint = server.url();
  llm.max_help_requests = 1;
  auto e = MakeLlmExecutor(llm, sandbox_);
  int asked = 0;
  std::string question;
  ExecContext ctx;
  ctx.task_id = "t-ask";
  ctx.attempt = 1;
  ctx.deadline = std::chrono::steady_clock::now() + 20s;
  ctx.ask_help = [&](const HelpRequest& r) -> Result<std::vector<HelpAnswer>> {
    ++asked;
    question = r.question;
    return std::vector<HelpAnswer>{{"llm-helper", "node-b", "it is in /work/etc HINT-b"}};
  };
  ctx.input = R"({"prompt":"configure it","max_iterations":3})";
  auto r = e->Execute(ctx);
  ASSERT_EQ(r.outcome, ExecResult::Outcome::kSucceeded) << r.error;
  EXPECT_EQ(json::parse(r.result)["answer"], "fixed with HINT-b");
  EXPECT_EQ(asked, 1);
  EXPECT_NE(question.find("The agent asks: where is the config?"), std::string::npos) << question;

  // "help": false: never asked, the loop ends at max_iterations.
  ctx.input = R"({"prompt":"configure it","max_iterations":3,"help":false})";
  auto alone = e->Execute(ctx);
  EXPECT_EQ(alone.outcome, ExecResult::Outcome::kFailed);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(json::parse(alone.result)["help_requests"], 0);
  // No one to ask (an error): the loop goes on by itself.
  ctx.ask_help = [&](const HelpRequest&) -> Result<std::vector<HelpAnswer>> {
    ++asked;
    return FailedPrecondition("the room of task t-ask is closed");
  };
  ctx.input = R"({"prompt":"configure it","max_iterations":3})";
  auto refused = e->Execute(ctx);
  EXPECT_EQ(refused.outcome, ExecResult::Outcome::kFailed);
  EXPECT_EQ(asked, 2) << "max_help_requests bounds the asking";
  EXPECT_EQ(e->Validate(R"({"prompt":"x","help":"yes"})").code(), StatusCode::kInvalidArgument);
}

TEST(LlmParsingTest, StuckDetection) {
  StuckDetector d(/*no_progress_iterations=*/3, /*repeated_failures=*/2);
  EXPECT_EQ(d.Observe("ls", 0, "a"), "");
  EXPECT_EQ(d.Observe("make", 2, "error"), "");
  EXPECT_EQ(d.Observe("make", 2, "error"), "the same command failed 2 times: make");
  d.Reset();
  // Progress is a success with output not seen before: repeating one is not.
  EXPECT_EQ(d.Observe("ls", 0, "a"), "");
  EXPECT_EQ(d.Observe("", 1, ""), "");
  EXPECT_EQ(d.Observe("ls", 0, "a"), "no progress in 3 iterations");
  d.Reset();
  EXPECT_EQ(d.Observe("ls", 0, "b"), "");
  EXPECT_EQ(d.Observe("make", 2, "x"), "");
  EXPECT_EQ(d.Observe("ls", 0, "c"), "") << "new output resets the count";
  std::string q;
  EXPECT_TRUE(AsksForHelp("hmm. NEED_HELP which port?", &q));
  EXPECT_EQ(q, "which port?");
  EXPECT_TRUE(AsksForHelp("I cannot find the file. NEED_HELP", &q));
  EXPECT_EQ(q, "I cannot find the file.");
  EXPECT_FALSE(AsksForHelp("need help", &q));
}

TEST(LlmParsingTest, CommandAndCompletion) {
  EXPECT_EQ(ExtractCommand("Let me look.\n```bash\nls -la\n```\nthen"), "ls -la");
  EXPECT_EQ(ExtractCommand("\n  uname -a  \nmore"), "uname -a");
  EXPECT_EQ(ExtractCommand(""), "");
  std::string answer;
  EXPECT_TRUE(IsComplete("done. TASK_COMPLETE 42", &answer));
  EXPECT_EQ(answer, "42");
  EXPECT_FALSE(IsComplete("task complete", &answer));
}

}  // namespace
}  // namespace bzzz::executors
