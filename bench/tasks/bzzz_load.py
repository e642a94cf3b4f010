#!/usr/bin/env python3
"""Load one phase of the task benchmark onto one or more bzzz nodes.

Starts one wrk per node (submit.lua: POST /api/v1/tasks, no-op builtin task,
keep-alive connections), watches every node's /metrics and prints one JSON
line with the figures of the phase:

  timed  wrk runs for --duration; then waits until every accepted task has
         succeeded. submit rate = wrk's 201s / wrk's duration.
  quota  --tasks in all, split over the nodes; stops wrk (SIGINT) once the
         nodes have created them all, waits until that many have succeeded.
         submit rate = tasks / time until created, e2e = tasks / time until
         succeeded (both from the start of wrk).
  paced  --rate tasks/s in all for --duration (per-connection delay), for the
         latency at a load below saturation.

Latency (submit -> succeeded) is the delta over the phase of the node's own
histogram no_task_latency_seconds{executor="builtin"} (steady clock, in
process); quantiles are interpolated linearly within a bucket, as
Prometheus' histogram_quantile does, so they are only as fine as the buckets
(0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10 ms ...).

CPU: core-seconds of the server processes (--pid; --pid-tree counts a process
with its children, the PostgreSQL server with its backends), of the wrk processes
(rusage at exit) and of everything else on the machine (from /proc/stat), each
divided by the phase's wall time, i.e. in cores.
"""
import argparse
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
COUNTER = re.compile(r'^no_tasks_total\{([^}]*)\}\s+([0-9.eE+-]+)$')
BUCKET = re.compile(r'^no_task_latency_seconds_bucket\{([^}]*)\}\s+([0-9.eE+-]+)$')


def labels(text):
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def scrape(url):
    """-> (created, succeeded, {le: cumulative count}) for executor builtin."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        body = r.read().decode()
    created = succeeded = 0.0
    buckets = {}
    for line in body.splitlines():
        if not line.startswith("no_task"):
            continue
        m = COUNTER.match(line)
        if m:
            lab = labels(m.group(1))
            if lab.get("executor") == "builtin":
                if lab.get("state") == "created":
                    created += float(m.group(2))
                elif lab.get("state") == "succeeded":
                    succeeded += float(m.group(2))
            continue
        m = BUCKET.match(line)
        if m:
            lab = labels(m.group(1))
            if lab.get("executor") == "builtin":
                le = lab["le"]
                buckets[math.inf if le == "+Inf" else float(le)] = float(m.group(2))
    return created, succeeded, buckets


def scrape_all(urls):
    c = s = 0.0
    b = {}
    for u in urls:
        c1, s1, b1 = scrape(u)
        c += c1
        s += s1
        for k, v in b1.items():
            b[k] = b.get(k, 0.0) + v
    return c, s, b


def quantile(q, buckets):
    """histogram_quantile: linear interpolation within the bucket."""
    items = sorted(buckets.items())
    total = items[-1][1] if items else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in items:
        if count >= rank:
            if math.isinf(le):
                return lower  # past the last finite bound: the bound itself
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def probe(url, token, stop, out):
    """One client, one task at a time: POST, then long-poll the task's events
    until it is finished (the node answers once the success is written).
    Appends the client-observed seconds of each task to `out`."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    body = '{"executor":"builtin","input":{"op":"echo","value":1}}'
    while not stop.is_set():
        t = time.perf_counter()
        conn.request("POST", "/api/v1/tasks", body, auth)
        r = conn.getresponse()
        task = json.loads(r.read())
        if r.status != 201:
            time.sleep(0.01)
            continue
        after, finished = task.get("event_count", 0), task.get("state") in ("succeeded", "failed", "dead", "cancelled")
        while not finished:
            conn.request("GET", f"/api/v1/tasks/{task['id']}/events?after={after}&wait_ms=5000", headers=auth)
            r = conn.getresponse()
            ev = json.loads(r.read())
            after, finished = ev.get("next", after + 1) - 1, ev.get("finished", False)
        out.append(time.perf_counter() - t)
        time.sleep(0.005)  # about 150 probes/s at most: a small share of the load


def batches(urls, token):
    """Sum of committed_batches (group commits) over the nodes."""
    n = 0
    for u in urls:
        req = urllib.request.Request(u + "/api/v1/tasks/stats", headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=30) as r:
            n += json.load(r).get("committed_batches", 0)
    return n


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except OSError:
        return 0.0


def tree_cpu(root):
    """CPU seconds of `root` and of its children (PostgreSQL's postmaster and
    its backends). A child that exits between two readings takes its CPU
    with it: pooled connections live through a phase, so little is lost."""
    total = proc_cpu(root)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            pass
    return total


def thread_cpu(pid):
    """{tid: cpu seconds} of every thread of `pid`."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[tid] = (int(fields[11]) + int(fields[12])) / TICK
            except OSError:
                pass
    except OSError:
        pass
    return out


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return (sum(v[:8]) - idle) / TICK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", action="append", required=True, help="http://127.0.0.1:PORT (repeatable)")
    ap.add_argument("--pid", action="append", type=int, default=[], help="server pid (repeatable)")
    ap.add_argument("--pid-tree", action="append", type=int, default=[],
                    help="a process of the system counted with its children, e.g. the postmaster (repeatable)")
    ap.add_argument("--store", default="sqlite", help="the nodes' store, for the report")
    ap.add_argument("--token", required=True)
    ap.add_argument("--mode", choices=["timed", "quota", "paced"], required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--tasks", type=int, default=50000)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--connections", type=int, default=64, help="per node")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads per node")
    ap.add_argument("--timeout", type=float, default=120, help="give up waiting for completion after this")
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between scrapes of /metrics")
    ap.add_argument("--probe", action="store_true",
                    help="paced: also one client doing POST + long poll until finished, one task at a time")
    args = ap.parse_args()

    urls = [u.rstrip("/") for u in args.node]
    n_nodes = len(urls)
    threads = args.threads
    conns = max(args.connections, threads)
    env = dict(os.environ, BZZZ_BENCH_TOKEN=args.token)
    quota_per_thread = 0
    duration = args.duration
    if args.mode == "quota":
        quota_per_thread = math.ceil(args.tasks / n_nodes / threads)
        duration = args.timeout  # stopped by SIGINT once the tasks exist
    if args.mode == "paced":
        # Each connection: one request, then `delay` ms; the round trip is
        # small against it at the rates this is meant for.
        delay_ms = max(1, round(1000.0 * conns * n_nodes / args.rate))
        env["BZZZ_BENCH_DELAY_MS"] = str(delay_ms)

    batches0 = batches(urls, args.token)
    c0, s0, b0 = scrape_all(urls)
    server_cpu = lambda: sum(proc_cpu(p) for p in args.pid) + sum(tree_cpu(p) for p in args.pid_tree)
    cpu0 = server_cpu()
    threads0 = thread_cpu(args.pid[0]) if args.pid else {}
    busy0 = machine_busy()
    self0 = time.process_time()
    t0 = time.monotonic()
    procs = []
    for u in urls:
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(math.ceil(duration))}s", "--timeout", "10s",
               "-s", os.path.join(HERE, "submit.lua"), u + "/api/v1/tasks", "--", str(quota_per_thread)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True))
    probes, probe_stop, prober = [], threading.Event(), None
    if args.probe and args.mode == "paced":
        prober = threading.Thread(target=probe, args=(urls[0], args.token, probe_stop, probes), daemon=True)
        prober.start()
    rusage = {}
    t_sub = t_done = None
    interrupted = False
    created = succeeded = 0.0
    deadline = t0 + duration + args.timeout
    try:
        while True:
            time.sleep(args.poll)
            now = time.monotonic()
            for p in procs:
                if p.pid not in rusage:
                    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        rusage[p.pid] = ru
                        p.returncode = os.waitstatus_to_exitcode(status)
            c, s, _ = scrape_all(urls)
            created, succeeded = c - c0, s - s0
            wrk_done = len(rusage) == len(procs)
            if args.mode == "quota":
                if t_sub is None and created >= args.tasks:
                    t_sub = now - t0
                if t_sub is not None and not interrupted:
                    for p in procs:
                        if p.pid not in rusage:
                            p.send_signal(signal.SIGINT)
                    interrupted = True
                if succeeded >= args.tasks:
                    t_done = now - t0
            else:
                if wrk_done and t_sub is None:
                    t_sub = now - t0
                if wrk_done and succeeded >= created:
                    t_done = now - t0
            if t_done is not None and wrk_done:
                break
            if t_done is not None and args.mode == "quota" and now - t0 > t_done + 5:
                break  # wrk ignores SIGINT? (should not happen)
            if now > deadline:
                break
    finally:
        for p in procs:
            if p.pid not in rusage:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                rusage[p.pid] = ru
                p.returncode = os.waitstatus_to_exitcode(status)
    probe_stop.set()
    if prober:
        prober.join(timeout=10)
    wall = time.monotonic() - t0
    cpu_server = server_cpu() - cpu0
    threads1 = thread_cpu(args.pid[0]) if args.pid else {}
    busiest = sorted(((v - threads0.get(k, 0.0)) / wall for k, v in threads1.items()), reverse=True)[:4]
    busy = machine_busy() - busy0
    cpu_self = time.process_time() - self0
    cpu_wrk = sum(ru.ru_utime + ru.ru_stime for ru in rusage.values())
    _, _, b1 = scrape_all(urls)
    delta = {k: v - b0.get(k, 0.0) for k, v in b1.items()}
    commits = batches(urls, args.token) - batches0

    wrk = {"responses": 0, "created": 0, "throttled": 0, "other": 0, "socket_errors": 0, "secs": 0.0,
           "post_p50_ms": [], "post_p99_ms": []}
    for p in procs:
        out = p.stdout.read()
        line = next((l for l in out.splitlines() if l.startswith("SUBMIT ")), None)
        if line is None:
            print(f"bzzz_load: wrk printed no summary:\n{out}", file=sys.stderr)
            continue
        f = line.split()
        wrk["responses"] += int(f[1])
        wrk["created"] += int(f[2])
        wrk["throttled"] += int(f[3])
        wrk["other"] += int(f[4])
        wrk["socket_errors"] += int(f[5])
        wrk["secs"] = max(wrk["secs"], float(f[6]))
        wrk["post_p50_ms"].append(float(f[7]))
        wrk["post_p99_ms"].append(float(f[8]))

    complete = t_done is not None
    if args.mode == "quota":
        submit_rate = args.tasks / t_sub if t_sub else None
        e2e_rate = args.tasks / t_done if complete else None
    else:
        submit_rate = wrk["created"] / wrk["secs"] if wrk["secs"] else None
        e2e_rate = succeeded / t_done if complete else None
    p50, p99 = quantile(0.5, delta), quantile(0.99, delta)
    probes.sort()
    pq = lambda q: probes[min(len(probes) - 1, int(q * len(probes)))] * 1000 if probes else None
    r = lambda x, n=1: None if x is None else round(x, n)
    print(json.dumps({
        "system": "bzzz",
        "case": args.label,
        "nodes": n_nodes,
        "store": args.store,
        "mode": args.mode,
        "complete": complete,
        "tasks_created": int(created),
        "tasks_succeeded": int(succeeded),
        "submit_per_s": r(submit_rate, 0),
        "e2e_per_s": r(e2e_rate, 0),
        "p50_ms": r(p50 * 1000 if p50 is not None else None, 3),
        "p99_ms": r(p99 * 1000 if p99 is not None else None, 3),
        "latency_samples": int(max(delta.values(), default=0)),
        "post_p50_ms": r(max(wrk["post_p50_ms"], default=None), 3),
        "post_p99_ms": r(max(wrk["post_p99_ms"], default=None), 3),
        "probe_n": len(probes) if prober else None,
        "probe_p50_ms": r(pq(0.5), 3) if prober else None,
        "probe_p99_ms": r(pq(0.99), 3) if prober else None,
        "http_429": wrk["throttled"],
        "http_other": wrk["other"],
        "socket_errors": wrk["socket_errors"],
        "group_commits": commits,
        "tasks_per_commit": r(None if not commits else succeeded / commits, 1),
        "wall_s": r(wall, 2),
        "t_submitted_s": r(t_sub, 3),
        "t_done_s": r(t_done, 3),
        "cores_server": r(cpu_server / wall, 2),
        "cores_loadgen": r(cpu_wrk / wall, 2),
        "cores_other": r(max(0.0, busy - cpu_server - cpu_wrk - cpu_self) / wall, 2),
        "busiest_threads_cores": [r(x, 2) for x in busiest],  # first node's threads
        "wrk": f"-t{threads} -c{conns} per node" + (f", delay {env['BZZZ_BENCH_DELAY_MS']} ms" if args.mode == "paced" else ""),
    }), flush=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
