// The routing table against races on the real stores (PostgreSQL, MariaDB), each table stepped by
// hand (makeSync) over the store's change feed:
// - a change whose transaction is still open while a table loads (its feed position below the
//   load's head, committed after it) reaches the table: a hole in the replayed range is waited for;
// - MariaDB's case-insensitive collation: a move lock (and its login hold) is taken under the key as
//   user_backend stores it, so the hold reaches the routing tables under the key they route, and two
//   spellings contend for one lock;
// - a first assignment the login path added to its table is checked against the store at the next
//   refresh: two routers racing a first login of one MariaDB key in two spellings leave no table
//   routing the spelling the store does not hold (which no later move would reach), and a row
//   removed without a feed entry is not served from memory;
// - PostgreSQL: a feed row written by hand with an explicit id neither makes the sequence collide
//   (failing user_backend writes) nor freezes the feed (migration 0010).
import { describe, expect, it } from "@effect/vitest"
import { makeSync, makeTable, RouteFeed, Router, RouteStore, RouteTable, type RoutingTable } from "@doveroute/routing"
import { AdminOps, ChangeFeed, parseStoreUrl, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Deferred, Effect, Either, Fiber, Layer } from "effect"
import { dropFileDatabaseAfterAll, type StoreKind, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const OPTS = { refresh: "1 second", maxStale: 0, keepChanges: 1000 } as const

const layers = (url: string) => {
  const store = storeLayer({ url: parseStoreUrl(url), strategy: "mapping", migrate: true })
  return Layer.merge(ChangeFeed.layer("mapping", "5 seconds").pipe(Layer.provide(store)), store)
}

const userCol = (kind: StoreKind) => (kind === "mysql" ? "`user`" : `"user"`)
const at = (t: RoutingTable, key: string) => t.lookup(key, Date.now())?.hostname

const seedBackends = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe(`INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'b1.test', NULL, 0), (2, 'b2.test', NULL, 0)`))

/**
 * One daemon's parts on its own pool: the store, its feed, a table stepped by hand and a router
 * answering from it. `pause`: the router's store stops after its first `findAssigned` (telling
 * `found`) until `go`, to line up a race with another daemon.
 */
const daemon = (url: string, pause?: { readonly found: Deferred.Deferred<void>; readonly go: Deferred.Deferred<void> }) =>
  Effect.gen(function*() {
    const ctx = yield* Layer.build(layers(url))
    const feed = Context.get(ctx, RouteFeed)
    const store = Context.get(ctx, RouteStore)
    const table = makeTable()
    const sync = makeSync(feed, table, OPTS)
    // the paused daemon routes first logins one by one (no groups): the pause sits after its lookup,
    // and a key a group's read-back cannot see (the collation folds it) takes that path anyway
    const { assignMany: _grouped, ...oneByOne } = store
    const paused = pause === undefined ? store : {
      ...oneByOne,
      findAssigned: (key: Parameters<typeof store.findAssigned>[0]) =>
        store.findAssigned(key).pipe(Effect.tap(() => Deferred.succeed(pause.found, undefined)), Effect.zipLeft(Deferred.await(pause.go)))
    }
    const router = yield* Effect.provide(
      Router,
      Router.layer({ strategy: "mapping", downPolicy: "keep" }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(RouteStore, paused), Layer.succeed(RouteTable, { table, status: sync.status })))
      )
    )
    return { sql: Context.get(ctx, SqlClient.SqlClient), table, sync, router }
  })

describe.each(["postgres", "mysql"] as const)("routing table races on %s", (kind) => {
  it.effect("a change committed after a table load, at a position below the load's head, reaches the table", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const feed = yield* RouteFeed
        const u = userCol(kind)
        yield* seedBackends
        // transaction A takes its feed position and stays open; B takes the next one and commits
        const inserted = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        const a = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (1, 'late')`)
          yield* Deferred.succeed(inserted, undefined)
          yield* Deferred.await(commit)
        })))
        yield* Deferred.await(inserted)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (2, 'early')`)

        const table = makeTable()
        const sync = makeSync(feed, table, OPTS)
        yield* sync.step // the load: its head is B's position, its snapshot lacks A's row
        expect(sync.status()).toMatchObject({ loaded: true, reloads: 1 })
        expect(at(table, "early")).toBe("b2.test")
        expect(at(table, "late"), "A has not committed").toBeUndefined()

        yield* Deferred.succeed(commit, undefined)
        yield* Fiber.join(a)
        const positions = yield* sql<{ id: number | string; k: string }>`SELECT id, route_key AS k FROM doveroute_changes
          WHERE kind = 'u' ORDER BY id`
        expect(positions.map((r) => r.k), "A's position is below B's").toEqual(["late", "early"])
        yield* sync.step
        expect(at(table, "late"), "A's change, committed after the load, is in the table").toBe("b1.test")
        expect(sync.status().reloads).toBe(1)
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })
})

describe("move lock on MariaDB's case-insensitive keys", () => {
  it.effect("the lock and its login hold name the key as user_backend stores it; both spellings contend for it", () =>
    withDatabase("mysql", (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const feed = yield* RouteFeed
        yield* seedBackends
        yield* sql.unsafe("INSERT INTO user_backend (backend_id, `user`) VALUES (1, 'alice@x')")
        const table = makeTable()
        const sync = makeSync(feed, table, OPTS)
        yield* sync.step
        expect(at(table, "alice@x")).toBe("b1.test")

        // `user move Alice@x --kick`: the lock with a login hold
        yield* AdminOps.lockKey("Alice@x", true, Date.now() + 60_000)
        const locks = yield* sql<{ k: string }>`SELECT route_key AS k FROM doveroute_moves`
        expect(locks.map((r) => r.k), "the stored spelling").toEqual(["alice@x"])
        const second = yield* Effect.either(AdminOps.lockKey("alice@x", false, Date.now() + 60_000))
        expect(Either.isLeft(second) && second.left._tag === "AdminError" && second.left.reason).toBe("TryAgain")
        yield* sync.step
        expect(at(table, "alice@x"), "held: logins of the routed key go the store path (temp_fail)").toBeUndefined()

        yield* AdminOps.unlockKey("Alice@x")
        expect(yield* sql`SELECT route_key FROM doveroute_moves`).toEqual([])
        yield* sync.step
        expect(at(table, "alice@x"), "released").toBe("b1.test")

        // a key without a row is locked as given
        yield* AdminOps.lockKey("Nobody@x", false, Date.now() + 60_000)
        expect((yield* sql<{ k: string }>`SELECT route_key AS k FROM doveroute_moves`).map((r) => r.k)).toEqual(["Nobody@x"])
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })
})

describe("first assignments the login path adds are confirmed by the store", () => {
  it.live("MariaDB: two routers race a first login in two spellings; no table keeps the spelling the store does not hold", () =>
    withDatabase("mysql", (url) =>
      Effect.scoped(Effect.gen(function*() {
        const found = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        const one = yield* daemon(url)
        const two = yield* daemon(url, { found, go })
        yield* Effect.provideService(seedBackends, SqlClient.SqlClient, one.sql)
        yield* one.sync.step
        yield* two.sync.step

        // daemon two finds no row for alice@x; meanwhile daemon one places Alice@x; two's insert
        // then meets that row (case-insensitive unique key) and reads it back
        const late = yield* Effect.fork(two.router.route("alice@x"))
        yield* Deferred.await(found)
        const first = yield* one.router.route("Alice@x")
        expect(first.source).toBe("assigned")
        yield* Deferred.succeed(go, undefined)
        const second = yield* Fiber.join(late)
        expect(second).toMatchObject({ source: "assigned", backend: { id: first.backend.id } })
        const stored = yield* one.sql<{ k: string }>`SELECT ${one.sql("user")} AS k FROM user_backend`
        expect(stored.map((r) => r.k)).toEqual(["Alice@x"])

        yield* one.sync.step
        yield* two.sync.step
        expect(two.table.lookup("alice@x", Date.now()), "a spelling the store does not hold is dropped").toBeUndefined()
        expect(two.table.lookup("Alice@x", Date.now())?.id).toBe(first.backend.id)

        // an admin move of the stored row: no daemon routes either spelling to the old backend
        const other = first.backend.id === 1 ? 2 : 1
        yield* one.sql`UPDATE user_backend SET backend_id = ${other} WHERE ${one.sql("user")} = 'Alice@x'`
        yield* one.sync.step
        yield* two.sync.step
        for (const d of [one, two]) {
          for (const user of ["alice@x", "Alice@x"]) {
            const r = d.router.cached(user)
            expect(r === undefined || r.backend.id === other, `${user} after the move`).toBe(true)
          }
        }
        expect(two.router.cached("Alice@x")?.backend.id).toBe(other)
      }))
    ), { timeout: 60_000 })

  it.live("PostgreSQL: a row removed without a feed entry after the login path added it is not served from memory", () =>
    withDatabase("postgres", (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* daemon(url)
        const sql = d.sql
        yield* Effect.provideService(seedBackends, SqlClient.SqlClient, sql)
        yield* d.sync.step
        const r = yield* d.router.route("carol")
        expect(r.source).toBe("assigned")
        expect(d.router.cached("carol")?.backend.id, "joined the table").toBe(r.backend.id)
        // the row goes without a trigger (as a lost commit would): no feed entry tells the table
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`SET LOCAL session_replication_role = replica`)
          yield* sql.unsafe(`DELETE FROM user_backend WHERE "user" = 'carol'`)
        }))
        yield* d.sync.step
        expect(d.router.cached("carol"), "dropped at the next refresh").toBeUndefined()
        // a first assignment the store holds stays
        const e = yield* d.router.route("erin")
        yield* d.sync.step
        expect(d.router.cached("erin")?.backend.id).toBe(e.backend.id)
        expect(d.table.unconfirmed()).toEqual([])
      }))
    ), { timeout: 60_000 })
})

describe("PostgreSQL: feed rows written by hand with an explicit id", () => {
  const started = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const feed = yield* RouteFeed
    yield* seedBackends
    yield* sql.unsafe(`INSERT INTO user_backend (backend_id, "user") VALUES (1, 'alice')`)
    const table = makeTable()
    const sync = makeSync(feed, table, OPTS)
    yield* sync.step
    return { sql, table, sync, head: yield* feed.head }
  })
  const consecutive = (sql: SqlClient.SqlClient, head: number) =>
    Effect.gen(function*() {
      const ids = (yield* sql<{ id: string | number }>`SELECT id FROM doveroute_changes WHERE id > ${head} ORDER BY id`).map((r) => Number(r.id))
      expect(ids, "positions stay consecutive").toEqual(Array.from({ length: ids.length }, (_, i) => head + 1 + i))
    })

  it.effect("an id the sequence hands out next does not make the next trigger insert fail", () =>
    withDatabase("postgres", (url) =>
      Effect.gen(function*() {
        const { head, sql, sync, table } = yield* started
        yield* sql.unsafe(`INSERT INTO doveroute_changes (id, kind, route_key, backend_id) VALUES (${head + 1}, 'u', 'hand', 2)`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, "user") VALUES (2, 'bob')`)
        yield* sync.step
        expect(at(table, "bob")).toBe("b2.test")
        expect(at(table, "hand"), "the hand-written entry is read like any").toBe("b2.test")
        yield* consecutive(sql, head)
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })

  it.effect("an id far ahead does not freeze the feed", () =>
    withDatabase("postgres", (url) =>
      Effect.gen(function*() {
        const { head, sql, sync, table } = yield* started
        yield* sql.unsafe(`INSERT INTO doveroute_changes (id, kind, route_key, backend_id) VALUES (${head + 100_000}, 'u', 'hand', 2)`)
        yield* sync.step
        yield* sql.unsafe(`UPDATE user_backend SET backend_id = 2 WHERE "user" = 'alice'`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, "user") VALUES (1, 'carol')`)
        yield* sync.step
        yield* sync.step
        expect(at(table, "hand")).toBe("b2.test")
        expect(at(table, "alice"), "a change after the hand-written row").toBe("b2.test")
        expect(at(table, "carol")).toBe("b1.test")
        yield* consecutive(sql, head)
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })
})
