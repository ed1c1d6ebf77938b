/**
 * The daemon's side of the ring view (the store's Ring.ts): at start and every
 * `heartbeat_interval` it replaces its row in `doveroute_daemons` — host, pid, version, start time,
 * the last store error it met (a lookup's temp_fail for a store reason, or a failed heartbeat) and
 * the routes it holds in memory (routing table rows, or lookup cache entries) — and removes the row when it stops cleanly. A heartbeat
 * that fails is remembered as the last store error and never stops the daemon. A store without the
 * table (`migrate` off, not migrated yet) gets no heartbeat: one log line says so.
 *
 * @since 0.1.0
 */
import { Lookup } from "@doveroute/frontends"
import { isStoreErrorReason, RouteCache, RouteTable } from "@doveroute/routing"
import { Ring } from "@doveroute/store"
import { Duration, Effect, Layer, Option, Schedule } from "effect"
import * as os from "node:os"
import * as OpsEvents from "./OpsEvents.js"
import type { Settings } from "./Settings.js"
import { VERSION } from "./Version.js"

/** The heartbeat fiber (needs the store's SqlClient, from the routing layer). */
export const heartbeatLayer = (settings: Settings) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const available = yield* Effect.orElseSucceed(Ring.ringAvailable, () => false)
    if (!available) {
      return yield* Effect.logInfo(`no ${Ring.DAEMONS_TABLE} table: this daemon is not listed by doveroute status (run doveroute migrate)`)
    }
    const cache = yield* Effect.serviceOption(RouteCache)
    const table = yield* Effect.serviceOption(RouteTable)
    // routes held in memory: the routing table once loaded, else the lookup cache (table.mode cache)
    const tableSize = (): number | null =>
      Option.isSome(table) ? (table.value.table.loaded() ? table.value.table.size() : null)
      : Option.isSome(cache) && cache.value.enabled ? cache.value.size() : null
    const host = os.hostname()
    const pid = process.pid
    const startedAt = Date.now()
    const intervalMs = Duration.toMillis(settings.routing.heartbeatInterval)
    let failing = false
    const beatOnce = Effect.suspend(() => {
      const err = OpsEvents.lastStoreFailure()
      return Ring.beat({
        host,
        pid,
        version: VERSION,
        startedAt,
        lastSeen: Date.now(),
        intervalMs,
        lastStoreError: err?.detail ?? null,
        lastStoreErrorAt: err?.at ?? null,
        tableSize: tableSize()
      })
    }).pipe(
      Effect.timeoutFail({ duration: settings.queryTimeout, onTimeout: () => new Error("record heartbeat: timed out") }),
      Effect.tap(() => Effect.sync(() => { failing = false })),
      Effect.catchAll((e) =>
        Effect.gen(function*() {
          OpsEvents.storeFailed(`heartbeat: ${e.message}`)
          if (!failing) yield* Effect.logWarning("cannot record this daemon's heartbeat").pipe(Effect.annotateLogs("detail", e.message))
          failing = true
        }))
    )
    yield* Effect.ignore(Ring.forgetGone(startedAt))
    yield* beatOnce
    yield* Effect.forkScoped(Effect.repeat(beatOnce, Schedule.spaced(settings.routing.heartbeatInterval)))
    yield* Effect.addFinalizer(() => Ring.leave(host, pid).pipe(Effect.timeout(settings.queryTimeout), Effect.ignore))
  }))

/**
 * {@link Lookup} that remembers the detail of each store temp_fail for the heartbeat (one branch
 * per reply; no Effect on the request path).
 */
export const noteStoreErrors = Layer.effect(
  Lookup,
  Effect.map(Lookup, (base) => ({
    lookup: (user: string, frontend: string, tag?: string) =>
      base.lookup(user, frontend, tag).then((r) => {
        if (r._tag === "TempFail" && isStoreErrorReason(r.reason)) OpsEvents.storeFailed(`${r.reason}: ${r.detail}`)
        return r
      }),
    // an answer from memory is never a store error
    ...(base.cached !== undefined ? { cached: base.cached } : {})
  }))
)
