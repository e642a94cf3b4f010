// An anchor of bench/tasks on PostgreSQL: graphile-worker, no-op jobs end to
// end. The producer (this process, WorkerUtils) and the runner (a child
// process, graphile-worker's run() with --concurrency workers) are separate
// Node processes, as in a real deployment; both talk to the PostgreSQL server
// given by --connection. Prints one JSON line per run, with the field names
// of bullmq_bench.mjs (run.sh reads both with jq).
//
//   node graphile_bench.mjs --connection postgres://postgres@127.0.0.1:PORT/DB
//        --mode add|bulk|paced [--jobs N] [--concurrency 10] [--inflight 64]
//        [--pool 10] [--chunk 1000] [--rate R] [--duration S] [--pg-pid PID]
//        [--label L]
//
//   add    N x utils.addJob(), --inflight calls outstanding at a time over the
//          producer's pool of --pool connections (graphile-worker's default
//          maxPoolSize is 10; one add_job() call per connection at a time)
//   bulk   N jobs in chunks of --chunk, one chunk at a time: utils.addJobs()
//          where WorkerUtils has it (0.17 and later); in 0.16 it has not, and
//          the chunk goes to the SQL function graphile_worker.add_jobs()
//          (documented, "experimental"), the very query utils.addJobs() runs
//          in 0.17. The JSON line says which ("producer", "bulk_api").
//   paced  --rate jobs/s for --duration s (addJob()s due every ~10 ms), for the
//          latency at a load below saturation
//
// Done = the runner's "job:complete" event without error. In 0.16
// "job:success" is emitted before the job's row is deleted (the completion),
// "job:complete" after that DELETE has been awaited, which is the point
// BullMQ's "completed" event stands for (emitted once moveToCompleted has
// been written to Redis). In 0.17 and later the completion is no longer
// awaited by the worker (fire and forget, optionally batched), so there the
// events come slightly early; "jobs_left" and "t_empty_s" (the time until no
// job of the run is left in graphile_worker.jobs) show the difference.
//
// Latency p50/p99: completion time in the runner (Date.now()) - job.created_at
// (PostgreSQL's now() in the add_job()/add_jobs() transaction, parsed by
// node-postgres into a Date, so truncated to the ms): 1 ms resolution, as in
// bullmq_bench.mjs. p50_client_ms/p99_client_ms measure from the producer's
// Date.now() just before the add (carried in the payload), which is where
// BullMQ's job.timestamp is taken; it includes the add's round trip.
//
// CPU: cores_server = PostgreSQL (the postmaster and all its children) + the
// graphile-worker runner process, as bullmq_bench.mjs counts redis-server +
// the BullMQ Worker process: the runner is part of the system under test, a
// job queue needs it to run jobs. cores_loadgen = the producer (this process).
//
// graphile-worker installs its schema (graphile_worker) on first use: the
// producer migrates, the runner starts and runs one warm-up job, all before
// the timed phase. Leftover "noop" jobs of an aborted earlier run are deleted
// first (use a database of its own for the benchmark).
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import { childMessages, cpuSeconds, machineBusy, quantile, treeCpu } from "./common.mjs";

function parseArgs(argv) {
  const a = { connection: process.env.DATABASE_URL || "", mode: "add", jobs: 50000, concurrency: 10, inflight: 64,
              pool: 10, chunk: 1000, rate: 2000, duration: 5, pgPid: 0, label: "", role: "producer" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case "--connection": a.connection = v; i++; break;
      case "--mode": a.mode = v; i++; break;
      case "--jobs": a.jobs = Number(v); i++; break;
      case "--concurrency": a.concurrency = Number(v); i++; break;
      case "--inflight": a.inflight = Number(v); i++; break;
      case "--pool": a.pool = Number(v); i++; break;
      case "--chunk": a.chunk = Number(v); i++; break;
      case "--rate": a.rate = Number(v); i++; break;
      case "--duration": a.duration = Number(v); i++; break;
      case "--pg-pid": a.pgPid = Number(v); i++; break;
      case "--label": a.label = v; i++; break;
      case "--worker": a.role = "worker"; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.connection) throw new Error("--connection postgres://... is required");
  return a;
}


// graphile-worker logs every job at "info" (and to stdout); the JSON line must
// be the only thing on stdout. Warnings and errors go to stderr.
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});

// ---- runner (child process) ----
async function runWorker(a) {
  let completed = 0, failed = 0, target = Infinity, reported = false;
  let lat = [], latClient = [];
  const runner = await run({
    connectionString: a.connection,
    concurrency: a.concurrency,
    maxPoolSize: Math.max(10, a.concurrency),
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quietLogger,
    taskList: { noop: async () => {} },
  });
  const check = () => {
    if (!reported && completed + failed >= target) {
      reported = true;
      process.send({ type: "done", t: Date.now(), completed, failed, cpu: cpuSeconds(), lat, latClient });
    }
  };
  runner.events.on("job:complete", ({ job, error }) => {
    const t = Date.now();
    if (error) { failed++; } else {
      completed++;
      lat.push(t - job.created_at.getTime());
      if (job.payload && job.payload.t) latClient.push(t - job.payload.t);
    }
    check();
  });
  runner.events.on("pool:listen:error", ({ error }) => console.error("runner: listen:", error?.message));
  process.on("message", async (m) => {
    if (m.type === "target") { target = m.n; check(); }
    if (m.type === "reset") {
      completed = 0; failed = 0; target = Infinity; reported = false; lat = []; latClient = [];
      process.send({ type: "ready", cpu: cpuSeconds() });
    }
    if (m.type === "stop") { await runner.stop(); process.exit(0); }
  });
  process.send({ type: "started" });
}

// ---- producer / orchestrator ----

async function runProducer(a) {
  const utils = await makeWorkerUtils({ connectionString: a.connection, maxPoolSize: a.pool, logger: quietLogger });
  await utils.migrate();
  const q = async (sql, args) => (await utils.withPgClient((c) => c.query(sql, args))).rows;
  const stale = await q("select graphile_worker.complete_jobs(array(select id from graphile_worker.jobs " +
                        "where task_identifier = 'noop')) as id");
  if (stale.length) console.error(`graphile_bench: deleted ${stale.length} leftover noop jobs`);

  const self = fileURLToPath(import.meta.url);
  // The runner's stdout goes to our stderr: stdout carries the JSON line only.
  const child = fork(self, ["--worker", "--connection", a.connection, "--concurrency", String(a.concurrency)], {
    stdio: ["ignore", 2, "inherit", "ipc"], env: { ...process.env, NO_LOG_SUCCESS: "1" },
  });
  const next = childMessages(child, "runner");
  if (!(await next("started", 30000))) throw new Error("runner did not start");
  // Warm-up: one job through the whole path (task identifier, plans, LISTEN),
  // and every connection of the producer's pool opened.
  await utils.addJob("noop", { op: "echo", value: 0 });
  child.send({ type: "target", n: 1 });
  if (!(await next("done", 30000))) throw new Error("warm-up job did not complete");
  await Promise.all(Array.from({ length: a.pool }, () => q("select 1")));
  child.send({ type: "reset" });
  const ready = await next("ready", 30000);
  if (!ready) throw new Error("runner did not become ready");

  const hasAddJobs = typeof utils.addJobs === "function";
  // What utils.addJobs() runs in 0.17 (helpers.js makeAddJobs), for 0.16.
  const sqlAddJobs = async (specs) => q(
    "select id from graphile_worker.add_jobs(array(select json_populate_recordset(null::graphile_worker.job_spec, $1::json)), false)",
    [JSON.stringify(specs.map((s) => ({ identifier: s.identifier, payload: s.payload })))]);
  const payload = () => ({ op: "echo", value: 1, t: Date.now() });
  let added = 0;
  const busy0 = machineBusy(), pg0 = treeCpu(a.pgPid), self0 = cpuSeconds(), worker0 = ready.cpu;
  const t0 = Date.now();
  if (a.mode === "add") {
    let issued = 0;
    const lane = async () => {
      while (issued < a.jobs) {
        issued++;
        await utils.addJob("noop", payload());
        added++;
      }
    };
    await Promise.all(Array.from({ length: a.inflight }, lane));
  } else if (a.mode === "bulk") {
    for (let done = 0; done < a.jobs; done += a.chunk) {
      const n = Math.min(a.chunk, a.jobs - done);
      const specs = Array.from({ length: n }, () => ({ identifier: "noop", payload: payload() }));
      const jobs = hasAddJobs ? await utils.addJobs(specs) : await sqlAddJobs(specs);
      added += jobs.length;
    }
  } else if (a.mode === "paced") {
    const pending = [];
    let issued = 0;
    const end = t0 + a.duration * 1000;
    for (let now = Date.now(); now < end; now = Date.now()) {
      const due = Math.floor((a.rate * (now - t0)) / 1000);
      for (; issued < due; issued++) pending.push(utils.addJob("noop", payload()).then(() => { added++; }));
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(pending);
  } else {
    throw new Error(`unknown mode ${a.mode}`);
  }
  const tSub = Date.now() - t0;
  child.send({ type: "target", n: added });
  const done = await next("done", 120000);
  const tDone = done ? done.t - t0 : null;
  const wall = (Math.max(Date.now(), done ? done.t : 0) - t0) / 1000;
  const cpuPg = treeCpu(a.pgPid) - pg0;
  const cpuWorker = done ? done.cpu - worker0 : 0;
  const cpuSelf = cpuSeconds() - self0;
  const busy = machineBusy() - busy0;

  // Is every job's row gone (the completion written)? Polled for up to 10 s.
  const left = async () => (await q("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'noop'"))[0].n;
  const jobsLeft = await left();
  let tEmpty = jobsLeft === 0 && done ? done.t - t0 : null;
  if (jobsLeft > 0) {
    for (const until = Date.now() + 10000; Date.now() < until;) {
      if ((await left()) === 0) { tEmpty = Date.now() - t0; break; }
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  const lat = done ? done.lat.sort((x, y) => x - y) : [];
  const latClient = done ? done.latClient.sort((x, y) => x - y) : [];
  const version = JSON.parse(readFileSync(new URL("./node_modules/graphile-worker/package.json", import.meta.url))).version;
  const pgVersion = (await q("show server_version"))[0].server_version;
  child.send({ type: "stop" });
  await new Promise((r) => { child.once("exit", r); setTimeout(r, 10000); });
  await utils.release();

  const r = (x, n = 1) => (x === null || x === undefined || Number.isNaN(x) ? null : Number(x.toFixed(n)));
  const bulkApi = hasAddJobs ? "WorkerUtils.addJobs" : "SQL graphile_worker.add_jobs (no WorkerUtils.addJobs in this version)";
  console.log(JSON.stringify({
    system: "graphile-worker",
    case: a.label || a.mode,
    mode: a.mode,
    nodes: 1,
    complete: Boolean(done),
    tasks_created: added,
    tasks_succeeded: done ? done.completed : null,
    failed: done ? done.failed : null,
    submit_per_s: r(added / (tSub / 1000), 0),
    e2e_per_s: done ? r(added / (tDone / 1000), 0) : null,
    p50_ms: r(quantile(lat, 0.5), 3),
    p99_ms: r(quantile(lat, 0.99), 3),
    p50_client_ms: r(quantile(latClient, 0.5), 3),
    p99_client_ms: r(quantile(latClient, 0.99), 3),
    latency_samples: lat.length,
    wall_s: r(wall, 2),
    t_submitted_s: r(tSub / 1000, 3),
    t_done_s: tDone === null ? null : r(tDone / 1000, 3),
    jobs_left: jobsLeft,
    t_empty_s: tEmpty === null ? null : r(tEmpty / 1000, 3),
    cores_server: r((cpuPg + cpuWorker) / wall, 2),
    cores_postgres: r(cpuPg / wall, 2),
    cores_worker: r(cpuWorker / wall, 2),
    cores_loadgen: r(cpuSelf / wall, 2),
    cores_other: r(Math.max(0, busy - cpuPg - cpuWorker - cpuSelf) / wall, 2),
    cores_note: "server = postgres (postmaster + children) + the graphile-worker runner process (part of the system, as BullMQ's Worker); loadgen = the producer",
    producer: a.mode === "add" ? `addJob, ${a.inflight} in flight, ${a.pool} connections`
      : a.mode === "bulk" ? `${hasAddJobs ? "addJobs" : "add_jobs() SQL"} x ${a.chunk}`
      : `addJob at ${a.rate}/s, ${a.pool} connections`,
    bulk_api: a.mode === "bulk" ? bulkApi : undefined,
    worker_concurrency: a.concurrency,
    poll_interval_ms: 1000,
    graphile_worker: version,
    postgres: pgVersion,
  }));
}

const a = parseArgs(process.argv.slice(2));
if (a.role === "worker") {
  runWorker(a).catch((e) => { console.error(e); process.exit(1); });
} else {
  runProducer(a).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
