#!/usr/bin/env python3
"""Election failover benchmark: kill -9 of the admin (bzzz) or leader (etcd)
in a 3-member cluster on 127.0.0.1, N trials, time until every survivor
reports the same new leader. Prints one JSON line per system.

  failover.py bzzz --binary build/bin/bzzz --trials 20
  failover.py etcd --trials 20
"""
import argparse, json, os, random, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

TOKEN = "bench-election-" + os.urandom(12).hex()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, data=None, headers=None, timeout=0.5):
    try:
        req = urllib.request.Request(url, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except Exception:
        return None


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


class Bzzz:
    name = "bzzz"

    def __init__(self, binary, workdir):
        self.binary, self.dir = binary, workdir
        self.boot_port = free_port()
        self.http = [free_port() for _ in range(3)]
        self.procs = [None] * 3
        # Membership: n0 founds the cluster offline; the others join with tokens.
        n0 = os.path.join(workdir, "n0")
        subprocess.run([binary, "cluster", "init", "--data-dir", n0], check=True, capture_output=True)

        def token(role, uses):
            out = subprocess.run([binary, "cluster", "token", "create", "--data-dir", n0, "--role", role, "--uses",
                                  str(uses), "--ttl", "24h"], check=True, capture_output=True, text=True)
            return out.stdout.strip()

        self.join = token("admin-capable", 2)
        self.boot = subprocess.Popen([binary, "dht-bootstrap", "--port", str(self.boot_port), "--data-dir",
                                      os.path.join(workdir, "boot"), "--join", token("bootstrap", 1)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3):
            self.start(i)

    def start(self, i):
        env = dict(os.environ, BZZZ_ADMIN_TOKEN=TOKEN)
        log = open(os.path.join(self.dir, f"n{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [self.binary, "serve", "--data-dir", os.path.join(self.dir, f"n{i}"), "--http-listen",
             f"127.0.0.1:{self.http[i]}", "--p2p-listen", "127.0.0.1:0", "--node-name", f"n{i}", "--bootstrap",
             f"127.0.0.1:{self.boot_port}", "--bootstrap-expect", "3", "--join", self.join, "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn")],
            stdout=log, stderr=log, env=env)

    def leader(self, i):
        s = get_json(f"http://127.0.0.1:{self.http[i]}/api/election/status",
                     headers={"Authorization": "Bearer " + TOKEN})
        return s["admin_id"] if s else None

    def member_of(self, leader_id):
        for i in range(3):
            s = get_json(f"http://127.0.0.1:{self.http[i]}/api/election/status",
                         headers={"Authorization": "Bearer " + TOKEN})
            if s and s["node_id"] == leader_id:
                return i
        return None

    def stop(self):
        for p in self.procs + [self.boot]:
            if p and p.poll() is None:
                p.kill()
                p.wait()


class Etcd:
    name = "etcd"

    def __init__(self, workdir):
        self.dir = workdir
        self.client = [free_port() for _ in range(3)]
        self.peer = [free_port() for _ in range(3)]
        self.procs = [None] * 3
        self.cluster = ",".join(f"e{i}=http://127.0.0.1:{self.peer[i]}" for i in range(3))
        for i in range(3):
            self.start(i)

    def start(self, i):
        log = open(os.path.join(self.dir, f"e{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            ["etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.dir, f"e{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
             "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", "bzzz-bench"], stdout=log, stderr=log)

    def status(self, i):
        return get_json(f"http://127.0.0.1:{self.client[i]}/v3/maintenance/status", data=b"{}",
                        headers={"Content-Type": "application/json"})

    def leader(self, i):
        s = self.status(i)
        return s.get("leader") if s else None

    def member_of(self, leader_id):
        for i in range(3):
            s = self.status(i)
            if s and s["header"]["member_id"] == leader_id:
                return i
        return None

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()


def agreed(system, nodes):
    leaders = [system.leader(i) for i in nodes]
    return leaders[0] if leaders[0] and all(l == leaders[0] for l in leaders) else None


def wait_agreed(system, nodes, timeout, exclude=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        l = agreed(system, nodes)
        if l and l != exclude:
            return l
        time.sleep(0.005)
    return None


def run(system, trials, settle):
    times = []
    leader = wait_agreed(system, [0, 1, 2], 60)
    if not leader:
        raise SystemExit(f"{system.name}: no leader at start")
    for t in range(trials):
        victim = system.member_of(leader)
        survivors = [i for i in range(3) if i != victim]
        time.sleep(random.uniform(0, 0.3))  # a random phase against the heartbeats
        system.procs[victim].send_signal(signal.SIGKILL)
        system.procs[victim].wait()
        t0 = time.monotonic()
        new = wait_agreed(system, survivors, 30, exclude=leader)
        if not new:
            if hasattr(system, "http"):
                for i in survivors:
                    print(get_json(f"http://127.0.0.1:{system.http[i]}/api/election/status",
                                   headers={"Authorization": "Bearer " + TOKEN}), file=sys.stderr)
            raise SystemExit(f"{system.name}: trial {t}: no new leader within 30 s")
        times.append((time.monotonic() - t0) * 1000)
        print(f"  {system.name} trial {t + 1}: {times[-1]:.0f} ms", file=sys.stderr)
        system.start(victim)
        leader = wait_agreed(system, [0, 1, 2], 60)
        if not leader:
            raise SystemExit(f"{system.name}: trial {t}: the restarted member did not rejoin")
        time.sleep(settle)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("system", choices=["bzzz", "etcd"])
    ap.add_argument("--binary", default="build/bin/bzzz")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--settle", type=float, default=2.5, help="seconds between a rejoin and the next kill")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix=f"bzzz-bench-election-{a.system}-")
    system = Bzzz(a.binary, work) if a.system == "bzzz" else Etcd(work)
    try:
        times = run(system, a.trials, a.settle)
    finally:
        system.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"system": a.system, "bench": "failover_kill9_3_members", "trials": len(times),
                      "median_ms": round(statistics.median(times)), "p90_ms": round(pct(times, 90)),
                      "min_ms": round(min(times)), "max_ms": round(max(times)),
                      "load1": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
