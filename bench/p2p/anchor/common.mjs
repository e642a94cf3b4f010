// Shared helpers for the js-libp2p anchor benchmarks (pubsub.mjs, dht.mjs).
// Every node listens on 127.0.0.1 only; no peer discovery module is loaded
// (no mDNS, no bootstrap list): peers only ever learn each other's loopback
// addresses from the orchestrator.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export const HERE = path.dirname(fileURLToPath(import.meta.url))
export const LISTEN = ['/ip4/127.0.0.1/tcp/0']

// All peers share the source address 127.0.0.1, so libp2p's default inbound
// rate limit (inboundConnectionThreshold: 5 connections/s per host) would
// refuse connections (ECONNRESET during the noise handshake) as soon as a few
// nodes dial one node at once. Whitelist loopback; every other connection
// manager setting stays at its default.
export const CONNECTION_MANAGER = { allow: ['/ip4/127.0.0.1'] }

// Clock valid across processes on one Linux machine: process.hrtime uses
// CLOCK_MONOTONIC, which is system-wide (not per process), in ns.
export function nowMs () {
  return Number(process.hrtime.bigint()) / 1e6
}

export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

export function log (...args) {
  const tag = process.env.BENCH_TAG ?? 'main'
  console.error(`[${new Date().toISOString().slice(11, 23)} ${tag}]`, ...args)
}

// Nearest-rank percentile on an ascending-sorted array.
export function pct (sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

export const round = (x, d = 2) => x == null ? null : Math.round(x * 10 ** d) / 10 ** d

export function envInt (name, dflt) {
  const v = process.env[name]
  if (v == null || v === '') return dflt
  const n = Number(v)
  if (!Number.isFinite(n)) throw new Error(`bad ${name}=${v}`)
  return n
}

// ---- child side -----------------------------------------------------------

// A node process: bounded life, exits when the orchestrator goes away, and
// answers {id, cmd, ...} requests with {id, ok, result|error}.
export function childMain (handlers, maxLifeMs) {
  setTimeout(() => {
    log(`child lifetime ${maxLifeMs} ms exceeded, exiting`)
    process.exit(3)
  }, maxLifeMs).unref()
  process.on('disconnect', () => process.exit(0))
  // EPIPE on the IPC channel = the orchestrator is gone
  process.on('error', () => process.exit(0))
  process.on('message', async (msg) => {
    if (msg == null || msg.id == null) {
      handlers.onEvent?.(msg)
      return
    }
    try {
      const h = handlers[msg.cmd]
      if (h == null) throw new Error(`unknown cmd ${msg.cmd}`)
      const result = await h(msg)
      if (process.connected) process.send({ id: msg.id, ok: true, result })
    } catch (err) {
      if (process.connected) process.send({ id: msg.id, ok: false, error: String(err?.stack ?? err) })
    }
  })
}

// ---- orchestrator side ----------------------------------------------------

const children = new Set()

// Start `node --import polyfill.mjs script args...` under coreutils `timeout`
// so that every node process is bounded in time even if the orchestrator
// dies; stdout of the child goes to our stderr (our stdout is for JSON only).
export function startChild (script, args, tag, maxLifeSec) {
  const nodeArgs = ['--import', path.join(HERE, 'polyfill.mjs'), path.join(HERE, script), ...args]
  const cp = spawn('timeout', ['-k', '3', String(maxLifeSec), process.execPath, ...nodeArgs], {
    stdio: ['ignore', 2, 2, 'ipc'],
    env: { ...process.env, BENCH_TAG: tag }
  })
  children.add(cp)
  let seq = 0
  const pending = new Map()
  const listeners = []
  cp.on('message', (msg) => {
    if (msg?.id != null && pending.has(msg.id)) {
      const { resolve, reject, timer } = pending.get(msg.id)
      pending.delete(msg.id)
      clearTimeout(timer)
      msg.ok ? resolve(msg.result) : reject(new Error(`${tag}: ${msg.error}`))
    } else {
      for (const l of listeners) l(msg)
    }
  })
  cp.on('exit', (code, signal) => {
    children.delete(cp)
    for (const { reject, timer } of pending.values()) {
      clearTimeout(timer)
      reject(new Error(`${tag} exited (code ${code}, signal ${signal})`))
    }
    pending.clear()
  })
  return {
    tag,
    proc: cp,
    call (cmd, args = {}, timeoutMs = 30_000) {
      const id = ++seq
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`${tag}: ${cmd} timed out after ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, { resolve, reject, timer })
        cp.send({ id, cmd, ...args })
      })
    },
    send (msg) {
      if (cp.connected) cp.send(msg)
    },
    onEvent (fn) { listeners.push(fn) }
  }
}

export function killChildren () {
  for (const cp of children) {
    try { cp.kill('SIGTERM') } catch {}
  }
}

// Bound the whole orchestrator run; always clean up children.
export function orchestratorGuard (maxMs) {
  const t = setTimeout(() => {
    log(`overall deadline ${maxMs} ms exceeded, killing nodes`)
    killChildren()
    process.exit(2)
  }, maxMs)
  t.unref()
  process.on('exit', killChildren)
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => { killChildren(); process.exit(130) })
  }
}
