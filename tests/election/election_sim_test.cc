// Deterministic simulation of the election: seeded random scenarios with
// crashes, restarts, graceful resignations, message loss, delay,
// duplication and reordering, partitions and their healing, trigger-election
// and electorate changes. sim.h checks the safety invariants after every
// event:
//   - at most one admin per term (over the whole run, not only at once);
//   - terms only grow, on every node, across restarts;
//   - one vote per node per term;
//   - every admin won the votes of a majority of its electorate, and an
//     admin elected while partitioned has that majority on its own side;
//   - the admin-only services of a term start only after every newer-or-equal
//     term's services elsewhere stopped (fencing).
// After the chaos the network heals and every node restarts; liveness: one
// admin, known to every node, within kSettle.
//
// BZZZ_ELECTION_SEED=N replays one seed with a trace; BZZZ_ELECTION_SCENARIOS
// overrides the count. A failing seed is printed with its replay command.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "election/sim.h"

namespace bzzz::election::sim {
namespace {

using namespace std::chrono_literals;

constexpr int kDefaultScenarios = 10000;
constexpr auto kSettle = 30s;

struct Outcome {
  std::string violation;
  std::string description;
  double settle_ms = -1;  // time to one agreed admin after healing
  std::uint64_t elections = 0;
  bool autopilot_acted = false;  // an admin changed the electorate by itself
  std::vector<std::string> trace;
};

template <typename T>
T Pick(std::mt19937_64& rng, std::initializer_list<T> values) {
  auto it = values.begin();
  std::advance(it, std::uniform_int_distribution<std::size_t>(0, values.size() - 1)(rng));
  return *it;
}
int Uniform(std::mt19937_64& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

Outcome RunScenario(std::uint64_t seed, bool tracing) {
  Cluster c(seed);
  c.tracing = tracing;
  auto& rng = c.rng();
  std::ostringstream desc;

  // --- the cluster ---
  const int n = Pick(rng, {1, 2, 3, 3, 3, 4, 5, 5, 5, 7});
  const int capable = Uniform(rng, 0, 3) == 0 ? Uniform(rng, 1, n) : n;
  Options base;
  if (Uniform(rng, 0, 2) == 0) {  // unusual timings
    base.heartbeat_interval = milliseconds(Uniform(rng, 30, 300));
    base.election_timeout = base.heartbeat_interval * Uniform(rng, 2, 8);
    base.stability_window = milliseconds(Uniform(rng, 0, 3000));
    base.hello_interval = milliseconds(Uniform(rng, 200, 2000));
  }
  // Autopilot on in half the scenarios: the admin adds the non-members and
  // removes members it has not heard from, by itself, amid the chaos.
  const bool autopilot = Uniform(rng, 0, 1) == 0;
  if (autopilot) {
    base.autopilot_stabilization = milliseconds(Uniform(rng, 100, 3000));
    base.autopilot_dead_after = Uniform(rng, 0, 2) == 0 ? milliseconds(0) : milliseconds(Uniform(rng, 300, 5000));
  }
  // Either every admin-capable node bootstraps together, or some form the
  // electorate first and the others join as non-members (added later).
  const bool preformed = n > 1 && Uniform(rng, 0, 1) == 0;
  const int founders = preformed ? Uniform(rng, 1, capable) : capable;
  HardState formed;
  if (preformed) {
    for (int i = 0; i < founders; ++i) formed.electorate.members.push_back("n" + std::to_string(i));
    std::sort(formed.electorate.members.begin(), formed.electorate.members.end());
    formed.electorate.id = ConfigId{0, 1};
    formed.cluster = ClusterIdOf(formed.electorate.members);
  }
  for (int i = 0; i < n; ++i) {
    Options o = base;
    o.node_id = "n" + std::to_string(i);
    o.admin_capable = i < capable;
    o.bootstrap_expect = preformed ? 0 : capable;
    c.Add(o, preformed && i < founders ? formed : HardState{});
  }
  c.network.loss = Pick(rng, {0.0, 0.0, 0.01, 0.05, 0.2, 0.4});
  c.network.duplicate = Pick(rng, {0.0, 0.02, 0.1});
  c.network.max_delay = microseconds(Pick(rng, {500, 3000, 20000}));
  c.network.slow = Pick(rng, {0.0, 0.01, 0.05});
  desc << (autopilot ? "autopilot(" + std::to_string(base.autopilot_stabilization.count()) + "ms," +
                           std::to_string(base.autopilot_dead_after.count()) + "ms) "
                     : std::string())
       << "n=" << n << " capable=" << capable << (preformed ? " preformed=" + std::to_string(founders) : "")
       << " hb=" << base.heartbeat_interval.count() << "ms timeout=" << base.election_timeout.count()
       << "ms loss=" << c.network.loss << " dup=" << c.network.duplicate;

  // Nodes start at random moments of the first second.
  for (int i = 0; i < n; ++i) {
    c.At(c.now() + milliseconds(Uniform(rng, 0, 1000)), [&c, i] { c.Start(i); });
  }

  // --- chaos: a fault every 50 ms to 2 s for 5 to 20 s ---
  const auto chaos_end = c.now() + milliseconds(Uniform(rng, 5000, 20000));
  // Every fault checks `over`: some (the end of a loss burst, the stop after
  // a resignation) fall after the chaos phase and must not disturb settling.
  bool over = false;
  auto chaos = [&c, &over](SteadyTime t, std::function<void()> f) {
    c.At(t, [&over, f = std::move(f)] {
      if (!over) f();
    });
  };
  for (auto t = c.now() + 1s; t < chaos_end; t += milliseconds(Uniform(rng, 50, 2000))) {
    const int kind = Uniform(rng, 0, 99);
    const int target = Uniform(rng, 0, n - 1);
    if (kind < 22) {
      chaos(t, [&c, target] { c.Crash(target); });
    } else if (kind < 44) {
      chaos(t, [&c, target] { c.Start(target); });
    } else if (kind < 56) {
      const int parts = Uniform(rng, 2, 3);
      std::vector<int> groups(n);
      for (auto& g : groups) g = Uniform(rng, 0, parts - 1);
      chaos(t, [&c, groups] { c.Partition(groups); });
    } else if (kind < 66) {
      chaos(t, [&c] { c.Heal(); });
    } else if (kind < 74) {
      const bool force = Uniform(rng, 0, 1) == 0;
      chaos(t, [&c, target, force] {
        if (c.Up(target)) (void)c.election(target)->Trigger(c.now(), force);
      });
    } else if (kind < 80) {  // graceful shutdown: resign, then stop (always)
      const auto stop_after = milliseconds(Uniform(rng, 0, 50));
      chaos(t, [&c, target, stop_after] {
        if (!c.Up(target)) return;
        c.election(target)->Resign(c.now());
        c.At(c.now() + stop_after, [&c, target] { c.Crash(target); });
      });
    } else if (kind < 90) {  // electorate change on whoever is admin
      const bool add = Uniform(rng, 0, 1) == 0;
      const std::string who = "n" + std::to_string(Uniform(rng, 0, capable - 1));
      chaos(t, [&c, add, who, n] {
        for (int i = 0; i < n; ++i) {
          if (!c.Up(i) || c.election(i)->role() != Role::kAdmin) continue;
          if (add) {
            (void)c.election(i)->AddMember(who, c.now());
          } else {
            (void)c.election(i)->RemoveMember(who, c.now());
          }
        }
      });
    } else {  // a burst of heavy loss
      const double before = c.network.loss;
      chaos(t, [&c] { c.network.loss = 0.7; });
      chaos(t + milliseconds(Uniform(rng, 100, 3000)), [&c, before] { c.network.loss = before; });
    }
  }
  c.RunUntil(chaos_end + 100ms);  // a resigning node has stopped

  // --- settle: heal, restart everything, a reliable network ---
  Outcome out;
  c.At(c.now(), [&c, &over, n] {
    over = true;
    c.Heal();
    c.network.loss = 0;
    c.network.duplicate = 0;
    c.network.slow = 0;
    c.network.max_delay = microseconds(3000);
    for (int i = 0; i < n; ++i) c.Start(i);
  });
  const auto settle_start = c.now();
  // Stable means: one agreed admin for two election timeouts.
  SteadyTime agreed_since{};
  int agreed = -1;
  while (c.violation.empty() && c.now() - settle_start < kSettle) {
    c.RunFor(10ms);
    const int a = c.AgreedAdmin();
    if (a != agreed) {
      agreed = a;
      agreed_since = c.now();
    }
    if (agreed >= 0 && c.now() - agreed_since >= base.election_timeout * 2) {
      out.settle_ms = std::chrono::duration<double, std::milli>(agreed_since - settle_start).count();
      break;
    }
  }
  // The electorate may have lost its last admin-capable member through a
  // removal; every scenario above only removes capable nodes while adding
  // capable ones, and never removes the last member, so an admin must exist.
  if (c.violation.empty() && out.settle_ms < 0) {
    c.Fail("no agreed admin " + std::to_string(std::chrono::duration_cast<milliseconds>(kSettle).count()) +
           " ms after healing");
  }
  for (int i = 0; i < n; ++i) {
    if (c.Up(i) && !c.election(i)->GetSnapshot(c.now()).autopilot.empty()) out.autopilot_acted = true;
  }
  out.violation = c.violation;
  out.description = desc.str();
  out.elections = c.elections();
  out.trace = std::move(c.trace);
  return out;
}

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void RunRange(std::uint64_t first, std::uint64_t count) {
  if (const char* one = std::getenv("BZZZ_ELECTION_SEED"); one && *one) {
    const std::uint64_t seed = std::strtoull(one, nullptr, 10);
    Outcome o = RunScenario(seed, true);
    for (const auto& line : o.trace) std::cout << line << "\n";
    std::cout << "seed " << seed << ": " << o.description << "\n";
    EXPECT_EQ(o.violation, "") << "seed " << seed;
    return;
  }
  std::vector<double> settle;
  std::uint64_t elections = 0, autopilot = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    Outcome o = RunScenario(seed, false);
    if (!o.violation.empty()) {
      Outcome traced = RunScenario(seed, true);
      const std::size_t from = traced.trace.size() > 60 ? traced.trace.size() - 60 : 0;
      for (std::size_t i = from; i < traced.trace.size(); ++i) std::cout << traced.trace[i] << "\n";
      ADD_FAILURE() << "seed " << seed << " (" << o.description << "): " << o.violation
                    << "\nreplay: BZZZ_ELECTION_SEED=" << seed << " ./bzzz_election_sim_test";
      return;
    }
    settle.push_back(o.settle_ms);
    elections += o.elections;
    autopilot += o.autopilot_acted ? 1 : 0;
  }
  std::sort(settle.begin(), settle.end());
  std::cout << count << " scenarios (seeds " << first << ".." << first + count - 1 << "), " << elections
            << " elections, " << autopilot << " with electorate changes by the autopilot"
            << "; time to an agreed admin after healing: median " << settle[settle.size() / 2]
            << " ms, p99 " << settle[settle.size() * 99 / 100] << " ms, max " << settle.back() << " ms\n";
}

// Two halves, so that ctest runs them on both cores.
TEST(ElectionSimulation, SeededScenariosFirstHalf) {
  const std::uint64_t total = EnvOr("BZZZ_ELECTION_SCENARIOS", kDefaultScenarios);
  RunRange(1, total / 2);
}

TEST(ElectionSimulation, SeededScenariosSecondHalf) {
  if (std::getenv("BZZZ_ELECTION_SEED")) GTEST_SKIP() << "replaying one seed";
  const std::uint64_t total = EnvOr("BZZZ_ELECTION_SCENARIOS", kDefaultScenarios);
  RunRange(1 + total / 2, total - total / 2);
}

}  // namespace
}  // namespace bzzz::election::sim
