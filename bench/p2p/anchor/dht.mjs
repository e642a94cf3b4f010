// js-libp2p kad-dht anchor: DHT_NODES (10) nodes spread over DHT_PROCS OS
// processes (default: one process per node; DHT_PROCS=1 puts all nodes in
// one process), on 127.0.0.1, all in server mode (clientMode: false), own protocol id,
// no public bootstrappers. Bootstrap star (every node dials node 0), then we
// wait until every routing table holds all other nodes. Then DHT_OPS (200)
// puts of distinct keys, each from a random node, then DHT_OPS gets of those
// keys, each from a random node other than the one that put it; one
// operation at a time. Timing is taken inside the node process around the
// whole put()/get() iteration (IPC to the orchestrator is not included).
//
//   node --import ./polyfill.mjs dht.mjs            (orchestrator)
//
// Prints two JSON lines on stdout (dht_put, dht_get); progress on stderr.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, removePublicAddressesMapper, MessageType } from '@libp2p/kad-dht'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import {
  LISTEN, CONNECTION_MANAGER, nowMs, sleep, log, pct, round, envInt,
  childMain, startChild, orchestratorGuard, killChildren
} from './common.mjs'

const NODES = envInt('DHT_NODES', 10)
const PROCS = Math.max(1, Math.min(NODES, envInt('DHT_PROCS', NODES)))
const OPS = envInt('DHT_OPS', 200)
const VALUE_BYTES = envInt('DHT_VALUE_BYTES', 100)
const OP_TIMEOUT_MS = 10_000
const PHASE_SECS = envInt('DHT_PHASE_SECS', 40)
const CHILD_LIFE_SEC = 140
const OVERALL_MS = 130_000
const NS = 'bzzzbench'
const enc = new TextEncoder()

// ---------------------------------------------------------------- node
async function makeNode () {
  return createLibp2p({
    addresses: { listen: LISTEN },
    connectionManager: CONNECTION_MANAGER,
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(), // kad-dht needs it
      dht: kadDHT({
        protocol: '/bzzz-anchor/kad/1.0.0',
        clientMode: false,
        // loopback only: never keep/dial a public address
        peerInfoMapper: removePublicAddressesMapper,
        validators: { [NS]: async () => {} },
        selectors: { [NS]: () => 0 }
      })
    }
  })
}

// One OS process hosting `count` DHT nodes (count is 1 by default).
async function nodeMain (count) {
  const nodes = await Promise.all(Array.from({ length: count }, () => makeNode()))

  childMain({
    addrs: async ({ n }) => nodes[n].getMultiaddrs().map(String),
    dial: async ({ n, addr }) => { await nodes[n].dial(multiaddr(addr)); return true },
    state: async ({ n }) => {
      const dht = nodes[n].services.dht
      return { mode: dht.getMode(), rt: dht.routingTable.size, conns: nodes[n].getConnections().length }
    },
    put: async ({ n, key, value }) => {
      const dht = nodes[n].services.dht
      const k = enc.encode(key)
      const v = Buffer.from(value, 'base64')
      let stored = 0
      let errors = 0
      let firstError = null
      const t = nowMs()
      try {
        for await (const ev of dht.put(k, v, { signal: AbortSignal.timeout(OP_TIMEOUT_MS) })) {
          if (ev.name === 'PEER_RESPONSE' && ev.messageType === MessageType.PUT_VALUE) stored++
          else if (ev.name === 'QUERY_ERROR') { errors++; firstError ??= String(ev.error?.message ?? ev.error) }
        }
      } catch (err) { firstError ??= String(err?.message ?? err); errors++ }
      return { ms: nowMs() - t, stored, errors, firstError }
    },
    get: async ({ n, key, value }) => {
      const dht = nodes[n].services.dht
      const k = enc.encode(key)
      let found = null
      let error = null
      const t = nowMs()
      try {
        for await (const ev of dht.get(k, { signal: AbortSignal.timeout(OP_TIMEOUT_MS) })) {
          if (ev.name === 'VALUE') found = ev.value
        }
      } catch (err) { error = String(err?.message ?? err) }
      const ms = nowMs() - t
      const ok = found != null && Buffer.from(found).toString('base64') === value
      return { ms, ok, error }
    },
    stop: async () => {
      await Promise.allSettled(nodes.map(x => x.stop()))
      setTimeout(() => process.exit(0), 50)
      return true
    }
  }, CHILD_LIFE_SEC * 1000)
}

// ---------------------------------------------------------------- orchestrator
function summary (ms) {
  const s = [...ms].sort((a, b) => a - b)
  return { p50: round(pct(s, 50)), p99: round(pct(s, 99)), mean: round(s.reduce((a, b) => a + b, 0) / s.length) }
}

async function orchestrate () {
  orchestratorGuard(OVERALL_MS)
  const t0 = Date.now()
  log(`starting ${NODES} kad-dht nodes in ${PROCS} process(es)`)
  const procs = []
  const nodes = [] // global node index -> { call(cmd, args, timeout) } bound to its process + local index
  for (let p = 0; p < PROCS; p++) {
    const count = Math.floor(NODES / PROCS) + (p < NODES % PROCS ? 1 : 0)
    const child = startChild('dht.mjs', ['node', String(count)], `dht-p${p}`, CHILD_LIFE_SEC)
    procs.push(child)
    for (let n = 0; n < count; n++) {
      nodes.push({ call: (cmd, args = {}, t) => child.call(cmd, { ...args, n }, t) })
    }
  }
  const addrs = await Promise.all(nodes.map(n => n.call('addrs', {}, 30_000)))
  log(`nodes up after ${Date.now() - t0} ms; bootstrap star on node 0`)
  await Promise.all(nodes.slice(1).map(n => n.call('dial', { addr: addrs[0][0] }, 10_000)))

  // wait for full routing tables (10 nodes << k=20: everyone should know everyone)
  const deadline = Date.now() + 30_000
  let states
  for (;;) {
    states = await Promise.all(nodes.map(n => n.call('state')))
    if (states.every(s => s.rt >= NODES - 1 && s.mode === 'server')) break
    if (Date.now() > deadline) {
      log('WARNING: routing tables not full after 30 s:', JSON.stringify(states))
      break
    }
    await sleep(250)
  }
  log(`routing tables: [${states.map(s => s.rt).join(',')}] after ${Date.now() - t0} ms`)

  const keys = []
  for (let i = 0; i < OPS; i++) {
    keys.push({ key: `/${NS}/${randomBytes(12).toString('hex')}`, value: randomBytes(VALUE_BYTES).toString('base64') })
  }
  const pick = (not) => { for (;;) { const i = Math.floor(Math.random() * NODES); if (i !== not) return i } }

  // short warm-up (JIT, stream set-up), not reported
  const warmEnd = Date.now() + 10_000
  for (let i = 0; i < 20 && Date.now() < warmEnd; i++) {
    const w = { key: `/${NS}/warm-${i}`, value: 'AA==' }
    const at = pick(-1)
    await nodes[at].call('put', w, OP_TIMEOUT_MS + 5000)
    await nodes[pick(at)].call('get', w, OP_TIMEOUT_MS + 5000)
  }

  // Each phase has a time budget so that the run stays bounded on a loaded
  // machine; `ops` in the result is the number actually done.
  log(`put x${OPS} (budget ${PHASE_SECS} s)`)
  const putMs = []
  const putBy = []
  const putOk = []
  let putFail = 0
  let storedSum = 0
  let end = Date.now() + PHASE_SECS * 1000
  for (const kv of keys) {
    if (Date.now() > end) { log(`put phase budget used up after ${putMs.length} ops`); break }
    const at = pick(-1)
    putBy.push(at)
    try {
      const r = await nodes[at].call('put', kv, OP_TIMEOUT_MS + 5000)
      putMs.push(r.ms)
      storedSum += r.stored
      putOk.push(r.stored > 0)
      if (r.stored === 0) putFail++
      if (r.errors > 0) log(`put from node ${at}: ${r.ms.toFixed(0)} ms, ${r.stored} copies, ${r.errors} errors, first: ${r.firstError}`)
    } catch (err) { putFail++; putOk.push(false); log('put failed', err.message) }
  }
  const nPut = putBy.length
  const ps = summary(putMs)
  log(`put done: mean ${ps.mean} ms, avg ${(storedSum / nPut).toFixed(1)} remote copies, failures ${putFail}`)
  console.log(JSON.stringify({
    system: 'js-libp2p', bench: 'dht_put', p50_ms: ps.p50, p99_ms: ps.p99, ops: nPut,
    ops_planned: OPS, mean_ms: ps.mean, failures: putFail, avg_remote_copies: round(storedSum / nPut, 1),
    nodes: NODES, processes: PROCS, value_bytes: VALUE_BYTES, load1: round(os.loadavg()[0])
  }))

  log(`get x${nPut} (budget ${PHASE_SECS} s)`)
  const getMs = []
  let getFail = 0
  end = Date.now() + PHASE_SECS * 1000
  for (let i = 0; i < nPut; i++) {
    if (Date.now() > end) { log(`get phase budget used up after ${getMs.length} ops`); break }
    if (!putOk[i]) continue // never stored: not a get failure of the DHT
    try {
      const r = await nodes[pick(putBy[i])].call('get', keys[i], OP_TIMEOUT_MS + 5000)
      getMs.push(r.ms)
      if (!r.ok) { getFail++; log(`get ${i} failed after ${r.ms.toFixed(0)} ms: ${r.error ?? 'value not found'}`) }
    } catch (err) { getFail++; getMs.push(NaN); log('get failed', err.message) }
  }
  const gs = summary(getMs.filter(x => !Number.isNaN(x)))
  log(`get done: mean ${gs.mean} ms, failures ${getFail}`)
  console.log(JSON.stringify({
    system: 'js-libp2p', bench: 'dht_get', p50_ms: gs.p50, p99_ms: gs.p99, ops: getMs.length,
    ops_planned: OPS, mean_ms: gs.mean, failures: getFail, nodes: NODES, processes: PROCS,
    value_bytes: VALUE_BYTES, load1: round(os.loadavg()[0])
  }))

  await Promise.allSettled(procs.map(c => c.call('stop', {}, 5000)))
  await sleep(200)
  killChildren()
  log(`dht done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  process.exit(0)
}

const role = process.argv[2] ?? 'orchestrator'
if (role === 'node') await nodeMain(Number(process.argv[3]))
else {
  try { await orchestrate() } catch (err) {
    log('dht benchmark failed:', err?.stack ?? err)
    killChildren()
    process.exit(1)
  }
}
