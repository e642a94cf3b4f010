// js-libp2p gossipsub anchor: 1 publisher + 2 subscriber OS processes on
// 127.0.0.1, signed messages (StrictSign, the default), 1 KiB payloads.
//
//   node --import ./polyfill.mjs pubsub.mjs          (orchestrator)
//
// Prints two JSON lines on stdout (pubsub_latency, pubsub_throughput);
// progress goes to stderr. Tunables (env): PS_LAT_MSGS (2000), PS_LAT_RATE
// (500 msg/s), PS_WARM_MSGS (1000, paced like the latency run, not
// reported: without it the first ~300 latency samples carry JIT warm-up
// stalls of 50-100 ms), PS_TPUT_SECS (10), PS_WINDOW (100 messages in flight),
// PS_TOPOLOGY (mesh: all three processes connected | star: publisher only).
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import os from 'node:os'
import {
  LISTEN, CONNECTION_MANAGER, nowMs, sleep, log, pct, round, envInt,
  childMain, startChild, orchestratorGuard, killChildren
} from './common.mjs'

const TOPIC = 'bzzz-anchor-bench'
const PAYLOAD = 1024
const PH_WARM = 1
const PH_LAT = 2
const PH_TPUT = 3

const LAT_MSGS = envInt('PS_LAT_MSGS', 2000)
const LAT_RATE = envInt('PS_LAT_RATE', 500)
const WARM_MSGS = envInt('PS_WARM_MSGS', 1000)
const TPUT_SECS = envInt('PS_TPUT_SECS', 10)
const WINDOW = envInt('PS_WINDOW', 100)
const ACK_EVERY = envInt('PS_ACK_EVERY', 10)
const PACED_MAX_INFLIGHT = envInt('PS_PACED_MAX_INFLIGHT', 250)
const TOPOLOGY = process.env.PS_TOPOLOGY ?? 'mesh'
const NSUBS = 2
const CHILD_LIFE_SEC = 85
const OVERALL_MS = 75_000

async function makeNode () {
  const node = await createLibp2p({
    addresses: { listen: LISTEN },
    connectionManager: CONNECTION_MANAGER,
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // defaults: globalSignaturePolicy StrictSign, floodPublish true, D=6
      pubsub: gossipsub()
    }
  })
  return node
}

// ---------------------------------------------------------------- subscriber
async function subscriberMain (index) {
  const node = await makeNode()
  const ps = node.services.pubsub
  const lat = { [PH_WARM]: [], [PH_LAT]: [] }
  const tput = { count: 0, first: 0, last: 0 }
  let total = 0
  let lastAck = 0
  ps.addEventListener('message', (evt) => {
    const msg = evt.detail
    if (msg.topic !== TOPIC) return
    const t = nowMs()
    const d = msg.data
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength)
    const phase = d[0]
    if (phase === PH_TPUT) {
      if (tput.count === 0) tput.first = t
      tput.count++
      tput.last = t
    } else if (lat[phase] != null) {
      lat[phase].push(t - dv.getFloat64(8))
    }
    // cumulative acks (all phases) let the publisher bound messages in flight
    if (++total - lastAck >= ACK_EVERY) {
      lastAck = total
      if (process.connected) process.send({ event: 'ack', sub: index, count: total })
    }
  })
  ps.subscribe(TOPIC)
  childMain({
    addrs: async () => node.getMultiaddrs().map(String),
    dial: async ({ addr }) => { await node.dial(multiaddr(addr)); return true },
    mesh: async () => ps.getMeshPeers(TOPIC).length,
    latStats: async ({ phase }) => lat[phase],
    tputStats: async () => ({ count: tput.count, first: tput.first, last: tput.last }),
    stop: async () => { await node.stop(); setTimeout(() => process.exit(0), 50); return true }
  }, CHILD_LIFE_SEC * 1000)
}

// ---------------------------------------------------------------- publisher
async function publisherMain () {
  const node = await makeNode()
  const ps = node.services.pubsub
  ps.subscribe(TOPIC) // be a mesh member, like every other peer
  const filler = new Uint8Array(PAYLOAD)
  for (let i = 16; i < PAYLOAD; i++) filler[i] = (i * 131) & 0xff
  let seq = 0
  function payload (phase) {
    const b = filler.slice()
    const dv = new DataView(b.buffer)
    b[0] = phase
    dv.setUint32(1, ++seq)
    dv.setFloat64(8, nowMs())
    return b
  }
  // cumulative over all phases: messages published (successfully) and the
  // subscribers' cumulative received counts (acked every ACK_EVERY messages)
  let sent = 0
  const acked = new Array(NSUBS).fill(0)
  let ackWaiter = null

  // Wait while `window` or more messages are in flight. Returns false if no
  // ack came for 2 s (messages lost): the window then slides past them.
  async function windowWait (window) {
    if (sent - Math.min(...acked) < window) return true
    const got = await Promise.race([
      new Promise(resolve => { ackWaiter = () => resolve(true) }),
      sleep(2000).then(() => false)
    ])
    if (!got) {
      log(`window stalled (sent ${sent}, acked ${acked}); giving up on lost messages`)
      for (let i = 0; i < NSUBS; i++) acked[i] = Math.max(acked[i], sent - Math.floor(window / 2))
    }
    return got
  }

  // returns false when the phase should be abandoned
  let errors = 0
  async function pub1 (phase) {
    try {
      await ps.publish(TOPIC, payload(phase))
      sent++
      return true
    } catch (err) {
      if (errors++ < 3) log('publish error', err.message)
      await sleep(20) // e.g. NoPeersSubscribedToTopic: don't spin
      return errors < 200
    }
  }

  // Paced at `rate`, one message at a time. Guard: never more than
  // PS_PACED_MAX_INFLIGHT messages ahead of the slowest subscriber, or an
  // overloaded machine ends up with megabytes queued in the publisher and
  // connections dropped; `guard_waits` counts how often it held publishing.
  async function paced (phase, n, rate) {
    errors = 0
    let guardWaits = 0
    let stalls = 0
    let published = 0
    const period = 1000 / rate
    const start = nowMs()
    for (let i = 0; i < n; i++) {
      const due = start + i * period
      const wait = due - nowMs()
      if (wait > 0.5) await sleep(wait)
      while (sent - Math.min(...acked) >= PACED_MAX_INFLIGHT) {
        guardWaits++
        if (!await windowWait(PACED_MAX_INFLIGHT)) stalls++
      }
      if (await pub1(phase)) published++
      else if (errors >= 200) break
    }
    return { published, seconds: (nowMs() - start) / 1000, errors, guardWaits, stalls }
  }

  childMain({
    onEvent (msg) {
      if (msg?.event === 'ack') {
        acked[msg.sub] = Math.max(acked[msg.sub], msg.count)
        if (ackWaiter != null) { const w = ackWaiter; ackWaiter = null; w() }
      }
    },
    addrs: async () => node.getMultiaddrs().map(String),
    dial: async ({ addr }) => { await node.dial(multiaddr(addr)); return true },
    mesh: async () => ps.getMeshPeers(TOPIC).length,
    paced: async ({ phase, n, rate }) => paced(phase, n, rate),
    // Publish as fast as possible, but never more than `window` messages
    // ahead of the slowest subscriber (gossipsub has no backpressure: the
    // stream's write buffer would overflow and the stream be reset).
    tput: async ({ secs, window }) => {
      errors = 0
      let published = 0
      let stalls = 0
      const start = nowMs()
      const end = start + secs * 1000
      while (nowMs() < end) {
        if (sent - Math.min(...acked) >= window) {
          if (!await windowWait(window)) stalls++
          continue
        }
        if (await pub1(PH_TPUT)) published++
        else if (errors >= 200) break
      }
      return { published, seconds: (nowMs() - start) / 1000, errors, stalls }
    },
    stop: async () => { await node.stop(); setTimeout(() => process.exit(0), 50); return true }
  }, CHILD_LIFE_SEC * 1000)
}

// ---------------------------------------------------------------- orchestrator
async function waitFor (what, fn, timeoutMs, everyMs = 200) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await fn()) return true
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what}`)
}

function latSummary (arrays) {
  const all = arrays.flat().sort((a, b) => a - b)
  return {
    p50: pct(all, 50),
    p99: pct(all, 99),
    per: arrays.map(a => {
      const s = [...a].sort((x, y) => x - y)
      return { received: s.length, p50_ms: round(pct(s, 50)), p99_ms: round(pct(s, 99)) }
    })
  }
}

async function orchestrate () {
  orchestratorGuard(OVERALL_MS)
  const t0 = Date.now()
  log(`starting ${NSUBS} subscribers + 1 publisher (topology ${TOPOLOGY})`)
  const subs = []
  for (let i = 0; i < NSUBS; i++) subs.push(startChild('pubsub.mjs', ['sub', String(i)], `sub${i}`, CHILD_LIFE_SEC))
  const pub = startChild('pubsub.mjs', ['pub'], 'pub', CHILD_LIFE_SEC)
  for (const s of subs) s.onEvent(msg => { if (msg?.event === 'ack') pub.send(msg) })

  const subAddrs = await Promise.all(subs.map(s => s.call('addrs', {}, 20_000)))
  await pub.call('addrs', {}, 20_000)
  // (Re)connect and wait for the topic mesh. Dialing a connected peer is a
  // no-op; before each phase this repairs a connection lost in the previous
  // one (under heavy CPU load libp2p's connection monitor can drop a peer
  // whose ping is late).
  const want = TOPOLOGY === 'mesh' ? NSUBS : 1
  async function ensureMesh (label) {
    const t = Date.now()
    for (const a of subAddrs) await pub.call('dial', { addr: a[0] }, 10_000)
    if (TOPOLOGY === 'mesh') {
      for (let i = 1; i < NSUBS; i++) {
        for (let j = 0; j < i; j++) await subs[i].call('dial', { addr: subAddrs[j][0] }, 10_000)
      }
    }
    let m
    await waitFor(`gossipsub mesh (${label})`, async () => {
      m = await Promise.all([pub.call('mesh'), ...subs.map(s => s.call('mesh'))])
      return m[0] >= NSUBS && m.slice(1).every(x => x >= want)
    }, 15_000).catch(err => log(`WARNING: ${err.message}; mesh sizes [${m}]`))
    if (Date.now() - t > 1000) log(`mesh (${label}) ready after ${Date.now() - t} ms`)
  }
  await ensureMesh('start')
  log(`mesh formed after ${Date.now() - t0} ms (incl. process start)`)

  // warm-up (JIT, connections), not reported
  log(`warm-up: ${WARM_MSGS} msgs at ${LAT_RATE}/s`)
  await pub.call('paced', { phase: PH_WARM, n: WARM_MSGS, rate: LAT_RATE }, 30_000)
  await sleep(300)

  // (a) latency, paced
  await ensureMesh('latency')
  log(`latency: ${LAT_MSGS} msgs at ${LAT_RATE}/s`)
  const lp = await pub.call('paced', { phase: PH_LAT, n: LAT_MSGS, rate: LAT_RATE }, 60_000)
  log(`published ${lp.published} in ${lp.seconds.toFixed(2)} s, errors ${lp.errors}, in-flight guard waits ${lp.guardWaits}, stalls ${lp.stalls}`)
  if (lp.guardWaits > 0) log(`WARNING: subscribers fell ${PACED_MAX_INFLIGHT} messages behind: the ${LAT_RATE}/s pace was not held (machine overloaded?)`)
  await waitFor('latency drain', async () => {
    const c = await Promise.all(subs.map(s => s.call('latStats', { phase: PH_LAT })))
    return c.every(a => a.length >= LAT_MSGS)
  }, 3000).catch(err => log(err.message))
  const lat = latSummary(await Promise.all(subs.map(s => s.call('latStats', { phase: PH_LAT }))))
  console.log(JSON.stringify({
    system: 'js-libp2p',
    bench: 'pubsub_latency',
    p50_ms: round(lat.p50),
    p99_ms: round(lat.p99),
    messages: LAT_MSGS,
    subscribers: NSUBS,
    published: lp.published,
    publish_seconds: round(lp.seconds),
    guard_waits: lp.guardWaits,
    per_subscriber: lat.per,
    topology: TOPOLOGY,
    signed: true,
    payload_bytes: PAYLOAD,
    load1: round(os.loadavg()[0])
  }))

  // (b) throughput with a bounded window
  await ensureMesh('throughput')
  log(`throughput: ${TPUT_SECS} s, window ${WINDOW}`)
  const tp = await pub.call('tput', { secs: TPUT_SECS, window: WINDOW }, (TPUT_SECS + 20) * 1000)
  log(`published ${tp.published} in ${tp.seconds.toFixed(2)} s (${Math.round(tp.published / tp.seconds)}/s), errors ${tp.errors}, stalls ${tp.stalls}`)
  await waitFor('throughput drain', async () => {
    const c = await Promise.all(subs.map(s => s.call('tputStats')))
    return c.every(x => x.count >= tp.published)
  }, 3000).catch(err => log(err.message))
  const ts = await Promise.all(subs.map(s => s.call('tputStats')))
  const rates = ts.map(x => x.count > 1 ? (x.count - 1) / ((x.last - x.first) / 1000) : 0)
  console.log(JSON.stringify({
    system: 'js-libp2p',
    bench: 'pubsub_throughput',
    msgs_per_s_per_subscriber: Math.round(Math.min(...rates)),
    seconds: TPUT_SECS,
    per_subscriber: ts.map((x, i) => ({ received: x.count, msgs_per_s: Math.round(rates[i]) })),
    published: tp.published,
    publish_errors: tp.errors,
    window: WINDOW,
    topology: TOPOLOGY,
    signed: true,
    payload_bytes: PAYLOAD,
    load1: round(os.loadavg()[0])
  }))

  await Promise.allSettled([pub, ...subs].map(c => c.call('stop', {}, 5000)))
  await sleep(200)
  killChildren()
  log(`pubsub done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  process.exit(0)
}

const role = process.argv[2] ?? 'orchestrator'
if (role === 'sub') await subscriberMain(Number(process.argv[3]))
else if (role === 'pub') await publisherMain()
else {
  try { await orchestrate() } catch (err) {
    log('pubsub benchmark failed:', err?.stack ?? err)
    killChildren()
    process.exit(1)
  }
}
