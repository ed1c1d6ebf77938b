/**
 * The bridge from socket code (plain callbacks) to the routing core (Effect): one runtime captured
 * at start, one `Promise` per request. Every failure — route error, store error or a defect — is
 * logged once here and becomes a `TempFail` outcome; front-ends map it to `temp_fail` / dict `F`.
 *
 * @since 0.1.0
 */
import { type Route, RouteError, Router, StoreError, type TempFailReason } from "@doveroute/routing"
import { Context, Duration, Effect, Exit, FiberId, Layer, LogLevel, Runtime } from "effect"
import { logLevelGate } from "./ListenerLog.js"

/** The outcome of one routing request. */
export type LookupResult =
  | { readonly _tag: "Routed"; readonly route: Route }
  | { readonly _tag: "TempFail"; readonly reason: TempFailReason; readonly detail: string }

/**
 * Front-end facing routing: `lookup(user, frontend, tag)` never rejects. `tag` is the request's
 * tag (the passdb's `director_tag`; undefined or `""`: none), used when a backend is chosen.
 */
export interface LookupService {
  readonly lookup: (user: string, frontend: string, tag?: string) => Promise<LookupResult>
  /**
   * The answer at once when it needs no wait (the user is in the routing table or the lookup
   * cache), counted and logged as {@link lookup} would; `undefined`: ask {@link lookup}. A
   * front-end may then answer within the socket read that brought the request. Optional: a
   * service without it always goes through {@link lookup}.
   */
  readonly cached?: (user: string, frontend: string, tag?: string) => LookupResult | undefined
}

/** Options of {@link Lookup.layerWith}. */
export interface LookupOptions {
  /**
   * The longest a routing decision that misses the cache may take (all its store statements
   * together); then the request is answered `TempFail` (reason `LookupTimeout`, unlike a statement's `Timeout`) and the routing fiber is
   * interrupted. 0 or undefined = no deadline (each statement still has the store's query timeout).
   */
  readonly deadline?: Duration.DurationInput | undefined
}

const INTERNAL: LookupResult = { _tag: "TempFail", reason: "Internal", detail: "internal error" }

const make = (options: LookupOptions) =>
  Effect.gen(function*() {
    const router = yield* Router
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const deadlineMs = options.deadline === undefined ? 0 : Math.max(0, Duration.toMillis(Duration.decode(options.deadline)))
    // the success path stays free of log effects unless debug logging is on (checked per lookup,
    // hits included: the daemon's level can change on SIGHUP)
    const enabled = yield* logLevelGate
    const routed = (route: Route): LookupResult => ({ _tag: "Routed", route })
    const failed = (frontend: string, user: string) => (e: RouteError | StoreError) =>
      Effect.as(
        Effect.logWarning("routing failed, answering temp_fail").pipe(
          Effect.annotateLogs({ frontend, user, reason: e.reason, detail: e.detail })
        ),
        { _tag: "TempFail", reason: e.reason, detail: e.detail } as LookupResult
      )
    const defect = (frontend: string, user: string) => (d: unknown) =>
      Effect.as(
        Effect.logError("routing defect, answering temp_fail", d).pipe(Effect.annotateLogs({ frontend, user })),
        INTERNAL
      )
    const logRouted = (frontend: string, user: string) => (route: Route) =>
      Effect.logDebug("routed").pipe(
        Effect.annotateLogs({ frontend, user, backend: route.backend.hostname, backend_id: route.backend.id, source: route.source })
      )
    const cached = (user: string, frontend: string, tag?: string): LookupResult | undefined => {
      // the hot path: a route from memory answers without a fiber or a query
      const hit = router.cached(user, tag)
      if (hit === undefined) return undefined
      // at debug level a route from memory is logged like one from the store (no fiber otherwise)
      if (enabled(LogLevel.Debug)) runFork(logRouted(frontend, user)(hit))
      return routed(hit)
    }
    const lookup = (user: string, frontend: string, tag?: string): Promise<LookupResult> => {
      const hit = cached(user, frontend, tag)
      if (hit !== undefined) return Promise.resolve(hit)
      const routeEff = enabled(LogLevel.Debug) ? Effect.tap(router.route(user, tag), logRouted(frontend, user)) : router.route(user, tag)
      const fiber = runFork(
        routeEff.pipe(
          Effect.map(routed),
          Effect.catchAll(failed(frontend, user)),
          Effect.catchAllDefect(defect(frontend, user))
        )
      )
      return new Promise((resolve) => {
        const timer = deadlineMs > 0
          ? setTimeout(() => {
            const detail = `no routing decision within ${deadlineMs} ms (lookup_timeout)`
            resolve({ _tag: "TempFail", reason: "LookupTimeout", detail })
            runFork(
              Effect.logWarning("routing took too long, answering temp_fail").pipe(
                Effect.annotateLogs({ frontend, user, reason: "LookupTimeout", detail })
              )
            )
            // statements already sent finish in the background; the first insert is idempotent
            fiber.unsafeInterruptAsFork(FiberId.none)
          }, deadlineMs)
          : undefined
        fiber.addObserver((exit) => {
          if (timer !== undefined) clearTimeout(timer)
          resolve(Exit.isSuccess(exit) ? exit.value : INTERNAL)
        })
      })
    }
    return { lookup, cached }
  })

export class Lookup extends Context.Tag("doveroute/Lookup")<Lookup, LookupService>() {
  /** Needs the {@link Router}. No lookup deadline (each store statement has its own timeout). */
  static readonly layer = Layer.effect(Lookup, make({}))
  /** Needs the {@link Router}; with a per-lookup deadline ({@link LookupOptions}). */
  static readonly layerWith = (options: LookupOptions) => Layer.effect(Lookup, make(options))
}

export { RouteError, StoreError }
