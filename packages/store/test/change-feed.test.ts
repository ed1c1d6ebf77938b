// The change feed (migration 0007) on SQLite, PostgreSQL and MariaDB: hand-written SQL on
// `user_backend`, `backends` and `doveroute_moves` reaches the feed; writes that change nothing
// routing-relevant (a health check recording its result, a state set to the value it has, MySQL's
// insert-ignore of an existing row) append nothing; a routing table follows the feed; pruning, and
// a table that fell behind the pruned range reloads fully (keeping its rows until the new ones are in);
// shard keys (user_hash) reach the feed as the text move holds use.
import { describe, expect, it } from "@effect/vitest"
import { type Change, makeSync, makeTable, RouteFeed } from "@doveroute/routing"
import { ChangeFeed, Health, parseStoreUrl, SqlRouteStore, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { dropFileDatabaseAfterAll, KINDS, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const layers = (url: string, strategy: "mapping" | "shard" = "mapping") => {
  const store = storeLayer({ url: parseStoreUrl(url), strategy, migrate: true })
  return Layer.merge(ChangeFeed.layer(strategy, "5 seconds").pipe(Layer.provide(store)), store)
}

/** A feed entry as a short string: `u alice 2`, `b 1 b1.test 0`, `h alice 99`. */
const show = (c: Change): string =>
  c._tag === "route" ? `u ${c.key} ${c.backendId}`
  : c._tag === "backend" ? `b ${c.backendId} ${c.backend === null ? "deleted" : `${c.backend.hostname} ${c.backend.state}`}`
  : c._tag === "hold" ? `h ${c.key} ${c.until}`
  : "reload"

describe.each(KINDS)("change feed on %s", (kind) => {
  it.effect("hand-written SQL reaches the feed; writes without a routing change append nothing", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const feed = yield* RouteFeed
        const u = kind === "mysql" ? "`user`" : `"user"`
        const since = yield* feed.head
        const changes = Effect.map(feed.read(since, 1000), (cs) => cs.map(show))
        yield* sql.unsafe(`INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'b1.test', '10.0.0.1', 0)`)
        yield* sql.unsafe(`INSERT INTO backends (id, hostname, hostip, state) VALUES (2, 'b2.test', NULL, 0)`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (1, 'alice'), (1, 'bob')`)
        expect(yield* changes).toEqual(["b 1 b1.test 0", "b 2 b2.test 0", "u alice 1", "u bob 1"])

        const mark = yield* feed.head
        const after = Effect.map(feed.read(mark, 1000), (cs) => cs.map(show))
        // a health check: results recorded, a state flip to the state the row has, nothing else
        const cols = (yield* Health.healthColumns).lastHealth
        expect(cols).toBe(true)
        yield* Health.recordHealth(1, "ok: * OK ready", cols)
        yield* Health.recordHealth(2, "fail: refused", cols)
        yield* Health.markHealthUp(1) // 3 -> 0 of a backend at 0: changes nothing
        yield* sql.unsafe(`UPDATE backends SET state = 0 WHERE id = 1`)
        yield* sql.unsafe(`UPDATE user_backend SET backend_id = 1 WHERE ${u} = 'alice'`)
        // the router's race-safe insert of a key that has a row (MySQL: ON DUPLICATE KEY UPDATE)
        yield* SqlRouteStore.insertIgnoreStatement(sql, "mapping", "alice", 2)
        expect(yield* after, "nothing routing-relevant changed").toEqual([])

        // a health-check flip, an admin change, a move, a rename, a delete, a hold
        yield* Health.markHealthDown(2)
        yield* sql.unsafe(`UPDATE backends SET hostip = '10.0.0.9' WHERE id = 1`)
        yield* sql.unsafe(`UPDATE user_backend SET backend_id = 2 WHERE ${u} = 'alice'`)
        yield* sql.unsafe(`UPDATE user_backend SET ${u} = 'robert' WHERE ${u} = 'bob'`)
        yield* sql.unsafe(`DELETE FROM user_backend WHERE ${u} = 'alice'`)
        yield* sql.unsafe(`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES ('robert', 1, 99)`)
        yield* sql.unsafe(`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES ('carol', 0, 98)`)
        yield* sql.unsafe(`DELETE FROM doveroute_moves WHERE route_key = 'robert'`)
        yield* sql.unsafe(`UPDATE backends SET weight = 0 WHERE id = 2`)
        yield* sql.unsafe(`DELETE FROM backends WHERE id = 2`)
        // backend entries carry the row as it is when read
        expect(yield* after).toEqual([
          "b 2 deleted",
          "b 1 b1.test 0",
          "u alice 2",
          "u bob null",
          "u robert 1",
          "u alice null",
          "h robert 99",
          "h carol null",
          "h robert null",
          "b 2 deleted",
          "b 2 deleted"
        ])
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })

  it.effect("a table follows the feed; pruning; a table behind the pruned range reloads fully", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const feed = yield* RouteFeed
        const u = kind === "mysql" ? "`user`" : `"user"`
        yield* sql.unsafe(`INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'b1.test', NULL, 0), (2, 'b2.test', NULL, 0)`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (1, 'alice'), (2, 'bob')`)
        const table = makeTable()
        const sync = makeSync(feed, table, { refresh: "1 second", maxStale: 0, keepChanges: 1000 })
        yield* sync.step
        expect(sync.status()).toMatchObject({ loaded: true, storeUp: true, reloads: 1 })
        expect(table.lookup("alice", Date.now())?.hostname).toBe("b1.test")
        expect(table.lookup("bob", Date.now())?.hostname).toBe("b2.test")

        yield* sql.unsafe(`UPDATE user_backend SET backend_id = 2 WHERE ${u} = 'alice'`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (1, 'carol')`)
        yield* sql.unsafe(`DELETE FROM user_backend WHERE ${u} = 'bob'`)
        yield* sql.unsafe(`UPDATE backends SET state = 1, hostname = 'b1.example' WHERE id = 1`)
        yield* sql.unsafe(`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES ('carol', 1, ${Date.now() + 60_000})`)
        yield* sync.step
        expect(table.lookup("alice", Date.now())?.hostname).toBe("b2.test")
        expect(table.lookup("bob", Date.now())).toBeUndefined()
        expect(table.lookup("carol", Date.now()), "held").toBeUndefined()
        yield* sql.unsafe(`DELETE FROM doveroute_moves WHERE route_key = 'carol'`)
        yield* sync.step
        expect(table.lookup("carol", Date.now())).toMatchObject({ hostname: "b1.example", state: 1 })
        expect(sync.status()).toMatchObject({ reloads: 1, applied: expect.any(Number) })

        // a second table stops reading; 32 changes later the feed is pruned to the newest 5
        const behind = makeTable()
        const late = makeSync(feed, behind, { refresh: "1 second", maxStale: 0, keepChanges: 1000 })
        yield* late.step
        for (let i = 0; i < 31; i++) {
          yield* sql.unsafe(`UPDATE user_backend SET backend_id = ${i % 2 === 0 ? 1 : 2} WHERE ${u} = 'alice'`)
        }
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, ${u}) VALUES (1, 'dave')`)
        yield* sync.step // the first table keeps reading
        const head = yield* feed.head
        yield* feed.prune(5)
        expect(yield* feed.oldest).toBe(head - 4)
        expect(behind.lookup("alice", Date.now())?.hostname, "still answering before the reload").toBe("b2.test")
        yield* late.step
        expect(late.status().reloads, "fell behind the pruned range: reloaded").toBe(2)
        expect(behind.lookup("alice", Date.now())?.hostname).toBe("b1.example")
        expect(behind.lookup("dave", Date.now())?.hostname).toBe("b1.example")
        // the table that kept reading stays in step without a reload
        yield* sql.unsafe(`UPDATE user_backend SET backend_id = 2 WHERE ${u} = 'dave'`)
        yield* sync.step
        expect(sync.status().reloads).toBe(1)
        expect(table.lookup("dave", Date.now())?.hostname).toBe("b2.test")
        expect(table.lookup("alice", Date.now())?.hostname).toBe("b1.example")
        expect(table.backends().map((b) => [b.id, b.users])).toEqual([[1, 2], [2, 1]])
      }).pipe(Effect.provide(layers(url)))
    ), { timeout: 60_000 })

  it.effect("shard strategy: user_hash keys reach the feed as text, as move holds name them", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const feed = yield* RouteFeed
        const since = yield* feed.head
        yield* sql.unsafe(`INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'b1.test', NULL, 0)`)
        yield* sql.unsafe(`INSERT INTO user_backend (backend_id, user_hash) VALUES (1, 123)`)
        yield* sql.unsafe(`UPDATE user_backend SET user_hash = 124 WHERE user_hash = 123`)
        yield* sql.unsafe(`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES ('124', 1, 5)`)
        expect((yield* feed.read(since, 100)).map(show)).toEqual(["b 1 b1.test 0", "u 123 1", "u 123 null", "u 124 1", "h 124 5"])
        const snapshot = yield* feed.snapshot
        expect([...snapshot.routes]).toEqual([["124", 1]])
        expect([...snapshot.holds]).toEqual([["124", 5]])
      }).pipe(Effect.provide(layers(url, "shard")))
    ), { timeout: 60_000 })
})
