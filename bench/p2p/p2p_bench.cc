// bzzz_p2p_bench: P2P figures between real processes on 127.0.0.1.
//
//   bzzz_p2p_bench pubsub [--subscribers 2] [--latency-messages 20000] [--rate R]
//                         [--seconds 10] [--size 1024] [--base-port 39100]
//   bzzz_p2p_bench dht    [--nodes 10] [--ops 200] [--base-port 39200]
//
// pubsub: this process publishes signed 1 KiB messages; each subscriber is a
// forked process with its own P2P node; they talk over member links (the
// mesh). Phases (see Pubsub below): saturation with the counters that must
// add up, latency paced at half the measured capacity (or --rate), no loss
// at 80% of it, CPU per message and memory after the run.
// dht: --nodes processes (this one included) form a DHT; this process puts
// and gets --ops signed records of distinct keys through the network.
// Prints one JSON line per figure on stdout (progress on stderr).
#include <signal.h>
#include <sys/resource.h>
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

int g_batch_bytes = 48 * 1024, g_batch_messages = 64, g_inflight = 32, g_linger = -1;

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
  if (g_linger >= 0) o.config.pubsub.batch_linger_us = static_cast<std::size_t>(g_linger);
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

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long RssKib() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    std::fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

// Messages this node lost for its subscribers (the drop reasons that lose a
// message; duplicates and the node's own messages are not losses), less
// those that arrived late by the mesh's repair after a drop elsewhere.
std::int64_t Losses(const bzzz::p2p::PubsubStats& st) {
  std::int64_t n = 0;
  for (const auto& [reason, count] : st.dropped_by_reason) {
    if (reason != "duplicate" && reason != "self" && reason != "retained") n += static_cast<std::int64_t>(count);
  }
  return n - static_cast<std::int64_t>(st.repaired);
}

// A subscriber process: counts every phase's messages ("sat", "lat",
// "loss"), keeps the latencies of "lat", and answers the parent's commands.
void Subscriber(int index, int publisher_port, int port, int command_fd, int result_fd) {
  auto node = StartNode(port, {"127.0.0.1:" + std::to_string(publisher_port)}, "sub" + std::to_string(index));
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<std::uint64_t> sat{0}, lat{0}, loss{0};
  std::atomic<std::int64_t> first{0}, last{0};
  (void)node->Subscribe(kTopic, "bench", [&](const bzzz::p2p::Message& m) {
    const std::int64_t now = NowUs();
    if (m.envelope.type == "lat") {
      std::lock_guard lock(mu);
      latencies.push_back(static_cast<double>(now - m.published_us) / 1000.0);
      ++lat;
    } else if (m.envelope.type == "sat") {
      std::int64_t zero = 0;
      first.compare_exchange_strong(zero, now);
      last = now;
      ++sat;
    } else if (m.envelope.type == "loss") {
      ++loss;
    }
  });
  WriteLine(result_fd, "ready " + node->node_id());
  double cpu_mark = CpuSeconds();
  std::int64_t loss_mark = 0;
  for (;;) {
    const std::string cmd = ReadLine(command_fd);
    char buf[512];
    if (cmd == "mark") {
      cpu_mark = CpuSeconds();
      loss_mark = Losses(node->Stats());
      WriteLine(result_fd, "ok");
    } else if (cmd == "stats") {
      const auto st = node->Stats();
      std::snprintf(buf, sizeof buf, "%llu %llu %llu %lld %lld %.4f %ld", static_cast<unsigned long long>(sat.load()),
                    static_cast<unsigned long long>(lat.load()), static_cast<unsigned long long>(loss.load()),
                    static_cast<long long>(Losses(st) - loss_mark), static_cast<long long>(last.load() - first.load()),
                    CpuSeconds() - cpu_mark, RssKib());
      WriteLine(result_fd, buf);
    } else if (cmd == "latency") {
      std::lock_guard lock(mu);
      std::snprintf(buf, sizeof buf, "%zu %.4f %.4f", latencies.size(), Percentile(latencies, 0.5),
                    Percentile(latencies, 0.99));
      latencies.clear();
      WriteLine(result_fd, buf);
    } else {
      break;  // "exit" or the parent went away
    }
  }
  node->Stop();
}

struct SubReport {
  unsigned long long sat = 0, lat = 0, loss = 0;
  long long lost = 0;  // dropped at the subscriber, less repaired
  long long span_us = 0;
  double cpu_s = 0;
  long rss_kib = 0;
};

SubReport AskStats(const Child& c) {
  WriteLine(c.command, "stats");
  SubReport r;
  std::sscanf(ReadLine(c.result).c_str(), "%llu %llu %llu %lld %lld %lf %ld", &r.sat, &r.lat, &r.loss, &r.lost,
              &r.span_us, &r.cpu_s, &r.rss_kib);
  return r;
}

// The pubsub benchmark, in phases:
//   1. saturation: publish as fast as Publish accepts for --seconds; then,
//      once delivery is drained, each subscriber's delivered count plus the
//      drops counted for it (the publisher's for its link, its own) must
//      equal what the publisher accepted ("accounted"). Capacity = the
//      slower subscriber's delivered rate over its receive span. CPU per
//      message = CPU seconds of all three processes / delivered messages.
//   2. latency: --latency-messages paced at half the capacity (or --rate).
//   3. loss: 3 s paced at 80% of the capacity; every message must arrive.
//   4. memory: resident size of each process after the run, and again 2 s
//      later (after 1M+ messages at full speed it must stay bounded).
int Pubsub(int argc, char** argv) {
  const int subscribers = Arg(argc, argv, "--subscribers", 2);
  const int lat_messages = Arg(argc, argv, "--latency-messages", 20000);
  const int fixed_rate = Arg(argc, argv, "--rate", 0);
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
  std::vector<std::string> sub_ids;
  for (auto& c : children) sub_ids.push_back(ReadLine(c.result).substr(6));
  for (int i = 0; i < 200 && node->Links().size() < static_cast<std::size_t>(subscribers); ++i) {
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(1500ms);  // subscriptions reach the links
  std::fprintf(stderr, "pubsub: %d subscriber processes, %zu member links; warm-up\n", subscribers,
               node->Links().size());
  const std::string payload(static_cast<std::size_t>(size), 'x');
  std::uint64_t refused = 0;
  auto publish = [&](const char* type) {
    for (;;) {
      bzzz::Status s = node->Publish(kTopic, type, payload);
      if (s.ok()) return;
      ++refused;
      std::this_thread::sleep_for(50us);  // ResourceExhausted: the bounded queue is full, back off
    }
  };
  for (int i = 0; i < 500; ++i) {
    publish("warm");
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(500ms);

  // 1. Saturation.
  std::fprintf(stderr, "pubsub: saturation for %d s\n", seconds);
  for (auto& c : children) {
    WriteLine(c.command, "mark");
    ReadLine(c.result);
  }
  const double pub_cpu0 = CpuSeconds();
  const auto links0 = node->Links();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0;
  refused = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds)) {
    publish("sat");
    ++sent;
  }
  const double send_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::uint64_t refused_sat = refused;
  // Drained: the subscribers' counts stop moving.
  std::vector<SubReport> reports(children.size());
  for (int round = 0; round < 100; ++round) {
    std::this_thread::sleep_for(300ms);
    bool moved = false;
    for (std::size_t i = 0; i < children.size(); ++i) {
      const SubReport r = AskStats(children[i]);
      moved |= r.sat != reports[i].sat || r.lost != reports[i].lost;
      reports[i] = r;
    }
    if (!moved) break;
  }
  const double pub_cpu = CpuSeconds() - pub_cpu0;
  const auto links1 = node->Links();
  auto link_drops = [&](const std::string& id) {
    std::uint64_t before = 0, after = 0;
    for (const auto& l : links0) before += l.node_id == id ? l.messages_dropped : 0;
    for (const auto& l : links1) after += l.node_id == id ? l.messages_dropped : 0;
    return after - before;
  };
  double capacity = 1e18, cpu_total = pub_cpu;
  unsigned long long delivered = 0, min_received = ~0ull;
  bool accounted = true;
  for (std::size_t i = 0; i < children.size(); ++i) {
    const SubReport& r = reports[i];
    const std::uint64_t pub_drops = link_drops(sub_ids[i]);
    const bool adds_up = static_cast<long long>(r.sat + pub_drops) + r.lost == static_cast<long long>(sent);
    accounted &= adds_up;
    capacity = std::min(capacity, r.span_us > 0 ? static_cast<double>(r.sat) / (static_cast<double>(r.span_us) / 1e6) : 0);
    min_received = std::min(min_received, r.sat);
    delivered += r.sat;
    cpu_total += r.cpu_s;
    std::fprintf(stderr,
                 "pubsub: subscriber %zu: delivered %llu + dropped at the publisher %llu + dropped at the subscriber "
                 "%lld (less repaired) = %lld of %llu published (%s); %.2f s span, %.2f CPU s\n",
                 i, r.sat, static_cast<unsigned long long>(pub_drops), r.lost,
                 static_cast<long long>(r.sat + pub_drops) + r.lost, static_cast<unsigned long long>(sent),
                 adds_up ? "adds up" : "DOES NOT ADD UP", static_cast<double>(r.span_us) / 1e6, r.cpu_s);
  }
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_throughput\",\"msgs_per_s_per_subscriber\":%.0f,\"seconds\":%d,"
              "\"published\":%llu,\"publish_refusals\":%llu,\"received_min\":%llu,\"accounted\":%s,"
              "\"cpu_us_per_msg\":%.3f,\"publish_s\":%.2f,\"load1\":%.2f}\n",
              capacity, seconds, static_cast<unsigned long long>(sent), static_cast<unsigned long long>(refused_sat),
              min_received, accounted ? "true" : "false", delivered ? cpu_total * 1e6 / static_cast<double>(delivered) : 0,
              send_s, LoadAverage());
  std::fflush(stdout);

  // 2. Latency, paced at half the capacity.
  const int rate = fixed_rate > 0 ? fixed_rate : std::max(100, static_cast<int>(capacity / 2));
  std::fprintf(stderr, "pubsub: latency, %d messages at %d/s\n", lat_messages, rate);
  for (auto& c : children) {
    WriteLine(c.command, "latency");  // clears
    ReadLine(c.result);
  }
  auto paced = [&](const char* type, int count, int per_s) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < count; ++i) {
      publish(type);
      std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<long long>(i + 1) * 1'000'000 / per_s));
    }
  };
  paced("lat", lat_messages, rate);
  std::this_thread::sleep_for(1s);
  std::vector<double> p50s, p99s;
  std::size_t lat_received = 0;
  for (auto& c : children) {
    WriteLine(c.command, "latency");
    std::size_t n = 0;
    double p50 = 0, p99 = 0;
    std::sscanf(ReadLine(c.result).c_str(), "%zu %lf %lf", &n, &p50, &p99);
    lat_received += n;
    p50s.push_back(p50);
    p99s.push_back(p99);
  }
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_latency\",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"rate\":%d,"
              "\"messages\":%d,\"received\":%zu,\"subscribers\":%d,\"load1\":%.2f}\n",
              *std::max_element(p50s.begin(), p50s.end()), *std::max_element(p99s.begin(), p99s.end()), rate,
              lat_messages, lat_received, subscribers, LoadAverage());
  std::fflush(stdout);

  // 3. No loss at 80% of the capacity.
  const int loss_rate = std::max(100, static_cast<int>(capacity * 0.8));
  const int loss_messages = loss_rate * std::min(3, seconds);
  std::fprintf(stderr, "pubsub: loss, %d messages at %d/s\n", loss_messages, loss_rate);
  paced("loss", loss_messages, loss_rate);
  unsigned long long loss_min = ~0ull;
  for (int round = 0; round < 20; ++round) {
    std::this_thread::sleep_for(300ms);
    loss_min = ~0ull;
    for (auto& c : children) loss_min = std::min(loss_min, AskStats(c).loss);
    if (loss_min == static_cast<unsigned long long>(loss_messages)) break;
  }
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_loss\",\"rate\":%d,\"messages\":%d,\"received_min\":%llu,"
              "\"lost\":%lld,\"load1\":%.2f}\n",
              loss_rate, loss_messages, loss_min, static_cast<long long>(loss_messages) - static_cast<long long>(loss_min),
              LoadAverage());
  std::fflush(stdout);

  // 4. Memory after the run, and 2 s later.
  const auto total = node->Stats().published;
  std::vector<long> rss_after{RssKib()};
  for (auto& c : children) rss_after.push_back(AskStats(c).rss_kib);
  std::this_thread::sleep_for(2s);
  std::vector<long> rss_later{RssKib()};
  for (auto& c : children) rss_later.push_back(AskStats(c).rss_kib);
  auto join = [](const std::vector<long>& v) {
    std::string out;
    for (long x : v) out += (out.empty() ? "" : ",") + std::to_string(x / 1024);
    return out;
  };
  std::printf("{\"system\":\"bzzz\",\"bench\":\"pubsub_memory\",\"messages_published\":%llu,\"rss_mib_after\":[%s],"
              "\"rss_mib_2s_later\":[%s]}\n",
              static_cast<unsigned long long>(total), join(rss_after).c_str(), join(rss_later).c_str());
  std::fflush(stdout);
  for (auto& c : children) kill(c.pid, SIGKILL);  // a benchmark needs no graceful leave
  for (auto& c : children) waitpid(c.pid, nullptr, 0);
  _exit(accounted ? 0 : 1);
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
  g_linger = Arg(argc, argv, "--linger-us", g_linger);
  if (mode == "pubsub") return Pubsub(argc, argv);
  if (mode == "dht") return Dht(argc, argv);
  std::fprintf(stderr, "usage: bzzz_p2p_bench pubsub|dht [options] (see the header of bench/p2p/p2p_bench.cc)\n");
  return 2;
}
