// What the Node anchors of bench/tasks share (bullmq_bench.mjs,
// graphile_bench.mjs): CPU accounting from /proc, quantiles, and the
// producer's wait for its worker process's messages.
import { readFileSync, readdirSync } from "node:fs";

export const TICK = 100;  // USER_HZ on Linux

// The fields of /proc/<pid>/stat after the command name, or null.
export function statFields(pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop().trim().split(/\s+/);
  } catch { return null; }
}

// utime + stime of one process, in seconds.
export function procCpu(pid) {
  if (!pid) return 0;
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / TICK : 0;
}

// PostgreSQL runs a process per connection and per background task, all
// children of the postmaster: their utime+stime (found by scanning /proc for
// ppid == the postmaster), plus the postmaster's own. A child that exits
// between the two readings lands in the postmaster's cutime+cstime once
// reaped, which are added too; what is lost is a child that exits before it
// is reaped at the end reading (a moment).
export function treeCpu(pid) {
  if (!pid) return 0;
  const root = statFields(pid);
  if (!root) return 0;
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  for (const e of readdirSync("/proc")) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const f = statFields(e);
    if (f && Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / TICK;
}

// Busy CPU seconds of the whole machine (everything but idle and iowait).
export function machineBusy() {
  const v = readFileSync("/proc/stat", "utf8").split("\n")[0].split(/\s+/).slice(1, 9).map(Number);
  return (v.reduce((x, y) => x + y, 0) - v[3] - v[4]) / TICK;
}

// CPU seconds of this process.
export const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

// Linear interpolation between the closest ranks of a sorted array.
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// Collects the messages of a forked child; returns next(type, timeoutMs):
// the first message of that type (null after the timeout), throwing when
// the child exited with a non-zero code. `who` names it in that error.
export function childMessages(child, who) {
  const messages = [];
  let wake = null;
  child.on("message", (m) => { messages.push(m); if (wake) { wake(); wake = null; } });
  child.on("exit", (code) => { if (code) { messages.push({ type: "exit", code }); if (wake) wake(); } });
  return async (type, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = messages.findIndex((m) => m.type === type || m.type === "exit");
      if (i >= 0) {
        const m = messages.splice(i, 1)[0];
        if (m.type === "exit") throw new Error(`${who} exited with ${m.code}`);
        return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise((r) => { wake = r; setTimeout(r, Math.min(left, 1000)); });
    }
  };
}
