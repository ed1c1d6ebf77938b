/**
 * The lookup cache: user → route, in process memory, read synchronously on the socket hot path
 * (no fiber, no SQL for a hit).
 *
 * Invalidation: a background fiber reads the store's routes version ({@link RouteVersion}) every
 * `refresh`; any change — or any failure to read it — clears the whole cache. The store bumps the
 * version on every change of an existing mapping or of any backend (admin commands, the health
 * checker, the `reassign` policy, and hand-written SQL through database triggers), but not on the
 * insert of a new mapping. So a change reaches every daemon sharing the store within `refresh`
 * (plus one query); `ttl` bounds the age of any entry as a second safety net.
 *
 * A route computed while the cache was being cleared is not stored (generation check), so a stale
 * answer cannot survive an invalidation.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import type { Route } from "./Router.js"
import type { StoreError } from "./RouteStore.js"

/** The store's routes version: a counter that changes whenever a stored route may have changed. */
export class RouteVersion extends Context.Tag("doveroute/RouteVersion")<RouteVersion, {
  readonly current: Effect.Effect<number, StoreError>
}>() {}

/** Cache settings. `enabled: false` turns every call into a miss. */
export interface RouteCacheOptions {
  readonly enabled: boolean
  /** Maximum age of an entry. */
  readonly ttl: Duration.DurationInput
  /** How often the routes version is read (the invalidation bound). */
  readonly refresh: Duration.DurationInput
  /** Maximum number of entries; the oldest are dropped first. */
  readonly maxEntries: number
}

export const DEFAULT_CACHE: RouteCacheOptions = { enabled: true, ttl: "60 seconds", refresh: "1 second", maxEntries: 1_000_000 }

/** The cache as the router and front-ends use it. */
export interface RouteCacheService {
  readonly enabled: boolean
  /** A fresh route for `user`, or `undefined`. */
  readonly get: (user: string) => Route | undefined
  /** The current generation; pass it back to {@link set}. */
  readonly generation: () => number
  /** Store a route computed while `generation` was current (ignored after a clear). */
  readonly set: (user: string, route: Route, generation: number) => void
  readonly clear: () => void
  readonly size: () => number
  /** Hits and misses since start (for metrics). */
  readonly stats: () => { readonly hits: number; readonly misses: number; readonly clears: number }
}

interface Entry {
  readonly route: Route
  readonly expires: number
}

/** A cache object (no background work). */
export const makeCache = (options: RouteCacheOptions, now: () => number = Date.now): RouteCacheService => {
  const ttl = Duration.toMillis(Duration.decode(options.ttl))
  const map = new Map<string, Entry>()
  let gen = 0
  let hits = 0
  let misses = 0
  let clears = 0
  if (!options.enabled) {
    return {
      enabled: false,
      get: () => undefined,
      generation: () => 0,
      set: () => {},
      clear: () => {},
      size: () => 0,
      stats: () => ({ hits: 0, misses, clears: 0 })
    }
  }
  return {
    enabled: true,
    get: (user) => {
      const e = map.get(user)
      if (e === undefined) {
        misses++
        return undefined
      }
      if (e.expires <= now()) {
        map.delete(user)
        misses++
        return undefined
      }
      hits++
      return e.route
    },
    generation: () => gen,
    set: (user, route, generation) => {
      if (generation !== gen) return
      if (map.size >= options.maxEntries && !map.has(user)) {
        const oldest = map.keys().next()
        if (!oldest.done) map.delete(oldest.value)
      }
      map.set(user, { route, expires: now() + ttl })
    },
    clear: () => {
      gen++
      clears++
      map.clear()
    },
    size: () => map.size,
    stats: () => ({ hits, misses, clears })
  }
}

/** Service tag for {@link RouteCacheService}. */
export class RouteCache extends Context.Tag("doveroute/RouteCache")<RouteCache, RouteCacheService>() {
  /**
   * The cache plus its invalidation fiber (for the layer's lifetime). Needs {@link RouteVersion}
   * when enabled.
   */
  static readonly layer = (options: RouteCacheOptions) =>
    Layer.scoped(
      RouteCache,
      Effect.gen(function*() {
        const cache = makeCache(options)
        if (!options.enabled) return cache
        const version = yield* RouteVersion
        let last: number | undefined = yield* version.current.pipe(Effect.orElseSucceed(() => undefined))
        const poll = version.current.pipe(
          Effect.tap((v) =>
            Effect.sync(() => {
              if (v !== last) {
                cache.clear()
                last = v
              }
            })
          ),
          Effect.catchAll((e) =>
            Effect.sync(() => {
              // cannot tell whether routes changed: forget them all
              if (cache.size() > 0) cache.clear()
              last = undefined
            }).pipe(Effect.zipRight(Effect.logDebug("routes version unreadable; cache cleared").pipe(Effect.annotateLogs({ detail: e.detail }))))
          )
        )
        yield* Effect.forkScoped(Effect.repeat(poll, Schedule.spaced(options.refresh)))
        return cache
      })
    )

  /** A disabled cache (tests, CLI). */
  static readonly disabled = Layer.succeed(RouteCache, makeCache({ ...DEFAULT_CACHE, enabled: false }))
}
