// Attacks on tags (pools) on every store: SQLite file, PostgreSQL and MariaDB (fresh database or
// schema per test, see helpers.ts). What must hold whatever the input: a user is placed only on an
// up backend of its own tag, store trouble is a failure (temp_fail) and never a placement without
// the user's tag, and an import never reports a tag as set that the store did not take.
//
// MariaDB compares `user_name` in the column's collation (utf8mb4_general_ci by default, case-
// insensitive), as it compares `user_backend.user`: there `Alice@x` and `alice@x` are one user, one
// row in user_backend and one row in doveroute_user_tags. PostgreSQL and SQLite compare bytes: two
// users.
import { describe, expect, it } from "@effect/vitest"
import { type Backend, type Placement, RouteCache, RouteError, Router, RouteTable, StoreError } from "@doveroute/routing"
import { AdminOps, ChangeFeed, Operations, parseStoreUrl, storeLayer, UserTags } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import { dropFileDatabaseAfterAll, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const store = (url: string) => storeLayer({ url: parseStoreUrl(url), strategy: "mapping", sqliteLocks: "retry" })
const support = Layer.mergeAll(Operations.placementInfoLayer("5 seconds"), Operations.routeHoldsLayer("5 seconds"))

/** The daemon with the routing table (grouped first logins through the table). */
const tableLayer = (url: string, placement: Placement.Placement = "random") =>
  Router.layerCached({ strategy: "mapping", downPolicy: "keep", placement }).pipe(
    Layer.provideMerge(
      Layer.merge(
        RouteTable.layer({ refresh: "100 millis", maxStale: 0, keepChanges: 100_000 }).pipe(Layer.provide(ChangeFeed.layer("mapping", "5 seconds"))),
        RouteCache.disabled
      )
    ),
    Layer.provide(support),
    Layer.provideMerge(store(url))
  )

/** The daemon with `table.mode = cache` (grouped first logins after the store's read). */
const cacheLayer = (url: string, placement: Placement.Placement = "random") =>
  Router.layerCached({ strategy: "mapping", downPolicy: "keep", placement }).pipe(
    Layer.provideMerge(
      RouteCache.layer({ enabled: true, ttl: "60 seconds", maxEntries: 10_000, refresh: "100 millis" }).pipe(
        Layer.provide(Operations.routeVersionLayer("5 seconds"))
      )
    ),
    Layer.provide(support),
    Layer.provideMerge(store(url))
  )

/** One by one (the CLI's router). */
const plainLayer = (url: string, placement: Placement.Placement = "random") =>
  Router.layer({ strategy: "mapping", downPolicy: "keep", placement, groupFirstLogins: false }).pipe(
    Layer.provide(support),
    Layer.provideMerge(store(url))
  )

/** Pool a: a1, a2; pool b: b1, b2 (b2 weight 3); untagged: u1. All up. */
const seed = Effect.gen(function*() {
  const add = (hostname: string, tag: string | null, weight = 1) =>
    AdminOps.addOrUpdateBackend({ hostname, hostip: null, state: 0, weight, tag, orUpdate: false })
  yield* add("a1.test", "a")
  yield* add("a2.test", "a")
  yield* add("b1.test", "b")
  yield* add("b2.test", "b", 3)
  yield* add("u1.test", null)
})

const storedRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ u: string; b: number | string }>`SELECT ${sql("user")} AS u, backend_id AS b FROM user_backend`, (rows) => {
    const m = new Map<string, Array<number>>()
    for (const r of rows) m.set(String(r.u), [...(m.get(String(r.u)) ?? []), Number(r.b)])
    return m
  }))

const tableLoaded = (d: Context.Context<RouteTable>) =>
  Effect.gen(function*() {
    const { table } = Context.get(d, RouteTable)
    for (let i = 0; i < 200 && !(table.loaded() && table.backends().length === 5); i++) yield* Effect.sleep("25 millis")
    expect(table.loaded()).toBe(true)
  })

/** Three routers on one seeded store, one per placement path: table (loaded), cache mode, one by one. */
const threeRouters = (url: string) =>
  Effect.gen(function*() {
    const t = yield* Layer.build(tableLayer(url))
    yield* Effect.provide(seed, t)
    yield* tableLoaded(t)
    return { t, c: yield* Layer.build(cacheLayer(url)), p: yield* Layer.build(plainLayer(url)) }
  })

const tagOf = (b: Backend) => b.tag ?? null

const failure = (e: Exit.Exit<unknown, unknown>) => (Exit.isFailure(e) ? Option.getOrUndefined(Cause.failureOption(e.cause)) : undefined)

describe.each(["sqlite", "postgres", "mysql"] as const)("tag attacks on %s", (kind) => {
  it.live("a stored user tag is found for the login's spelling as the store compares names (MariaDB: any case), on every path", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const { t, c, p } = yield* threeRouters(url)
        // the operator tags the users as their mail system spells them
        for (const u of ["tab@x.example", "cache@x.example", "plain@x.example"]) yield* Effect.provide(UserTags.setUserTag("mapping", u, "b"), t)
        // the logins come in another case (no normalize), with a request tag of pool a
        const [rt, rc, rp] = yield* Effect.all([
          Context.get(t, Router).route("TAB@x.example", "a"),
          Context.get(c, Router).route("Cache@X.example", "a"),
          Context.get(p, Router).route("PLAIN@x.example", "a")
        ], { concurrency: "unbounded" })
        const preview = yield* Context.get(p, Router).preview("Tab@X.Example", "a")
        // MariaDB: the same user as the tagged row, so the store tag b wins; elsewhere another user (request tag a)
        const want = kind === "mysql" ? "b" : "a"
        expect([rt, rc, rp].map((r) => tagOf(r.backend))).toEqual([want, want, want])
        expect([preview.tag, preview.tagSource]).toEqual(kind === "mysql" ? ["b", "store"] : ["a", "request"])
        // and the exact spelling always gets its store tag (a group of both spellings at once)
        const both = yield* Effect.all([
          Context.get(t, Router).route("mix@x.example"),
          Context.get(t, Router).route("MIX@x.example", "a")
        ], { concurrency: "unbounded" })
        yield* Effect.provide(UserTags.setUserTag("mapping", "late@x.example", "b"), t)
        const late = yield* Effect.all(["late@x.example", "LATE@x.example", "Late@x.example"].map((u) => Context.get(c, Router).route(u, "a")), {
          concurrency: "unbounded"
        })
        expect(late.map((r) => tagOf(r.backend))).toEqual(kind === "mysql" ? ["b", "b", "b"] : ["b", "a", "a"])
        // MariaDB: one user asked twice at once with two request tags: one row, one answer for both
        if (kind === "mysql") expect(both[0]!.backend.id).toBe(both[1]!.backend.id)
        else expect(both.map((r) => tagOf(r.backend))).toEqual([null, "a"])
        const rows = yield* Effect.provide(storedRows, t)
        for (const r of [rt, rc, rp, ...both, ...late]) expect([...rows].filter(([u]) => u.toLowerCase() === r.user.toLowerCase() || u === r.user).map(([, b]) => b).flat()).toContain(r.backend.id)
      })))
  )

  it.live("import of user tags: another spelling of a tagged user, or two spellings in one file, is a conflict on MariaDB, never reported as set", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(store(url))
        yield* Effect.provide(seed, d)
        yield* Effect.provide(UserTags.setUserTag("mapping", "alice@x.example", "a"), d)
        const imp = yield* Effect.provide(UserTags.tagImporter("mapping"), d)
        yield* Effect.provide(imp.add([
          { key: "Alice@x.example", tag: "b" },
          { key: "Bob@x.example", tag: "a" },
          { key: "bob@x.example", tag: "b" },
          { key: "carol@x.example", tag: "b" }
        ]), d)
        const r = imp.report()
        const tags = yield* Effect.provide(UserTags.listUserTags, d)
        if (kind === "mysql") {
          // one user per case-insensitive name: alice keeps a, Bob (first in the file) gets a, bob's b is a conflict
          expect(tags).toEqual([{ user: "alice@x.example", tag: "a" }, { user: "Bob@x.example", tag: "a" }, { user: "carol@x.example", tag: "b" }])
          expect([r.total, r.inserted, r.conflictCount, r.errorCount]).toEqual([4, 2, 2, 0])
          expect(r.conflicts.map((c) => [c.key, c.tag, c.current])).toEqual([["Alice@x.example", "b", "a"], ["bob@x.example", "b", "a"]])
        } else {
          expect(tags.length).toBe(5)
          expect([r.total, r.inserted, r.conflictCount, r.errorCount]).toEqual([4, 4, 0, 0])
        }
        // a second run of the same file changes nothing and reports the same conflicts
        const again = yield* Effect.provide(UserTags.tagImporter("mapping"), d)
        yield* Effect.provide(again.add([{ key: "Alice@x.example", tag: "b" }, { key: "bob@x.example", tag: "b" }]), d)
        expect(again.report().conflictCount).toBe(kind === "mysql" ? 2 : 0)
        expect(again.report().inserted).toBe(0)
        expect(yield* Effect.provide(UserTags.listUserTags, d)).toEqual(tags)
      })))
  )

  it.live("store trouble reading user tags during grouped first logins (table and cache mode) and one by one: a store failure for each, no row", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const { t, c, p } = yield* threeRouters(url)
        const sql = Context.get(t, SqlClient.SqlClient)
        yield* sql`ALTER TABLE doveroute_user_tags RENAME TO doveroute_user_tags_gone`
        const logins = Array.from({ length: 40 }, (_, i) => [`trouble${i}@x.example`, ["a", "b", "", undefined][i % 4]] as const)
        const exits = yield* Effect.all([
          ...logins.map(([u, tag]) => Effect.exit(Context.get(t, Router).route(`t-${u}`, tag))),
          ...logins.map(([u, tag]) => Effect.exit(Context.get(c, Router).route(`c-${u}`, tag))),
          ...logins.slice(0, 8).map(([u, tag]) => Effect.exit(Context.get(p, Router).route(`p-${u}`, tag)))
        ], { concurrency: "unbounded" })
        for (const e of exits) expect(failure(e)).toBeInstanceOf(StoreError)
        expect(Context.get(t, Router).firstLoginGroups()!.largest).toBeGreaterThan(1)
        expect(Context.get(c, Router).firstLoginGroups()!.largest).toBeGreaterThan(1)
        expect((yield* Effect.provide(storedRows, t)).size).toBe(0)
        // the table back: the same logins are placed, each in its tag (a daemon of its own: the
        // SQLite driver keeps a statement that failed to prepare failed for its cache's lifetime)
        yield* sql`ALTER TABLE doveroute_user_tags_gone RENAME TO doveroute_user_tags`
        const c2 = yield* Layer.build(cacheLayer(url))
        const ok = yield* Effect.all(logins.map(([u, tag]) => Context.get(c2, Router).route(`c-${u}`, tag)), { concurrency: "unbounded" })
        ok.forEach((r, i) => expect(tagOf(r.backend)).toBe(logins[i]![1] === "" || logins[i]![1] === undefined ? null : logins[i]![1]))
      })))
  )

  it.live("two cache-mode daemons (least-loaded and weighted) racing the same first logins of three pools agree, each user in its pool; a tag in another case is another pool", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const one = yield* Layer.build(cacheLayer(url, "least-loaded"))
        yield* Effect.provide(seed, one)
        const two = yield* Layer.build(cacheLayer(url, "weighted"))
        yield* Effect.provide(UserTags.setUserTag("mapping", "race007", "b"), one)
        const r1 = Context.get(one, Router)
        const r2 = Context.get(two, Router)
        const logins = Array.from({ length: 120 }, (_, i) => {
          const u = `race${String(i).padStart(3, "0")}`
          return [u, i === 7 ? "a" : ["a", "b", ""][i % 3]!, i === 7 ? "b" : ["a", "b", null][i % 3]!] as const
        })
        const calls = logins.flatMap(([u, tag]) => [r1.route(u, tag), r2.route(u, tag), r2.route(u, tag), r1.route(u, tag)])
        const routes = yield* Effect.all(calls, { concurrency: "unbounded" })
        const rows = yield* Effect.provide(storedRows, one)
        expect(rows.size).toBe(120)
        logins.forEach(([u, , want], i) => {
          const got = routes.slice(i * 4, i * 4 + 4)
          for (const r of got) {
            expect(r.user).toBe(u)
            expect(tagOf(r.backend), u).toBe(want)
            expect(rows.get(u), u).toEqual([r.backend.id])
          }
        })
        expect(r1.firstLoginGroups()!.largest).toBeGreaterThan(1)
        expect(r2.firstLoginGroups()!.largest).toBeGreaterThan(1)
        // least-loaded spreads pool a over both of its backends
        expect(new Set(routes.filter((r) => tagOf(r.backend) === "a").map((r) => r.backend.hostname))).toEqual(new Set(["a1.test", "a2.test"]))
        // tags are compared as written: "A" and "B " are not pool a / b
        const odd = yield* Effect.all(
          [r1.route("odd1", "A"), r2.route("odd2", "B"), r1.route("odd3", "a."), r2.route("odd4", "B ")].map(Effect.exit),
          { concurrency: "unbounded" }
        )
        expect(odd.map((e) => (failure(e) as RouteError | undefined)?.reason)).toEqual(["NoBackend", "NoBackend", "NoBackend", "InvalidTag"])
        expect((yield* Effect.provide(storedRows, one)).size).toBe(120)
      })))
  )
})
