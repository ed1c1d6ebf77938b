// Store outages under load, on a private PostgreSQL cluster and a private MariaDB server (own data
// directory and port; the machine's shared servers are never touched). While dict lookups run:
// 1. the server is shut down cleanly, stays down, and is started again;
// 2. every server process is frozen (SIGSTOP: connections hang instead of failing), then thawed;
// 3. the server closes every connection of the daemon;
// 4. the server crashes (PostgreSQL `pg_ctl stop -m immediate`, MariaDB `kill -9`), stays down, and
//    is started again (crash recovery).
// Checked: during an outage every user mapped before it is answered from the daemon's routing table
// with its host and without waiting for the store (0 temp_fail, 0 wrong hosts), every first login
// gets `F` within the query timeout (never `N`); `/metrics` answers during every outage and reports
// `doveroute_store_up 0`; one warning when the feed starts failing and one when it works again; the
// daemon keeps running and keeps its pool bounded; first logins succeed again within 2 s of the
// server coming back, by themselves; no mapping is lost or duplicated.
// DVR_OUTAGE_TRACE=/path/prefix writes every lookup (send time, latency, reply) and the daemon log.
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { freePort, makeTempDir, sleep, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import { httpGet, metric, parseProm } from "./ops-support.js"
import {
  DictClient,
  type DictReply,
  hostOf,
  mappings,
  type PrivateServer,
  seedBackends,
  startPrivateMariadb,
  startPrivatePostgres
} from "./store-support.js"

const QUERY_TIMEOUT_MS = 1500
const MAX_CONNECTIONS = 4
/** Scheduling slack on a loaded 2-core machine on top of the query timeout. */
const SLACK_MS = 600
const RECOVERY_MS = 2000
// On a machine overloaded by other work even successful lookups get slow; the time bounds then grow
// by the slowest lookup before the first outage beyond 100 ms (the "overload allowance", printed).
/** Lookups each checked window must hold at least (the load generator itself may stall). */
const MIN_SAMPLES = 8

interface Sample extends DictReply {
  readonly worker: number
}

/**
 * Dict lookups at a fixed rate (one every `INTERVAL_MS`) until stopped, without waiting for replies:
 * round robin over three persistent pipelining connections and a new connection per lookup (Dovecot
 * without `idle_msecs`). Each alternates a user mapped before the test and a new one. A broken dict
 * connection is recorded as line `X<error>`.
 */
const INTERVAL_MS = 10

function startLoad(socket: string, known: ReadonlyArray<string>) {
  const samples: Array<Sample> = []
  const inflight = new Set<Promise<void>>()
  const clients: Array<Promise<DictClient> | undefined> = [undefined, undefined, undefined]
  let seq = 0
  const fire = () => {
    const n = seq++
    const w = n % 4
    const user = n % 2 === 0 ? known[(n >> 1) % known.length]! : `new${n}@example.com`
    const sentAt = Date.now()
    let p: Promise<DictReply>
    if (w === 3) {
      p = DictClient.connect(socket).then((c) => c.lookup(user).finally(() => c.close()))
    } else {
      const c = (clients[w] ??= DictClient.connect(socket))
      p = c.then((c) => c.lookup(user))
      p.catch(() => { clients[w] = undefined })
    }
    // r.sentAt: when the request was written (after connecting, for the new-connection worker)
    const done: Promise<void> = p.then(
      (r) => { samples.push({ ...r, worker: w }) },
      (e: Error) => { samples.push({ user, line: `X${e.message}`, sentAt, repliedAt: Date.now(), worker: w }) }
    ).finally(() => inflight.delete(done))
    inflight.add(done)
  }
  const timer = setInterval(fire, INTERVAL_MS)
  return {
    samples,
    stop: async () => {
      clearInterval(timer)
      await Promise.all([...inflight])
      for (const c of clients) void c?.then((x) => x.close(), () => undefined)
    }
  }
}

const inWindow = (samples: ReadonlyArray<Sample>, from: number, to: number) => samples.filter((s) => s.sentAt >= from && s.sentAt < to)
/** Lookups whose whole life (sent … answered) lies inside [from, to]: nothing could reach the store. */
const within = (samples: ReadonlyArray<Sample>, from: number, to: number) =>
  samples.filter((s) => s.sentAt >= from && s.repliedAt <= to)
const summary = (samples: ReadonlyArray<Sample>) => {
  const n: Record<string, number> = {}
  for (const s of samples) n[s.line[0]!] = (n[s.line[0]!] ?? 0) + 1
  return JSON.stringify(n)
}

/**
 * The outage window: every user mapped before the test answered O with the host it had, fast (from
 * the routing table, never waiting for the store); every new user answered F within the query
 * timeout (+ slack).
 */
function expectOutage(samples: ReadonlyArray<Sample>, what: string, overload: number, known: ReadonlyMap<string, string>) {
  expect(samples.length, `${what}: lookups ran`).toBeGreaterThanOrEqual(MIN_SAMPLES)
  const mapped = samples.filter((s) => known.has(s.user))
  const fresh = samples.filter((s) => !known.has(s.user))
  expect(mapped.length, `${what}: known users asked`).toBeGreaterThan(0)
  expect(fresh.length, `${what}: new users asked`).toBeGreaterThan(0)
  const wrong = mapped.filter((s) => !s.line.startsWith("O") || hostOf(s.line) !== known.get(s.user))
  expect(wrong.slice(0, 3), `${what}: every known user routed from memory to its host (${summary(mapped)})`).toEqual([])
  const waited = mapped.filter((s) => s.repliedAt - s.sentAt > SLACK_MS + overload)
  expect(waited.map((s) => s.repliedAt - s.sentAt).slice(0, 5), `${what}: known users never wait for the store`).toEqual([])
  const notF = fresh.filter((s) => !s.line.startsWith("F"))
  expect(notF.slice(0, 3), `${what}: first logins temp_fail (${summary(fresh)})`).toEqual([])
  const slow = fresh.filter((s) => s.repliedAt - s.sentAt > QUERY_TIMEOUT_MS + SLACK_MS + overload)
  expect(slow.map((s) => s.repliedAt - s.sentAt).slice(0, 5), `${what}: every F within the query timeout`).toEqual([])
}

/** Lookups sent this long before the next outage may be caught in it. */
const CAUGHT_MS = 500

/**
 * After `back` (server usable again): a first login answered O within 2 s (known users never
 * stopped being answered), and only O from 2 s on until the next outage.
 */
function expectRecovered(samples: ReadonlyArray<Sample>, back: number, nextOutage: number, what: string, overload: number, known: ReadonlyMap<string, string>) {
  const until = nextOutage - CAUGHT_MS
  const after = inWindow(samples, back, until)
  const firstOk = after.find((s) => s.line.startsWith("O") && !known.has(s.user))
  expect(firstOk, `${what}: some first login succeeded after the server came back (${summary(after)})`).toBeDefined()
  expect(firstOk!.repliedAt - back, `${what}: first success within 2 s`).toBeLessThanOrEqual(RECOVERY_MS + overload)
  const late = inWindow(samples, back + RECOVERY_MS + overload, until)
  expect(late.length, `${what}: lookups ran from 2 s after`).toBeGreaterThanOrEqual(MIN_SAMPLES)
  expect(late.filter((s) => !s.line.startsWith("O")).slice(0, 3), `${what}: only O from 2 s after (${summary(late)})`).toEqual([])
  return firstOk!.repliedAt - back
}

const SERVERS = [
  ["PostgreSQL", startPrivatePostgres],
  ["MariaDB", startPrivateMariadb]
] as const

// both servers at once: the scenario mostly waits
describe.concurrent("store outages on a private server", () => {
  it.each(SERVERS)("%s: stop/start, freeze/thaw, dropped connections, crash: known users routed from memory, first logins F, back within 2 s, no mapping lost", async (name, startServer) => {
    const tmp = makeTempDir()
    let server: PrivateServer | undefined
    let daemon: RunningDaemon | undefined
    try {
      server = await startServer(tmp.path)
      const socket = tmp.join("dict.sock")
      const metricsPort = await freePort()
      daemon = await startDaemon({
        args: ["--store", server.url, "--dict-socket", socket, "--log-level", "warning"],
        waitFor: [socket],
        waitForTcp: [{ host: "127.0.0.1", port: metricsPort }],
        env: {
          DOVEROUTE_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
          DOVEROUTE_QUERY_TIMEOUT: `${QUERY_TIMEOUT_MS} millis`,
          DOVEROUTE_CONNECT_TIMEOUT: `${QUERY_TIMEOUT_MS} millis`,
          DOVEROUTE_MAX_CONNECTIONS: String(MAX_CONNECTIONS)
        },
        timeoutMs: 60_000
      })
      await seedBackends(server.url, 3)
      await scenario(name, server, daemon, socket, metricsPort)
      daemon = undefined
    } finally {
      await daemon?.stop()
      await server?.destroy()
      await tmp.cleanup()
    }
  })
})

/** The three outages under load, and the checks. */
async function scenario(name: string, server: PrivateServer, daemon: RunningDaemon, socket: string, metricsPort: number) {
  const scrape = async () => {
    const r = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(r.status, `/metrics answers (${r.body.slice(0, 200)})`).toBe(200)
    return parseProm(r.body)
  }
  /** During an outage: /metrics answers every time, and says the store is away (within 5 s). */
  const storeDownSeen: Array<string> = []
  const expectMetricsDuringOutage = async (what: string) => {
    const t0 = Date.now()
    while (metric(await scrape(), "doveroute_store_up") !== 0 && Date.now() - t0 < 5000) await sleep(100)
    expect(metric(await scrape(), "doveroute_store_up"), `${what}: doveroute_store_up 0 during the outage`).toBe(0)
    storeDownSeen.push(what)
  }
  // users mapped before any outage
  const known = Array.from({ length: 40 }, (_, i) => `known${i}@example.com`)
  const pre = await DictClient.connect(socket)
  const before = new Map<string, string>()
  for (const u of known) {
    const r = await pre.lookup(u)
    expect(r.line).toMatch(/^O/)
    before.set(u, hostOf(r.line)!)
  }
  pre.close()
  // the routing table holds every known user and its backend (the feed carried them) before any
  // outage: one round of lookups is answered from memory alone
  const check = await DictClient.connect(socket)
  const round = async () => {
    const hits0 = metric(await scrape(), "doveroute_cache_hits_total")
    for (const u of known) expect(hostOf((await check.lookup(u)).line)).toBe(before.get(u))
    return metric(await scrape(), "doveroute_cache_hits_total") - hits0
  }
  const t0 = Date.now()
  while ((await round()) < known.length && Date.now() - t0 < 5000) await sleep(100)
  expect(await round(), "every known user answered from memory").toBe(known.length)
  check.close()

  const load = startLoad(socket, known)
  // Every phase lasts its nominal time, longer when the loaded machine has not yet produced
  // MIN_SAMPLES lookups to judge it by (bounded): this only stretches phases, never a bound.
  const until = async (minMs: number, enough: () => boolean) => {
    const t0 = Date.now()
    await sleep(minMs)
    while (!enough() && Date.now() - t0 < minMs + 10_000) await sleep(50)
  }
  await until(600, () => load.samples.length >= MIN_SAMPLES)
  const stop0 = Date.now()
  const healthy = load.samples.filter((x) => x.repliedAt < stop0)
  const overload = Math.max(0, ...healthy.map((x) => x.repliedAt - x.sentAt - 100))
  const settle = (back: number) =>
    until(RECOVERY_MS + overload + CAUGHT_MS + 300, () => inWindow(load.samples, back + RECOVERY_MS + overload, Date.now() - CAUGHT_MS).length >= MIN_SAMPLES)

  // 1. clean shutdown, 1.5 s down, start again
  await server.stop()
  const stop1 = Date.now()
  await until(1500, () => within(load.samples, stop1, Date.now()).length >= MIN_SAMPLES)
  await expectMetricsDuringOutage("server down")
  const start0 = Date.now()
  await server.start()
  const start1 = Date.now()
  await settle(start1)

  // 2. every server process frozen for 3 s
  const pause0 = Date.now()
  server.pause()
  await until(3000, () => within(load.samples, pause0 + 50, Date.now()).length >= MIN_SAMPLES)
  await expectMetricsDuringOutage("server frozen")
  const pause1 = Date.now()
  server.resume()
  await settle(pause1)

  // 3. the server drops every connection of the daemon
  const kill0 = Date.now()
  await server.killConnections()
  await settle(kill0)

  // 4. crash (no clean shutdown), 1.5 s down, start again (crash recovery)
  const crash0 = Date.now()
  await server.crash()
  const crash1 = Date.now()
  await until(1500, () => within(load.samples, crash1, Date.now()).length >= MIN_SAMPLES)
  await expectMetricsDuringOutage("server crashed")
  const restart0 = Date.now()
  await server.start()
  const restart1 = Date.now()
  await settle(restart1)
  await load.stop()
  const end = Date.now()
  const s = load.samples
  if (process.env["DVR_OUTAGE_TRACE"] !== undefined) {
    const marks = { stop0, stop1, start0, start1, pause0, pause1, kill0, crash0, crash1, restart0, restart1, end }
    const rel = (t: number) => t - stop0
    const lines = [
      JSON.stringify(Object.fromEntries(Object.entries(marks).map(([k, v]) => [k, rel(v)]))),
      ...s.map((x) => `${rel(x.sentAt)}\t${x.repliedAt - x.sentAt}\tw${x.worker}\t${x.line.slice(0, 40)}`)
    ]
    fs.writeFileSync(`${process.env["DVR_OUTAGE_TRACE"]}-${name}.txt`, lines.join("\n"))
    fs.writeFileSync(`${process.env["DVR_OUTAGE_TRACE"]}-${name}-daemon.txt`, daemon.logs())
  }

  expect(s.filter((x) => x.line.startsWith("N") || x.line.startsWith("X")).slice(0, 3), "never N, never a broken dict connection").toEqual([])
  expect(healthy.length).toBeGreaterThanOrEqual(MIN_SAMPLES)
  expect(healthy.every((x) => x.line.startsWith("O")), `healthy before the outage (${summary(healthy)})`).toBe(true)

  expectOutage(within(s, stop1, start0), "server down", overload, before)
  const t1 = expectRecovered(s, start1, pause0, "after restart", overload, before)

  // requests sent once the freeze is surely in effect and answered before it ends
  expectOutage(within(s, pause0 + 50, pause1), "server frozen", overload, before)
  const t2 = expectRecovered(s, pause1, kill0, "after thaw", overload, before)

  const t3 = expectRecovered(s, kill0, crash0, "after dropped connections", overload, before)

  expectOutage(within(s, crash1, restart0), "server crashed", overload, before)
  const t4 = expectRecovered(s, restart1, end, "after crash recovery", overload, before)
  expect(storeDownSeen).toEqual(["server down", "server frozen", "server crashed"])
  // the feed is read again after the outages
  const back = Date.now()
  while (metric(await scrape(), "doveroute_store_up") !== 1 && Date.now() - back < 5000) await sleep(100)
  expect(metric(await scrape(), "doveroute_store_up"), "doveroute_store_up 1 once the store is back").toBe(1)

  // every answer for a user names one host, the one stored; users mapped before kept theirs
  const stored = await mappings(server.url)
  const answered = new Map<string, Set<string>>()
  for (const x of s) {
    const h = hostOf(x.line)
    if (h !== undefined) answered.set(x.user, new Set([...(answered.get(x.user) ?? []), h]))
  }
  for (const [u, hosts] of answered) {
    expect([...hosts], `answers for ${u}`).toHaveLength(1)
    expect(stored.get(u), `stored row for ${u}`).toEqual([...hosts])
  }
  for (const [u, h] of before) expect(stored.get(u), `pre-outage mapping of ${u}`).toEqual([h])
  expect([...stored.values()].filter((h) => h.length > 1)).toEqual([])

  // one warning when the feed starts failing, one when it works again, per outage
  const logs = daemon.logs()
  const down = logs.match(/store unreachable: routing known users from the in-memory table, first logins temp_fail/g)?.length ?? 0
  const up = logs.match(/store reachable again: the routing table is in step/g)?.length ?? 0
  expect(down, "a warning per outage").toBeGreaterThanOrEqual(3)
  expect(up, "a recovery line per outage").toBe(down)

  // still running, pool still bounded
  expect(daemon.exited()).toBe(false)
  const conns = await server.connections()
  expect(conns).toBeLessThanOrEqual(MAX_CONNECTIONS)
  const code = await daemon.stop()
  expect(code).toBe(0)
  console.log(
    `${name}: ${s.length} lookups (${summary(s)}); back after restart ${t1} ms (start took ${start1 - start0} ms, stop ${stop1 - stop0} ms), ` +
      `after thaw ${t2} ms, after dropped connections ${t3} ms, after crash recovery ${t4} ms (start took ${restart1 - restart0} ms); ${conns} connections at the end; overload allowance ${overload} ms`
  )
}
