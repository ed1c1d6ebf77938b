/**
 * The optional backend health checker (`health` section, HealthSettings.ts): every `interval` it
 * probes each backend (HealthProbe.ts: connect to `hostip`, else `hostname`, on the backend's
 * `check_port`, else `health.port`, else the protocol's port; greeting, TLS, optional login) within
 * `timeout`. It records `last_health` / `last_health_at`, marks an up backend (state 0) down by
 * health (state 3) after `fall` consecutive failures and brings a state-3 backend up after `rise`
 * consecutive successes. It never touches state 1 (admin down) or 2 (drain). Flips are
 * compare-and-set in the store (`Health.markHealthDown/Up`), safe with several daemons on one
 * database.
 *
 * Settings are read every round from a holder the SIGHUP reload replaces.
 *
 * @since 0.1.0
 */
import { Health } from "@doveroute/store"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { type FailureKind, probe, type ProbeResult } from "./HealthProbe.js"
import { checkPort, describe, type HealthSettings } from "./HealthSettings.js"
import * as OpsEvents from "./OpsEvents.js"

export { describe } from "./HealthSettings.js"

/** Probe one backend with the settings; a backend without any port to check fails. */
const probeBackend = (s: HealthSettings, b: Health.CheckedBackend): Promise<ProbeResult> => {
  const port = checkPort(s, b.checkPort)
  const address = b.hostip !== null && b.hostip !== "" ? b.hostip : b.hostname
  if (port === undefined) return Promise.resolve({ ok: false, failure: "protocol", detail: `fail protocol: ${b.hostname}: no port to check` })
  return probe({ address, hostname: b.hostname, port }, {
    protocol: s.protocol,
    tls: s.tls,
    tlsVerify: s.tlsVerify,
    tlsCa: s.tlsCa,
    timeoutMs: Duration.toMillis(s.timeout),
    login: s.login === undefined ? undefined : { user: s.login.user, password: Redacted.value(s.login.password) }
  })
}

/** What the checker last saw of a backend (metrics). */
export interface BackendHealth {
  readonly hostname: string
  readonly ok: boolean
  readonly fails: number
  readonly oks: number
}

/** Failed probes of one backend of one kind, since start (metrics). */
export interface FailureCount {
  readonly hostname: string
  readonly id: number
  readonly kind: FailureKind
  readonly count: number
}

/** The running checker: its settings holder (replaced on reload), the latest results and failure counts. */
export interface HealthCheckerService {
  readonly settings: { current: HealthSettings }
  readonly status: () => ReadonlyMap<number, BackendHealth>
  readonly failures: () => ReadonlyArray<FailureCount>
}

export class HealthChecker extends Context.Tag("doveroute/HealthChecker")<HealthChecker, HealthCheckerService>() {}

/**
 * Mark a backend down (0 → 3) or up (3 → 0) with the store's compare-and-set `mark`; when this
 * daemon made the change, count it (metrics) and log it (a warning going down) with `why`.
 */
const flip = <E, R>(
  b: Health.CheckedBackend,
  mark: Effect.Effect<boolean, E, R>,
  direction: "down" | "up",
  log: <A, E1, R1>(self: Effect.Effect<A, E1, R1>) => Effect.Effect<A, E1, R1>,
  why: Readonly<Record<string, unknown>>
) =>
  Effect.gen(function*() {
    if (!(yield* mark)) return
    const [from, to] = direction === "down" ? [Health.STATE_UP, Health.STATE_HEALTH_DOWN] : [Health.STATE_HEALTH_DOWN, Health.STATE_UP]
    const t = { backend: b.hostname, id: String(b.id), from: OpsEvents.stateName(from), to: OpsEvents.stateName(to) }
    OpsEvents.transitioned(t)
    const logAt = direction === "down" ? Effect.logWarning : Effect.logInfo
    yield* logAt(`backend marked ${direction} by the health checker (${t.from} -> ${t.to})`).pipe(
      log,
      Effect.annotateLogs({ from: t.from, to: t.to, ...why })
    )
  })

/** One round over every backend. */
const round = (s: HealthSettings, results: Map<number, BackendHealth>, failures: Map<string, FailureCount>) =>
  Effect.gen(function*() {
    const columns = yield* Health.healthColumns
    const backends = yield* Health.listBackends(columns)
    const seen = new Set<number>()
    yield* Effect.forEach(backends, (b) =>
      Effect.gen(function*() {
        seen.add(b.id)
        const r = yield* Effect.promise(() => probeBackend(s, b))
        if (r.failure !== undefined) {
          const key = `${b.id}\u0000${r.failure}`
          const c = failures.get(key)
          failures.set(key, { hostname: b.hostname, id: b.id, kind: r.failure, count: (c?.count ?? 0) + 1 })
        }
        const prev = results.get(b.id)
        const fails = r.ok ? 0 : (prev?.fails ?? 0) + 1
        const oks = r.ok ? (prev?.oks ?? 0) + 1 : 0
        results.set(b.id, { hostname: b.hostname, ok: r.ok, fails, oks })
        const log = Effect.annotateLogs({
          backend: b.hostname,
          backend_id: b.id,
          state: OpsEvents.stateName(b.state),
          result: r.detail,
          ...(r.failure !== undefined ? { failure: r.failure } : {})
        })
        yield* Health.recordHealth(b.id, r.detail, columns.lastHealth)
        if (!r.ok && prev?.ok !== false) yield* Effect.logWarning("backend health check failed").pipe(log)
        if (r.ok && prev?.ok === false) yield* Effect.logInfo("backend health check passes again").pipe(log)
        if (!r.ok && b.state === Health.STATE_UP && fails >= s.fall) {
          yield* flip(b, Health.markHealthDown(b.id), "down", log, {
            failures: fails,
            reason: `${fails} failed checks in a row (fall ${s.fall}): ${r.detail}`
          })
        } else if (r.ok && b.state === Health.STATE_HEALTH_DOWN && oks >= s.rise) {
          yield* flip(b, Health.markHealthUp(b.id), "up", log, {
            successes: oks,
            reason: `${oks} passed checks in a row (rise ${s.rise}): ${r.detail}`
          })
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
      const failures = new Map<string, FailureCount>()
      const loop = Effect.gen(function*() {
        const s = settings.current
        if (!s.enabled) {
          results.clear()
          return yield* Effect.sleep("1 second")
        }
        yield* round(s, results, failures).pipe(
          Effect.catchAll((e) => Effect.logWarning("health check round failed").pipe(Effect.annotateLogs({ detail: e.message }))),
          Effect.catchAllDefect((d) => Effect.logError("health check round defect", d))
        )
        yield* Effect.sleep(s.interval)
      })
      yield* Effect.forkScoped(Effect.forever(loop))
      if (initial.enabled) {
        yield* Effect.logInfo("health checker on").pipe(Effect.annotateLogs(describe(initial)))
      }
      return { settings, status: () => results, failures: () => [...failures.values()] }
    })
  )
