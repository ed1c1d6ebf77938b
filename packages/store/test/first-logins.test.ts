// Grouped first logins (Router.ts `routeFirst`, SqlRouteStore `assignMany`) on every store: SQLite
// file, PostgreSQL and MariaDB (fresh database or schema per test, see helpers.ts), through the
// daemon's composition: the routing table kept in step by the change feed, move holds and
// placement weights from the store. it.live: the feed and the grouping run on the real clock.
import { describe, expect, it } from "@effect/vitest"
import { RouteCache, RouteError, Router, RouteTable, StoreError, type Strategy } from "@doveroute/routing"
import { ChangeFeed, Operations, parseStoreUrl, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, type Duration, Effect, Exit, Layer } from "effect"
import { dropFileDatabaseAfterAll, withDatabase } from "./helpers.js"
import { seed, tableReady } from "./first-login-fixtures.js"

dropFileDatabaseAfterAll()

/** One daemon's routing: router with the table (refresh 100 ms), holds and weights, its own pool. */
const daemonLayer = (url: string, strategy: Strategy = "mapping", refresh: Duration.DurationInput = "100 millis") =>
  Router.layerCached({ strategy, downPolicy: "keep" }).pipe(
    Layer.provideMerge(
      Layer.merge(
        RouteTable.layer({ refresh, maxStale: 0, keepChanges: 100_000 }).pipe(
          Layer.provide(ChangeFeed.layer(strategy, "5 seconds"))
        ),
        RouteCache.disabled
      )
    ),
    Layer.provide(Layer.mergeAll(Operations.placementInfoLayer("5 seconds"), Operations.routeHoldsLayer("5 seconds"))),
    Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy, sqliteLocks: "retry" }))
  )

type Daemon = Layer.Layer.Success<ReturnType<typeof daemonLayer>>



/** Every stored row of `user_backend` (mapping): user → backend id. */
const storedRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ u: string; b: number | string }>`SELECT ${sql("user")} AS u, backend_id AS b FROM user_backend`,
    (rows) => {
      const m = new Map<string, Array<number>>()
      for (const r of rows) m.set(String(r.u), [...(m.get(String(r.u)) ?? []), Number(r.b)])
      return m
    }
  ))

const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`)

const start = (url: string, refresh?: Duration.DurationInput) => Layer.build(daemonLayer(url, "mapping", refresh))

const inDaemon = <A, E>(ctx: Context.Context<Daemon>, eff: Effect.Effect<A, E, Daemon>) => Effect.provide(eff, ctx)

describe.concurrent.each(["sqlite", "postgres", "mysql"] as const)("first logins on %s", (kind) => {
  it.live("without the routing table (table.mode cache) first logins are grouped too: each OK names the stored row", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(
          Router.layerCached({ strategy: "mapping", downPolicy: "keep" }).pipe(
            Layer.provideMerge(
              RouteCache.layer({ enabled: true, ttl: "60 seconds", maxEntries: 10_000, refresh: "100 millis" }).pipe(
                Layer.provide(Operations.routeVersionLayer("5 seconds"))
              )
            ),
            Layer.provide(Layer.mergeAll(Operations.placementInfoLayer("5 seconds"), Operations.routeHoldsLayer("5 seconds"))),
            Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy: "mapping", sqliteLocks: "retry" }))
          )
        )
        yield* Effect.provide(seed, d)
        const router = Context.get(d, Router)
        const names = users("cm", 200)
        const routes = yield* Effect.all(names.map((u) => router.route(u)), { concurrency: "unbounded" })
        const stats = router.firstLoginGroups()!
        expect(stats.members).toBe(200)
        expect(stats.groups).toBeLessThan(40)
        expect(stats.largest).toBeGreaterThan(10)
        const stored = yield* Effect.provide(storedRows, d)
        expect(stored.size).toBe(200)
        for (const r of routes) {
          expect(r.source).toBe("assigned")
          expect(stored.get(r.user)).toEqual([r.backend.id])
          expect(r.backend.state).toBe(0)
        }
        // a known user is not grouped again: found by its read, answered from the cache after
        const again = yield* router.route(names[0]!)
        expect(again.backend.id).toBe(routes[0]!.backend.id)
        expect(router.firstLoginGroups()!.members).toBe(200)
      })))
  )

  it.live("300 concurrent first logins go in groups; each OK names the stored row, and the table learns it", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* start(url)
        yield* inDaemon(d, seed)
        const table = yield* inDaemon(d, tableReady)
        const router = Context.get(d, Router)
        const names = users("new", 300)
        const routes = yield* Effect.all(names.map((u) => router.route(u)), { concurrency: "unbounded" })
        const stats = router.firstLoginGroups()!
        // grouped: far fewer groups than logins, and at least one group of many
        expect(stats.members).toBe(300)
        expect(stats.groups).toBeLessThan(30)
        expect(stats.largest).toBeGreaterThan(10)
        const stored = yield* inDaemon(d, storedRows)
        expect(stored.size).toBe(300)
        for (const r of routes) {
          expect(r.source).toBe("assigned")
          expect(r.backend.state).toBe(0)
          expect(stored.get(r.user)).toEqual([r.backend.id])
          expect(table.lookup(r.user, Date.now())?.id).toBe(r.backend.id)
        }
        // both up backends received users (random placement over the group)
        expect(new Set(routes.map((r) => r.backend.id)).size).toBe(2)
        // a known user is now answered from memory
        expect(router.cached(names[0]!)?.backend.id).toBe(routes[0]!.backend.id)
      }))))

  it.live("two daemons on one store racing the same 200 new users (each twice) agree on one row per user", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const one = yield* start(url)
        const two = yield* start(url)
        yield* inDaemon(one, seed)
        yield* inDaemon(one, tableReady)
        yield* inDaemon(two, tableReady)
        const r1 = Context.get(one, Router)
        const r2 = Context.get(two, Router)
        const names = users("race", 200)
        const calls = names.flatMap((u) => [r1.route(u), r2.route(u), r2.route(u), r1.route(u)])
        const routes = yield* Effect.all(calls, { concurrency: "unbounded" })
        const stored = yield* inDaemon(one, storedRows)
        expect(stored.size).toBe(200)
        const byUser = new Map<string, Set<number>>()
        for (const r of routes) byUser.set(r.user, (byUser.get(r.user) ?? new Set()).add(r.backend.id))
        for (const u of names) {
          expect([...byUser.get(u)!]).toEqual(stored.get(u))
        }
        expect(r1.firstLoginGroups()!.groups).toBeGreaterThan(0)
        expect(r2.firstLoginGroups()!.groups).toBeGreaterThan(0)
      }))))

  it.live("rows another daemon stored that the table has not learned yet: the group answers the stored rows", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const one = yield* start(url)
        yield* inDaemon(one, seed)
        yield* inDaemon(one, tableReady)
        // daemon two loads its table once (the backends), then does not read the feed again
        const two = yield* start(url, "1 hour")
        yield* inDaemon(two, tableReady)
        const r1 = Context.get(one, Router)
        const r2 = Context.get(two, Router)
        const names = users("before", 100)
        const first = yield* Effect.all(names.map((u) => r1.route(u)), { concurrency: "unbounded" })
        const again = yield* Effect.all(names.map((u) => r2.route(u)), { concurrency: "unbounded" })
        expect(r2.firstLoginGroups()!.members).toBe(100)
        const stored = yield* inDaemon(one, storedRows)
        expect(stored.size).toBe(100)
        for (let i = 0; i < names.length; i++) {
          expect(again[i]!.backend.id).toBe(first[i]!.backend.id)
          expect(stored.get(names[i]!)).toEqual([first[i]!.backend.id])
        }
      }))))

  it.live("a held new user stays held inside a group; the others of the group are placed", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* start(url)
        yield* inDaemon(d, seed)
        const sql = Context.get(d, SqlClient.SqlClient)
        yield* sql`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES (${"held0001"}, 1, ${Date.now() + 60_000})`
        yield* inDaemon(d, tableReady)
        const router = Context.get(d, Router)
        const names = [...users("free", 20), "held0001"]
        const exits = yield* Effect.all(names.map((u) => Effect.exit(router.route(u))), { concurrency: "unbounded" })
        const held = exits[20]!
        expect(Exit.isFailure(held)).toBe(true)
        if (Exit.isFailure(held)) {
          const e = held.cause._tag === "Fail" ? held.cause.error : undefined
          expect(e).toBeInstanceOf(RouteError)
          expect((e as RouteError).reason).toBe("Held")
        }
        expect(exits.slice(0, 20).every(Exit.isSuccess)).toBe(true)
        const stored = yield* inDaemon(d, storedRows)
        expect(stored.has("held0001")).toBe(false)
        expect(stored.size).toBe(20)
        expect(router.firstLoginGroups()!.largest).toBeGreaterThan(1)
      }))))

  it.live("a failing group (user_backend gone) answers a store failure for each member, never a backend", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* start(url)
        yield* inDaemon(d, seed)
        yield* inDaemon(d, tableReady)
        const sql = Context.get(d, SqlClient.SqlClient)
        yield* sql`ALTER TABLE user_backend RENAME TO user_backend_gone`
        const router = Context.get(d, Router)
        const exits = yield* Effect.all(users("fail", 30).map((u) => Effect.exit(router.route(u))), { concurrency: "unbounded" })
        for (const ex of exits) {
          expect(Exit.isFailure(ex)).toBe(true)
          if (Exit.isFailure(ex)) expect(ex.cause._tag === "Fail" ? ex.cause.error : ex.cause).toBeInstanceOf(StoreError)
        }
        expect(router.firstLoginGroups()!.largest).toBeGreaterThan(1)
      }))))

  it.live("one key the statement refuses (longer than the column) fails alone; the rest of its group is placed", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* start(url)
        yield* inDaemon(d, seed)
        yield* inDaemon(d, tableReady)
        const router = Context.get(d, Router)
        const long = "x".repeat(300)
        const names = [...users("ok", 20), long]
        const exits = yield* Effect.all(names.map((u) => Effect.exit(router.route(u))), { concurrency: "unbounded" })
        expect(exits.slice(0, 20).every(Exit.isSuccess)).toBe(true)
        const stored = yield* inDaemon(d, storedRows)
        // SQLite does not enforce VARCHAR(255); PostgreSQL and MariaDB (strict mode) refuse the row
        if (kind === "sqlite") {
          expect(Exit.isSuccess(exits[20]!)).toBe(true)
          expect(stored.size).toBe(21)
        } else {
          expect(Exit.isFailure(exits[20]!)).toBe(true)
          expect(stored.size).toBe(20)
        }
        for (const ex of exits) if (Exit.isSuccess(ex)) expect(stored.get(ex.value.user)).toEqual([ex.value.backend.id])
      }))))
})
