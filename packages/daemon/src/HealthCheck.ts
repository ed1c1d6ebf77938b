/**
 * The optional backend health checker (`health` section): every `interval` it connects to each
 * backend (`hostip`, else `hostname`) on the check port and waits up to `timeout` for the
 * protocol's greeting (IMAP `* OK`, POP3 `+OK`, LMTP `220`). It records `last_health` /
 * `last_health_at`, marks an up backend (state 0) down by health (state 3) after `fall`
 * consecutive failures and brings a state-3 backend up after `rise` consecutive successes. It never
 * touches state 1 (admin down) or 2 (drain). Flips are compare-and-set in the store
 * (`Health.markHealthDown/Up`), safe with several daemons on one database.
 *
 * Settings are read every round from a holder the SIGHUP reload replaces.
 *
 * @since 0.1.0
 */
import { Health } from "@doveroute/store"
import { Context, Duration, Effect, Layer } from "effect"
import * as net from "node:net"
import * as OpsEvents from "./OpsEvents.js"
import type { HealthSettings } from "./Settings.js"

/** Default check port per protocol. */
export const DEFAULT_PORTS = { imap: 143, pop3: 110, lmtp: 24 } as const

const GREETING = { imap: "* OK", pop3: "+OK", lmtp: "220" } as const

/** One check's outcome. */
export interface ProbeResult {
  readonly ok: boolean
  /** Short text for `last_health`: `ok 3ms: * OK …` or `fail: …`. */
  readonly detail: string
}

/** Connect and read the greeting line; never rejects. */
export const probe = (host: string, port: number, protocol: HealthSettings["protocol"], timeoutMs: number): Promise<ProbeResult> =>
  new Promise((resolve) => {
    const started = Date.now()
    let buf = ""
    let done = false
    const sock = net.connect({ host, port })
    const finish = (r: ProbeResult) => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(r)
    }
    const timer = setTimeout(() => finish({ ok: false, detail: `fail: no greeting from ${host}:${port} within ${timeoutMs}ms` }), timeoutMs)
    sock.setEncoding("latin1")
    sock.on("data", (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf("\n")
      if (nl < 0 && buf.length < 1024) return
      const line = (nl < 0 ? buf : buf.slice(0, nl)).replace(/\r$/, "")
      const ms = Date.now() - started
      finish(
        line.startsWith(GREETING[protocol])
          ? { ok: true, detail: `ok ${ms}ms: ${line.slice(0, 200)}` }
          : { ok: false, detail: `fail: unexpected ${protocol} greeting from ${host}:${port}: ${line.slice(0, 200)}` }
      )
    })
    sock.on("error", (e) => finish({ ok: false, detail: `fail: ${host}:${port}: ${e.message}` }))
    sock.on("close", () => finish({ ok: false, detail: `fail: ${host}:${port} closed before a greeting` }))
  })

/** What the checker last saw of a backend (metrics). */
export interface BackendHealth {
  readonly hostname: string
  readonly ok: boolean
  readonly fails: number
  readonly oks: number
}

/** The running checker: its settings holder (replaced on reload) and the latest results. */
export interface HealthCheckerService {
  readonly settings: { current: HealthSettings }
  readonly status: () => ReadonlyMap<number, BackendHealth>
}

export class HealthChecker extends Context.Tag("doveroute/HealthChecker")<HealthChecker, HealthCheckerService>() {}

/** One round over every backend. */
const round = (s: HealthSettings, results: Map<number, BackendHealth>) =>
  Effect.gen(function*() {
    const backends = yield* Health.listBackends
    const columns = yield* Health.hasHealthColumns
    const port = s.port ?? DEFAULT_PORTS[s.protocol]
    const timeoutMs = Duration.toMillis(s.timeout)
    const seen = new Set<number>()
    yield* Effect.forEach(backends, (b) =>
      Effect.gen(function*() {
        seen.add(b.id)
        const host = b.hostip !== null && b.hostip !== "" ? b.hostip : b.hostname
        const r = yield* Effect.promise(() => probe(host, port, s.protocol, timeoutMs))
        const prev = results.get(b.id)
        const fails = r.ok ? 0 : (prev?.fails ?? 0) + 1
        const oks = r.ok ? (prev?.oks ?? 0) + 1 : 0
        results.set(b.id, { hostname: b.hostname, ok: r.ok, fails, oks })
        const log = Effect.annotateLogs({ backend: b.hostname, backend_id: b.id, state: OpsEvents.stateName(b.state), result: r.detail })
        yield* Health.recordHealth(b.id, r.detail, columns)
        if (!r.ok && prev?.ok !== false) yield* Effect.logWarning("backend health check failed").pipe(log)
        if (r.ok && prev?.ok === false) yield* Effect.logInfo("backend health check passes again").pipe(log)
        if (!r.ok && b.state === Health.STATE_UP && fails >= s.fall) {
          if (yield* Health.markHealthDown(b.id)) {
            const t = { backend: b.hostname, id: String(b.id), from: OpsEvents.stateName(Health.STATE_UP), to: OpsEvents.stateName(Health.STATE_HEALTH_DOWN) }
            OpsEvents.transitioned(t)
            yield* Effect.logWarning(`backend marked down by the health checker (${t.from} -> ${t.to})`).pipe(
              log,
              Effect.annotateLogs({ from: t.from, to: t.to, failures: fails, reason: `${fails} failed checks in a row (fall ${s.fall}): ${r.detail}` })
            )
          }
        } else if (r.ok && b.state === Health.STATE_HEALTH_DOWN && oks >= s.rise) {
          if (yield* Health.markHealthUp(b.id)) {
            const t = { backend: b.hostname, id: String(b.id), from: OpsEvents.stateName(Health.STATE_HEALTH_DOWN), to: OpsEvents.stateName(Health.STATE_UP) }
            OpsEvents.transitioned(t)
            yield* Effect.logInfo(`backend marked up by the health checker (${t.from} -> ${t.to})`).pipe(
              log,
              Effect.annotateLogs({ from: t.from, to: t.to, successes: oks, reason: `${oks} passed checks in a row (rise ${s.rise}): ${r.detail}` })
            )
          }
        }
      }), { concurrency: 32, discard: true })
    for (const id of results.keys()) if (!seen.has(id)) results.delete(id)
  })

/**
 * The checker as a layer (for the daemon's lifetime). It always runs its loop: while disabled it
 * only re-reads its settings, so a SIGHUP can turn it on or off.
 */
export const layer = (initial: HealthSettings) =>
  Layer.scoped(
    HealthChecker,
    Effect.gen(function*() {
      const settings = { current: initial }
      const results = new Map<number, BackendHealth>()
      const loop = Effect.gen(function*() {
        const s = settings.current
        if (!s.enabled) {
          results.clear()
          return yield* Effect.sleep("1 second")
        }
        yield* round(s, results).pipe(
          Effect.catchAll((e) => Effect.logWarning("health check round failed").pipe(Effect.annotateLogs({ detail: e.message }))),
          Effect.catchAllDefect((d) => Effect.logError("health check round defect", d))
        )
        yield* Effect.sleep(s.interval)
      })
      yield* Effect.forkScoped(Effect.forever(loop))
      if (initial.enabled) {
        yield* Effect.logInfo("health checker on").pipe(Effect.annotateLogs(describe(initial)))
      }
      return { settings, status: () => results }
    })
  )

/** Log fields of health settings. */
export const describe = (s: HealthSettings) => ({
  health_protocol: s.protocol,
  health_port: s.port ?? DEFAULT_PORTS[s.protocol],
  health_interval: Duration.format(s.interval),
  health_timeout: Duration.format(s.timeout),
  health_fall: s.fall,
  health_rise: s.rise
})
