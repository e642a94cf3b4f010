// bzzz_p2p_bench: P2P figures between real processes on 127.0.0.1.
//
//   bzzz_p2p_bench pubsub [--subscribers 2] [--latency-messages 2000] [--rate 500]
//                         [--seconds 10] [--size 1024] [--base-port 39100]
//   bzzz_p2p_bench dht    [--nodes 10] [--ops 200] [--base-port 39200]
//
// pubsub: this process publishes signed 1 KiB messages; each subscriber is a
// forked process with its own P2P node. Latency: messages paced at --rate,
// publish -> subscriber handler, p50/p99 over all subscribers. Throughput:
// publish as fast as the bounded queue allows for --seconds; messages/s
// delivered to the slowest subscriber.
// dht: --nodes processes (this one included) form a DHT; this process puts
// and gets --ops signed records of distinct keys through the network.
// Prints one JSON line per figure on stdout (progress on stderr).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sodium.h>

#include "cluster/membership.h"
#include "p2p/p2p.h"
#include "p2p/wire.h"

namespace {

using namespace std::chrono_literals;
using bzzz::p2p::Bytes;

std::int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

int Arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

double LoadAverage() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

int g_batch_bytes = 48 * 1024, g_batch_messages = 64, g_inflight = 32;

bzzz::p2p::Options NodeOptions(int port, const std::vector<std::string>& seeds, const std::string& name) {
  bzzz::p2p::Options o;
  o.config.listen = "127.0.0.1:" + std::to_string(port);
  o.config.bootstrap = seeds;
  o.config.max_peer_requests_per_sec = -1;  // every process shares 127.0.0.1
  o.config.max_requests_per_sec = -1;
  o.config.presence_interval = 1s;
  o.config.peer_expiry = 10s;
  o.config.pubsub.queue_capacity = 65536;
  o.config.pubsub.batch_max_bytes = static_cast<std::size_t>(g_batch_bytes);
  o.config.pubsub.batch_max_messages = static_cast<std::size_t>(g_batch_messages);
  o.config.pubsub.max_inflight_frames = static_cast<std::size_t>(g_inflight);
  o.config.max_store_bytes = std::size_t{1} << 30;  // a 10 s burst at full rate stays stored for 30 s
  o.node_name = name;
  return o;
}

// Every process of one run joins the same cluster: the cluster key is
// derived from BZZZ_BENCH_CLUSTER_SEED (default "bzzz-bench"), and
// each node issues its own credential with it (a benchmark shortcut; real
// nodes are admitted by the cluster's admin).
std::shared_ptr<bzzz::cluster::Membership> BenchMembership(const bzzz::p2p::NodeIdentity& id) {
  const char* seed_env = std::getenv("BZZZ_BENCH_CLUSTER_SEED");
  std::string seed = seed_env ? seed_env : "bzzz-bench";
  unsigned char pk[32], sk[64], digest[32];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(seed.data()), seed.size(),
                     nullptr, 0);
  crypto_sign_seed_keypair(pk, sk, digest);
  auto ca = bzzz::cluster::ClusterAuthority::FromSecret(std::string(reinterpret_cast<char*>(sk), 64)).value();
  auto m = bzzz::cluster::Membership::Open("").value();
  (void)m->Adopt(ca.public_key());
  bzzz::cluster::Credential c;
  c.node_key = id.public_key();
  c.role = bzzz::cluster::NodeRole::kWorker;
  c.serial = 1;
  c.issued_at_ms = bzzz::cluster::NowMs();
  c.expires_at_ms = c.issued_at_ms + 24 * 3600 * 1000;
  (void)m->Admit(bzzz::cluster::EncodeCredential(c, ca), "", id.public_key());
  return m;
}

std::unique_ptr<bzzz::p2p::P2pNode> StartNode(int port, const std::vector<std::string>& seeds, const std::string& name) {
  auto identity = bzzz::p2p::NodeIdentity::Generate();
  auto options = NodeOptions(port, seeds, name);
  options.membership = BenchMembership(identity);
  auto node = bzzz::p2p::P2pNode::Start(std::move(options), std::move(identity), nullptr);
  if (!node.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), node.status().message().c_str());
    _exit(3);
  }
  return std::move(node).value();
}

// A child process that runs `fn(command_fd, result_fd)` and exits.
struct Child {
  pid_t pid = -1;
  int command = -1;  // parent writes
  int result = -1;   // parent reads
};

template <class Fn>
Child Fork(Fn fn) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) std::abort();
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    alarm(300);  // never outlive a broken run
    fn(to_child[0], to_parent[1]);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  c.command = to_child[1];
  c.result = to_parent[0];
  return c;
}

void WriteLine(int fd, const std::string& line) {
  const std::string l = line + "\n";
  [[maybe_unused]] auto n = write(fd, l.data(), l.size());
}

std::string ReadLine(int fd) {
  std::string line;
  char ch;
  while (read(fd, &ch, 1) == 1 && ch != '\n') line.push_back(ch);
  return line;
}

// ---- pubsub ----

constexpr std::string_view kTopic = "bzzz/internal/bench/v1";

void Subscriber(int index, int publisher_port, int port, int command_fd, int result_fd) {
  auto node = StartNode(port, {"127.0.0.1:" + std::to_string(publisher_port)}, "sub" + std::to_string(index));
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<std::uint64_t> tput{0};
  std::atomic<std::int64_t> first{0}, last{0};
  (void)node->Subscribe(kTopic, "bench", [&](const bzzz::p2p::Message& m) {
    const std::int64_t now = NowUs();
    if (m.envelope.type == "lat") {
      std::lock_guard lock(mu);
      latencies.push_back(static_cast<double>(now - m.published_us) / 1000.0);
    } else if (m.envelope.type == "tput") {
      std::int64_t zero = 0;
      first.compare_exchange_strong(zero, now);
      last = now;
      ++tput;
    }
  });
  WriteLine(result_fd, "ready");
  ReadLine(command_fd);  // "report"
  std::lock_guard lock(mu);
  const auto st = node->Stats();
  std::fprintf(stderr, "sub%d: received %llu dropped %llu rejected %llu\n", index,
               static_cast<unsigned long long>(st.received), static_cast<unsigned long long>(st.dropped),
               static_cast<unsigned long long>(st.rejected));
  char buf[256];
  std::snprintf(buf, sizeof buf, "%zu %.4f %.4f %llu %lld", latencies.size(), Percentile(latencies, 0.5),
                Percentile(latencies, 0.99), static_cast<unsigned long long>(tput.load()),
                static_cast<long long>(last.load() - first.load()));
  WriteLine(result_fd, buf);
  ReadLine(command_fd);  // "exit"
  node->Stop();
}

int Pubsub(int argc, char** argv) {
  const int subscribers = Arg(argc, argv, "--subscribers", 2);
  const int lat_messages = Arg(argc, argv, "--latency-messages", 2000);
  const int rate = Arg(argc, argv, "--rate", 500);
  const int seconds = Arg(argc, argv, "--seconds", 10);
  const int size = Arg(argc, argv, "--size", 1024);
  const int base = Arg(argc, argv, "--base-port", 39100);
  std::vector<Child> children;
  for (int i = 0; i < subscribers; ++i) {
    children.push_back(Fork([=](int cmd, int res) {
      ReadLine(cmd);  // "start": the publisher is up
      Subscriber(i, base, base + 1 + i, cmd, res);
    }));
  }
  auto node = StartNode(base, {}, "publisher");
  for (auto& c : children) WriteLine(c.command, "start");
  for (auto& c : children) ReadLine(c.result);
  // Wait until every subscriber's listen is in place: probe messages until all count them.
  std::this_thread::sleep_for(2s);
  std::fprintf(stderr, "pubsub: %d subscriber processes ready; warm-up\n", subscribers);
  const std::string payload(static_cast<std::size_t>(size), 'x');
  auto publish = [&](const char* type) {
    for (;;) {
      bzzz::Status s = node->Publish(kTopic, type, payload);
      if (s.ok()) return;
      std::this_thread::sleep_for(50us);  // the bounded queue is full: back off
    }
  };
  for (int i = 0; i < 500; ++i) {
    publish("warm");
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(500ms);
  std::fprintf(stderr, "pubsub: latency, %d messages at %d/s\n", lat_messages, rate);
  const auto period = std::chrono::microseconds(1'000'000 / std::max(1, rate));
  auto next = std::chrono::steady_clock::now();
  for (int i = 0; i < lat_messages; ++i) {
    publish("lat");
    next += period;
    std::this_thread::sleep_until(next);
  }
  std::this_thread::sleep_for(1s);
  std::fprintf(stderr, "pubsub: throughput for %d s\n", seconds);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    publish("tput");
    ++sent;
  }
  const double send_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::this_thread::sleep_for(2s);
  std::vector<double> p50s, p99s;
  double min_rate = 1e18;
  unsigned long long min_received = ~0ull;
  std::size_t lat_received = 0;
  for (auto& c : children) {
    WriteLine(c.command, "report");
    unsigned long long count = 0, tput = 0;
    long long span = 0;
    double p50 = 0, p99 = 0;
    std::sscanf(ReadLine(c.result).c_str(), "%llu %lf %lf %llu %lld", &count, &p50, &p99, &tput, &span);
    lat_received += count;
    min_received = std::min(min_received, tput);
    p50s.push_back(p50);
    p99s.push_back(p99);
    const double r = span > 0 ? static_cast<double>(tput) / (static_cast<double>(span) / 1e6) : 0;
    (void)send_s;
    min_rate = std::min(min_rate, r);  // delivered messages over the subscriber's receive span
    std::fprintf(stderr, "pubsub: subscriber got %llu/%d latency messages (p50 %.3f ms, p99 %.3f ms), %llu/%llu "
                 "throughput messages over %.2f s (publishing took %.2f s)\n",
                 count, lat_messages, p50, p99, tput, static_cast<unsigned long long>(sent),
                 static_cast<double>(span) / 1e6, send_s);
  }
  const auto stats = node->Stats();
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_latency\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"messages\":%d,"
              "\"received\":%zu,\"subscribers\":%d,\"load1\":%.2f}\n",
              *std::max_element(p50s.begin(), p50s.end()), *std::max_element(p99s.begin(), p99s.end()), lat_messages,
              lat_received, subscribers, LoadAverage());
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_throughput\",\"msgs_per_s_per_subscriber\":%.0f,\"seconds\":%d,"
              "\"published\":%llu,\"received_min\":%llu,\"frames\":%llu,\"load1\":%.2f}\n",
              min_rate, seconds, static_cast<unsigned long long>(sent), min_received,
              static_cast<unsigned long long>(stats.frames_sent), LoadAverage());
  std::fflush(stdout);
  for (auto& c : children) kill(c.pid, SIGKILL);  // a benchmark needs no graceful leave
  for (auto& c : children) waitpid(c.pid, nullptr, 0);
  _exit(0);
}

// ---- dht ----

int Dht(int argc, char** argv) {
  const int nodes = Arg(argc, argv, "--nodes", 10);
  const int ops = Arg(argc, argv, "--ops", 200);
  const int base = Arg(argc, argv, "--base-port", 39200);
  std::vector<Child> children;
  for (int i = 1; i < nodes; ++i) {
    children.push_back(Fork([=](int cmd, int res) {
      ReadLine(cmd);
      std::vector<std::string> seeds;
      for (int j = 0; j < i; ++j) seeds.push_back("127.0.0.1:" + std::to_string(base + j));
      auto node = StartNode(base + i, seeds, "dht" + std::to_string(i));
      WriteLine(res, "ready");
      ReadLine(cmd);
      node->Stop();
    }));
  }
  auto node = StartNode(base, {}, "dht0");
  for (auto& c : children) {
    WriteLine(c.command, "start");
    ReadLine(c.result);
  }
  for (int i = 0; i < 100 && node->ConnectedPeers() < static_cast<std::size_t>(nodes - 1); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(1s);
  std::fprintf(stderr, "dht: %d nodes, %zu peers seen; %d puts and gets\n", nodes, node->ConnectedPeers(), ops);
  auto sync_put = [&](const std::string& key, Bytes value) {
    std::promise<bool> done;
    auto f = done.get_future();
    node->DhtPut(key, std::move(value), bzzz::p2p::ValueClass::kRecord, 0, [&done](bool ok) { done.set_value(ok); });
    return f.wait_for(10s) == std::future_status::ready && f.get();
  };
  auto sync_get = [&](const std::string& key) {
    std::promise<std::size_t> done;
    auto f = done.get_future();
    node->DhtGet(key, [&done](std::vector<Bytes> v, bool) { done.set_value(v.size()); });
    return f.wait_for(10s) == std::future_status::ready ? f.get() : 0;
  };
  std::vector<double> puts, gets;
  int failures = 0;
  for (int i = -20; i < ops; ++i) {  // 20 warm-up pairs
    bzzz::p2p::Frame f;
    f.kind = bzzz::p2p::FrameKind::kRecord;
    f.credential = node->credential();
    f.seq = static_cast<std::uint64_t>(i + 100);
    f.sent_at_ns = NowUs() * 1000;
    f.topic = "bench/record/" + std::to_string(i) + "/" + std::to_string(NowUs());
    f.messages.push_back({"meta", NowUs(), 0, "{\"content_type\":\"text/plain\",\"size\":5,\"sha256\":\"\",\"chunks\":[]}"});
    f.messages.push_back({"content", NowUs(), 0, "hello"});
    auto bytes = bzzz::p2p::EncodeFrame(f, node->identity());
    const std::string key = "rec:" + f.topic;
    auto t0 = std::chrono::steady_clock::now();
    const bool put_ok = sync_put(key, std::move(bytes).value());
    auto t1 = std::chrono::steady_clock::now();
    const std::size_t found = sync_get(key);
    auto t2 = std::chrono::steady_clock::now();
    if (!put_ok || found == 0) ++failures;
    if (i < 0) continue;
    puts.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    gets.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  for (auto& c : children) kill(c.pid, SIGKILL);
  for (auto& c : children) waitpid(c.pid, nullptr, 0);
  std::printf("{\"system\":\"bzzz\",\"bench\":\"dht_put\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"ops\":%d,\"nodes\":%d,"
              "\"failures\":%d,\"load1\":%.2f}\n",
              Percentile(puts, 0.5), Percentile(puts, 0.99), ops, nodes, failures, LoadAverage());
  std::printf("{\"system\":\"bzzz\",\"bench\":\"dht_get\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"ops\":%d,\"nodes\":%d,"
              "\"load1\":%.2f}\n",
              Percentile(gets, 0.5), Percentile(gets, 0.99), ops, nodes, LoadAverage());
  std::fflush(stdout);
  _exit(failures == 0 ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  // stdout carries only the JSON lines: logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("bench"));
  spdlog::set_level(spdlog::level::warn);
  const std::string mode = argc > 1 ? argv[1] : "";
  g_batch_bytes = Arg(argc, argv, "--batch-bytes", g_batch_bytes);
  g_batch_messages = Arg(argc, argv, "--batch-messages", g_batch_messages);
  g_inflight = Arg(argc, argv, "--inflight", g_inflight);
  if (mode == "pubsub") return Pubsub(argc, argv);
  if (mode == "dht") return Dht(argc, argv);
  std::fprintf(stderr, "usage: bzzz_p2p_bench pubsub|dht [options] (see the header of bench/p2p/p2p_bench.cc)\n");
  return 2;
}
