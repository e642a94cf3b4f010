// UCXL context store benchmark: what role encryption costs on the write and
// read paths, on one node's SQLite store (no DHT: bench/p2p measures DHT
// puts and gets). For each content size, puts and gets with content stored
// as given and sealed per role (ucxl::RoleCodec), then the envelope alone.
// One JSON line per figure:
//   {"bench":"ucxl_put","sealed":true,"bytes":1024,"ops":..,"per_second":..,"p50_us":..,"p99_us":..}
//
//   bzzz_ucxl_bench [--seconds S] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster/credential.h"
#include "keys/keyring.h"
#include "p2p/identity.h"
#include "storage/sqlite/sqlite.h"
#include "ucxl/context_store.h"
#include "ucxl/role_codec.h"

namespace {

using namespace bzzz;
using Clock = std::chrono::steady_clock;

struct Figures {
  std::size_t ops = 0;
  double seconds = 0;
  std::vector<double> micros;
};

template <typename F>
Figures Run(double seconds, F&& op) {
  Figures f;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    const auto t = Clock::now();
    if (!op(f.ops)) {
      std::fprintf(stderr, "ucxl bench: an operation failed\n");
      std::exit(1);
    }
    f.micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    ++f.ops;
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return f;
}

void Print(const char* bench, bool sealed, std::size_t bytes, Figures f) {
  std::sort(f.micros.begin(), f.micros.end());
  auto pct = [&](double p) { return f.micros.empty() ? 0 : f.micros[static_cast<std::size_t>(p * (f.micros.size() - 1))]; };
  std::printf(
      "{\"bench\":\"%s\",\"sealed\":%s,\"bytes\":%zu,\"ops\":%zu,\"per_second\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
      bench, sealed ? "true" : "false", bytes, f.ops, f.ops / f.seconds, pct(0.5), pct(0.99));
  std::fflush(stdout);
}

std::shared_ptr<ucxl::ContextRepository> OpenRepo(const std::string& path) {
  storage::sqlite::SqliteOptions o;
  o.path = path;
  auto storage = storage::sqlite::Open(o);
  if (!storage.ok() || !storage->store->Migrate().ok()) {
    std::fprintf(stderr, "ucxl bench: cannot open %s\n", path.c_str());
    std::exit(1);
  }
  return storage->contexts;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
  }
  const bool own_dir = dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/bzzz-ucxl-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  auto ca = cluster::ClusterAuthority::Generate();
  auto identity = p2p::NodeIdentity::Generate();
  auto keyring = *keys::Keyring::Open("", identity, ca.public_key());
  const keys::ClusterSigner sign = [&](std::string_view m) -> Result<std::array<std::uint8_t, 64>> { return ca.Sign(m); };
  (void)keyring->EnsureRoles({"developer", "master"}, 1, sign);
  auto codec = std::make_shared<ucxl::RoleCodec>(keyring, std::vector<ucxl::ReadRule>{}, nullptr);
  const ucxl::Reader reader{{"developer"}, false};

  for (std::size_t bytes : {std::size_t{1024}, std::size_t{64 * 1024}}) {
    const std::string content(bytes, 'x');
    for (bool sealed : {false, true}) {
      const std::string db = dir + "/" + std::to_string(bytes) + (sealed ? "-sealed" : "-clear") + ".db";
      ucxl::ContextStore store(OpenRepo(db), nullptr, {}, sealed ? codec : nullptr);
      // Each put a new address (histories stay short); gets cycle over them.
      std::vector<ucxl::Address> written;
      auto put = Run(seconds, [&](std::size_t i) {
        auto a = ucxl::Parse("ucxl://bench:developer@bench:t/*^/k" + std::to_string(i));
        if (!a.ok() || !store.Put(*a, {"bench", "developer"}, "text/plain", content).ok()) return false;
        written.push_back(*a);
        return true;
      });
      Print("ucxl_put", sealed, bytes, put);
      auto get = Run(seconds, [&](std::size_t i) {
        auto e = store.Get(written[i % written.size()], reader);
        return e.ok() && e->content.size() == bytes;
      });
      Print("ucxl_get", sealed, bytes, get);
    }
    // The envelope alone: seal for two roles and this node, open as a developer.
    const std::string key = "ucxl://bench:developer@bench:t/k";
    auto seal = Run(seconds, [&](std::size_t) { return keyring->Seal(key, content, {"developer", "master"}).ok(); });
    Print("envelope_seal", true, bytes, seal);
    const std::string sealed = *keyring->Seal(key, content, {"developer", "master"});
    auto open = Run(seconds, [&](std::size_t) {
      return keyring->Open(key, sealed, [](const std::string& r) { return r == "developer"; }).ok();
    });
    Print("envelope_open", true, bytes, open);
  }
  if (own_dir) std::filesystem::remove_all(dir);
  return 0;
}
