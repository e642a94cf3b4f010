// The anchor of bench/tasks: BullMQ + redis-server, no-op jobs end to end.
// The producer (this process) and the Worker (a child process, concurrency
// 50) are separate Node processes, as in a real deployment; both talk to the
// redis-server that run.sh started. Prints one JSON line per run.
//
//   node bullmq_bench.mjs --port P --mode add|bulk|paced [--jobs N]
//        [--concurrency 50] [--inflight 64] [--chunk 1000] [--rate R]
//        [--duration S] [--redis-pid PID] [--label L]
//
//   add    N x queue.add(), --inflight calls outstanding at a time
//   bulk   N jobs with queue.addBulk() in chunks of --chunk, one at a time
//   paced  --rate jobs/s for --duration s (add()s due every ~10 ms), for the
//          latency at a load below saturation
//
// Latency: job.finishedOn - job.timestamp (enqueue -> completed, both set by
// BullMQ with Date.now(), so 1 ms resolution), read back from Redis after
// the run. Jobs are kept (removeOnComplete unset, BullMQ's default).
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";
import { childMessages, cpuSeconds, machineBusy, procCpu, quantile } from "./common.mjs";

function parseArgs(argv) {
  const a = { port: 6379, mode: "add", jobs: 50000, concurrency: 50, inflight: 64, chunk: 1000, rate: 2000,
              duration: 5, redisPid: 0, label: "", queue: "", role: "producer" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case "--port": a.port = Number(v); i++; break;
      case "--mode": a.mode = v; i++; break;
      case "--jobs": a.jobs = Number(v); i++; break;
      case "--concurrency": a.concurrency = Number(v); i++; break;
      case "--inflight": a.inflight = Number(v); i++; break;
      case "--chunk": a.chunk = Number(v); i++; break;
      case "--rate": a.rate = Number(v); i++; break;
      case "--duration": a.duration = Number(v); i++; break;
      case "--redis-pid": a.redisPid = Number(v); i++; break;
      case "--label": a.label = v; i++; break;
      case "--queue": a.queue = v; i++; break;
      case "--worker": a.role = "worker"; break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  return a;
}


// ---- worker (child process) ----
async function runWorker(a) {
  let completed = 0, failed = 0, target = Infinity, reported = false;
  const connection = { host: "127.0.0.1", port: a.port };
  const worker = new Worker(a.queue, async () => {}, { connection, concurrency: a.concurrency });
  const check = () => {
    if (!reported && completed + failed >= target) {
      reported = true;
      process.send({ type: "done", t: Date.now(), completed, failed, cpu: cpuSeconds() });
    }
  };
  worker.on("completed", () => { completed++; check(); });
  worker.on("failed", () => { failed++; check(); });
  worker.on("error", (e) => console.error("worker:", e.message));
  process.on("message", async (m) => {
    if (m.type === "target") { target = m.n; check(); }
    if (m.type === "stop") { await worker.close(); process.exit(0); }
  });
  await worker.waitUntilReady();
  process.send({ type: "ready", cpu: cpuSeconds() });
}

// ---- producer / orchestrator ----

async function runProducer(a) {
  const name = `bench-${a.mode}-${process.pid}-${Date.now()}`;
  const connection = { host: "127.0.0.1", port: a.port };
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const self = fileURLToPath(import.meta.url);
  const child = fork(self, ["--worker", "--port", String(a.port), "--queue", name, "--concurrency", String(a.concurrency)]);
  const next = childMessages(child, "worker");
  const ready = await next("ready", 30000);
  if (!ready) throw new Error("worker did not become ready");

  const data = { op: "echo", value: 1 };
  const ids = [];
  const busy0 = machineBusy(), redis0 = procCpu(a.redisPid), self0 = cpuSeconds(), worker0 = ready.cpu;
  const t0 = Date.now();
  if (a.mode === "add") {
    let issued = 0;
    const lane = async () => {
      while (issued < a.jobs) {
        issued++;
        const job = await queue.add("noop", data);
        ids.push(job.id);
      }
    };
    await Promise.all(Array.from({ length: a.inflight }, lane));
  } else if (a.mode === "bulk") {
    for (let done = 0; done < a.jobs; done += a.chunk) {
      const n = Math.min(a.chunk, a.jobs - done);
      const jobs = await queue.addBulk(Array.from({ length: n }, () => ({ name: "noop", data })));
      for (const j of jobs) ids.push(j.id);
    }
  } else if (a.mode === "paced") {
    const pending = [];
    let issued = 0;
    const end = t0 + a.duration * 1000;
    for (let now = Date.now(); now < end; now = Date.now()) {
      const due = Math.floor((a.rate * (now - t0)) / 1000);
      for (; issued < due; issued++) pending.push(queue.add("noop", data).then((j) => ids.push(j.id)));
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(pending);
  } else {
    throw new Error(`unknown mode ${a.mode}`);
  }
  const tSub = Date.now() - t0;
  child.send({ type: "target", n: ids.length });
  const done = await next("done", 120000);
  const tDone = done ? done.t - t0 : null;
  const wall = (Math.max(Date.now(), done ? done.t : 0) - t0) / 1000;
  const cpuRedis = procCpu(a.redisPid) - redis0;
  const cpuWorker = done ? done.cpu - worker0 : 0;
  const cpuSelf = cpuSeconds() - self0;
  const busy = machineBusy() - busy0;

  // Enqueue -> completed of every job, read back from Redis.
  const redis = new IORedis(connection);
  const lat = [];
  const prefix = `bull:${name}:`;
  for (let i = 0; i < ids.length; i += 5000) {
    const p = redis.pipeline();
    for (const id of ids.slice(i, i + 5000)) p.hmget(prefix + id, "timestamp", "finishedOn");
    for (const [err, v] of await p.exec()) {
      if (!err && v[0] && v[1]) lat.push(Number(v[1]) - Number(v[0]));
    }
  }
  lat.sort((x, y) => x - y);
  const version = JSON.parse(readFileSync(new URL("./node_modules/bullmq/package.json", import.meta.url))).version;
  const redisVersion = (await redis.info("server")).match(/redis_version:(\S+)/)?.[1];
  await redis.quit();
  child.send({ type: "stop" });
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();

  const r = (x, n = 1) => (x === null || x === undefined || Number.isNaN(x) ? null : Number(x.toFixed(n)));
  console.log(JSON.stringify({
    system: "bullmq",
    case: a.label || a.mode,
    mode: a.mode,
    complete: Boolean(done),
    tasks_created: ids.length,
    tasks_succeeded: done ? done.completed : null,
    failed: done ? done.failed : null,
    submit_per_s: r(ids.length / (tSub / 1000), 0),
    e2e_per_s: done ? r(ids.length / (tDone / 1000), 0) : null,
    p50_ms: r(quantile(lat, 0.5), 3),
    p99_ms: r(quantile(lat, 0.99), 3),
    latency_samples: lat.length,
    wall_s: r(wall, 2),
    t_submitted_s: r(tSub / 1000, 3),
    t_done_s: tDone === null ? null : r(tDone / 1000, 3),
    cores_server: r((cpuRedis + cpuWorker) / wall, 2),
    cores_redis: r(cpuRedis / wall, 2),
    cores_worker: r(cpuWorker / wall, 2),
    cores_loadgen: r(cpuSelf / wall, 2),
    cores_other: r(Math.max(0, busy - cpuRedis - cpuWorker - cpuSelf) / wall, 2),
    producer: a.mode === "add" ? `add, ${a.inflight} in flight` : a.mode === "bulk" ? `addBulk x ${a.chunk}` : `add at ${a.rate}/s`,
    worker_concurrency: a.concurrency,
    bullmq: version,
    redis: redisVersion,
  }));
}

const a = parseArgs(process.argv.slice(2));
if (a.role === "worker") {
  runWorker(a).catch((e) => { console.error(e); process.exit(1); });
} else {
  runProducer(a).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
