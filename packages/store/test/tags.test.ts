// Tags (pools, like the Director's director_tag) on every store: SQLite file, PostgreSQL and
// MariaDB (fresh database or schema per test, see helpers.ts). First logins are placed only on up
// backends of the user's tag (untagged users only on untagged backends) on the grouped path (the
// daemon's routing table + assignMany), the one-by-one path (no table) and the reassign path; no
// up backend in the tag answers NoBackend and writes no row; the store tag wins over the request's
// tag, which wins over the domain rule; a backend's tag reaches the routing table through the
// change feed; the CLI commands end to end (the bundle: npm run build).
import { describe, expect, it } from "@effect/vitest"
import { type Backend, type DownPolicy, RouteCache, RouteError, Router, RouteTable, type Route } from "@doveroute/routing"
import { AdminOps, ChangeFeed, Migrations, Operations, parseStoreUrl, storeLayer, UserTags } from "@doveroute/store"
import { runCli } from "@doveroute/testkit"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Exit, Layer } from "effect"
import { dropFileDatabaseAfterAll, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const DOMAINS = new Map([["a.example", "a"]])

/** One daemon's routing: the table (refresh 100 ms) and grouped first logins, holds and weights. */
const daemonLayer = (url: string, downPolicy: DownPolicy = "keep") =>
  Router.layerCached({ strategy: "mapping", downPolicy, tagDomains: DOMAINS }).pipe(
    Layer.provideMerge(
      Layer.merge(
        RouteTable.layer({ refresh: "100 millis", maxStale: 0, keepChanges: 100_000 }).pipe(
          Layer.provide(ChangeFeed.layer("mapping", "5 seconds"))
        ),
        RouteCache.disabled
      )
    ),
    Layer.provide(Layer.mergeAll(Operations.placementInfoLayer("5 seconds"), Operations.routeHoldsLayer("5 seconds"))),
    Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy: "mapping", sqliteLocks: "retry" }))
  )

/** The router without a table (every first login one by one, as the CLI and `table.mode = cache` with the cache off). */
const plainLayer = (url: string, downPolicy: DownPolicy = "keep") =>
  Router.layer({ strategy: "mapping", downPolicy, tagDomains: DOMAINS, groupFirstLogins: false }).pipe(
    Layer.provide(Layer.mergeAll(Operations.placementInfoLayer("5 seconds"), Operations.routeHoldsLayer("5 seconds"))),
    Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy: "mapping" }))
  )

/** Pool a: a1, a2 up, a3 down; pool b: b1 up; untagged: u1, u2 up. */
const seed = Effect.gen(function*() {
  const add = (hostname: string, tag: string | null, state = 0) =>
    AdminOps.addOrUpdateBackend({ hostname, hostip: null, state, weight: 1, tag, orUpdate: false })
  yield* add("a1.test", "a")
  yield* add("a2.test", "a")
  yield* add("a3.test", "a", 1)
  yield* add("b1.test", "b")
  yield* add("u1.test", null)
  yield* add("u2.test", null)
  return new Map((yield* AdminOps.listBackends).map((b) => [b.id, b] as const))
})

/** Every stored row: user → backend ids. */
const storedRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ u: string; b: number | string }>`SELECT ${sql("user")} AS u, backend_id AS b FROM user_backend`, (rows) => {
    const m = new Map<string, Array<number>>()
    for (const r of rows) m.set(String(r.u), [...(m.get(String(r.u)) ?? []), Number(r.b)])
    return m
  }))

const names = (prefix: string, n: number, domain = "") => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}${domain}`)

/** 60 users of pool a (domain rule), 60 of pool b (request tag), 60 untagged: routed all at once. */
const mixedLogins = (route: (user: string, tag?: string) => Effect.Effect<Route, unknown>) =>
  Effect.gen(function*() {
    const logins: Array<readonly [string, string | undefined, string | null]> = [
      ...names("alice", 60, "@a.example").map((u) => [u, undefined, "a"] as const),
      ...names("bob", 60, "@b.example").map((u) => [u, "b", "b"] as const),
      ...names("carol", 60, "@c.example").map((u) => [u, "", null] as const)
    ]
    const routes = yield* Effect.all(logins.map(([u, t]) => route(u, t)), { concurrency: "unbounded" })
    return logins.map(([u, , want], i) => ({ user: u, want, backend: routes[i]!.backend }))
  })

const tagOf = (b: Backend | AdminOps.BackendRow) => b.tag ?? null

/** Each routed user's backend is up and of the user's tag, and the store holds exactly that row. */
const checkPools = (
  got: ReadonlyArray<{ user: string; want: string | null; backend: Backend }>,
  backends: ReadonlyMap<number, AdminOps.BackendRow>,
  stored: ReadonlyMap<string, ReadonlyArray<number>>
) => {
  const used = new Set<number>()
  for (const g of got) {
    expect(tagOf(g.backend), g.user).toBe(g.want)
    expect(stored.get(g.user), g.user).toEqual([g.backend.id])
    const row = backends.get(g.backend.id)!
    expect(row.tag, g.user).toBe(g.want)
    expect(row.state, g.user).toBe(0)
    used.add(g.backend.id)
  }
  // spread inside each pool: both up backends of a and of the untagged pool got users
  const hosts = [...used].map((id) => backends.get(id)!.hostname).sort()
  expect(hosts).toEqual(["a1.test", "a2.test", "b1.test", "u1.test", "u2.test"])
}

describe.each(["sqlite", "postgres", "mysql"] as const)("tags on %s", (kind) => {
  it.live("grouped first logins (routing table + assignMany): each user only on up backends of its tag", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(daemonLayer(url))
        const backends = yield* Effect.provide(seed, d)
        const { table } = Context.get(d, RouteTable)
        for (let i = 0; i < 200 && !(table.loaded() && table.backends().length === 6); i++) yield* Effect.sleep("25 millis")
        expect(table.backends().map((b) => b.tag ?? null)).toEqual(["a", "a", "a", "b", null, null])
        const router = Context.get(d, Router)
        const got = yield* mixedLogins(router.route)
        const stats = router.firstLoginGroups()!
        expect(stats.members).toBe(180)
        expect(stats.groups).toBeLessThan(60)
        expect(stats.largest).toBeGreaterThan(10)
        checkPools(got, backends, yield* Effect.provide(storedRows, d))
      })))
  )

  it.live("one-by-one first logins (no table): each user only on up backends of its tag", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(plainLayer(url))
        const backends = yield* Effect.provide(seed, d)
        const router = Context.get(d, Router)
        expect(router.firstLoginGroups()).toBeUndefined()
        const got = yield* mixedLogins(router.route)
        checkPools(got, backends, yield* Effect.provide(storedRows, d))
      })))
  )

  it.live("no up backend in the tag: NoBackend (temp_fail) on both paths and no row written; reassign stays in the pool", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(daemonLayer(url, "reassign"))
        yield* Effect.provide(seed, d)
        const { table } = Context.get(d, RouteTable)
        for (let i = 0; i < 200 && !table.loaded(); i++) yield* Effect.sleep("25 millis")
        const grouped = Context.get(d, Router)
        const plain = Context.get(yield* Layer.build(plainLayer(url, "reassign")), Router)
        // a tag no backend has, from the request and from the store
        yield* Effect.provide(UserTags.setUserTag("mapping", "stored-c@u.example", "c"), d)
        const fails = yield* Effect.all([
          Effect.exit(grouped.route("nc1@u.example", "c")),
          Effect.exit(plain.route("nc2@u.example", "c")),
          Effect.exit(grouped.route("stored-c@u.example")),
          ...names("many", 20).map((u) => Effect.exit(grouped.route(u, "c")))
        ], { concurrency: "unbounded" })
        for (const e of fails) {
          expect(Exit.isFailure(e)).toBe(true)
          if (Exit.isFailure(e)) {
            const err = e.cause._tag === "Fail" ? e.cause.error : undefined
            expect(err).toBeInstanceOf(RouteError)
            expect((err as RouteError).reason).toBe("NoBackend")
            expect((err as RouteError).detail).toContain("in tag c")
          }
        }
        // pool b's one backend down: b users fail, never placed in a or untagged
        yield* Effect.provide(AdminOps.setState("b1.test", 2), d)
        const bFail = yield* Effect.all([Effect.exit(grouped.route("nb1", "b")), Effect.exit(plain.route("nb2", "b"))])
        expect(bFail.every(Exit.isFailure)).toBe(true)
        const stored = yield* Effect.provide(storedRows, d)
        expect(stored.size).toBe(0)
        // reassign off a down backend: within the user's pool (domain rule a)
        const r1 = yield* plain.route("dave@a.example")
        expect(r1.backend.tag).toBe("a")
        yield* Effect.provide(AdminOps.setState(r1.backend.hostname, 1), d)
        const r2 = yield* plain.route("dave@a.example")
        expect(r2.source).toBe("reassigned")
        expect(r2.backend.tag).toBe("a")
        expect(r2.backend.id).not.toBe(r1.backend.id)
      })))
  )

  it.live("precedence: store tag, then the request's director_tag, then the domain rule; a mapped user stays put", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(daemonLayer(url))
        yield* Effect.provide(seed, d)
        const { table } = Context.get(d, RouteTable)
        for (let i = 0; i < 200 && !table.loaded(); i++) yield* Effect.sleep("25 millis")
        const router = Context.get(d, Router)
        yield* Effect.provide(UserTags.setUserTag("mapping", "p1@a.example", "b"), d)
        const [p1, p2, p3, p4, p5] = yield* Effect.all([
          router.route("p1@a.example", "a"), // store b > request a > domain a
          router.route("p2@a.example", "b"), // request b > domain a
          router.route("p3@A.Example"), // domain rule (case-insensitive) a
          router.route("p4@other.example"), // nothing: untagged
          router.route("p5@other.example", "") // empty request tag: none
        ], { concurrency: "unbounded" })
        expect([p1, p2, p3, p4, p5].map((r) => r.backend.tag ?? null)).toEqual(["b", "b", "a", null, null])
        const preview = yield* router.preview("p6@a.example", "b")
        expect([preview.tag, preview.tagSource]).toEqual(["b", "request"])
        expect(preview.candidates.map((b) => b.hostname)).toEqual(["b1.test"])
        // a mapped user keeps its backend whatever its tag says now
        yield* Effect.provide(UserTags.setUserTag("mapping", "p3@A.Example", "b"), d)
        const again = yield* router.route("p3@A.Example", "b")
        expect(again.backend.id).toBe(p3.backend.id)
        // a malformed request tag is refused, never routed without it
        const bad = yield* Effect.exit(router.route("p7@a.example", "no/slash"))
        expect(Exit.isFailure(bad) && bad.cause._tag === "Fail" && (bad.cause.error as RouteError).reason).toBe("InvalidTag")
      })))
  )

  it.live("a backend's tag reaches the routing table through the change feed (no reload)", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const d = yield* Layer.build(daemonLayer(url))
        yield* Effect.provide(seed, d)
        const { table, status } = Context.get(yield* Layer.build(daemonLayer(url)), RouteTable)
        for (let i = 0; i < 200 && !(table.loaded() && table.backends().length === 6); i++) yield* Effect.sleep("25 millis")
        const reloads = status().reloads
        yield* Effect.provide(AdminOps.setTag("u2.test", "b"), d)
        let seen: string | null | undefined
        for (let i = 0; i < 200; i++) {
          seen = table.backends().find((b) => b.hostname === "u2.test")?.tag ?? null
          if (seen === "b") break
          yield* Effect.sleep("25 millis")
        }
        expect(seen).toBe("b")
        yield* Effect.provide(AdminOps.setTag("u2.test", null), d)
        for (let i = 0; i < 200; i++) {
          seen = table.backends().find((b) => b.hostname === "u2.test")?.tag ?? null
          if (seen === null) break
          yield* Effect.sleep("25 millis")
        }
        expect(seen).toBeNull()
        expect(status().reloads).toBe(reloads)
        // migration 0011 is additive: the Lua scripts' queries still work on the tables
        const sql = Context.get(d, SqlClient.SqlClient)
        const lua = yield* sql<{ id: number }>`SELECT id, hostname, hostip FROM backends WHERE state = 0`
        expect(lua.length).toBe(5)
        expect(Migrations.MIGRATION_NAMES).toContain("0011_tags")
      })))
  )

  it("CLI: backend add/tag, backend list, user tag/tags/show, lookup --tag, with --json and --dry-run", async () => {
    await Effect.runPromise(withDatabase(kind, (url) =>
      Effect.promise(async () => {
        const cli = async (...args: Array<string>) => {
          const r = await runCli([...args, "--store", url], { timeoutMs: 60_000 })
          expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0)
          return r.stdout
        }
        const json = async (...args: Array<string>) => JSON.parse(await cli(...args, "--json"))
        expect((await json("backend", "add", "a1.test", "--tag", "a")).tag).toBe("a")
        expect((await json("backend", "add", "u1.test")).tag).toBeNull()
        await cli("backend", "add", "b1.test", "--hostip", "127.0.0.9", "--tag", "b")
        const list = await json("backend", "list")
        expect(list.map((b: { hostname: string; tag: string | null }) => [b.hostname, b.tag])).toEqual([
          ["a1.test", "a"],
          ["u1.test", null],
          ["b1.test", "b"]
        ])
        expect(await cli("backend", "list")).toMatch(/\ttag\n[\s\S]*a1\.test[^\n]*\ta\n/)
        // dry run: reported, nothing written
        const dry = await json("backend", "tag", "u1.test", "b", "--dry-run")
        expect([dry.tag, dry.before.tag, dry.dryRun]).toEqual(["b", null, true])
        expect((await json("backend", "list"))[1].tag).toBeNull()
        expect((await json("backend", "tag", "u1.test", "b")).tag).toBe("b")
        expect((await json("backend", "tag", "u1.test", "none")).tag).toBeNull()
        // --or-update without --tag keeps the tag; --tag none clears it
        expect((await json("backend", "add", "a1.test", "--or-update", "--weight", "2")).tag).toBe("a")
        expect((await json("backend", "add", "b1.test", "--or-update", "--tag", "none")).tag).toBeNull()
        await cli("backend", "tag", "b1.test", "b")
        const bad = await runCli(["backend", "tag", "b1.test", "no/slash", "--store", url])
        expect(bad.code).not.toBe(0)
        expect(bad.stderr).toMatch(/tag is 1-64/)
        // user tags
        const set = await json("user", "tag", "eve@x.example", "b", "--dry-run")
        expect([set.before, set.tag, set.dryRun]).toEqual([null, "b", true])
        expect(await json("user", "tags")).toEqual([])
        expect((await json("user", "tag", "eve@x.example", "b")).tag).toBe("b")
        expect(await json("user", "tags")).toEqual([{ user: "eve@x.example", tag: "b" }])
        const show = await json("user", "show", "eve@x.example")
        expect([show.storeTag, show.tag, show.tagSource, show.backend]).toEqual(["b", "b", "store", null])
        expect(show.candidates.map((c: { hostname: string }) => c.hostname)).toEqual(["b1.test"])
        // the store tag wins over the login's director_tag
        const withTag = await json("lookup", "eve@x.example", "--tag", "a")
        expect([withTag.tag, withTag.tagSource]).toEqual(["b", "store"])
        // lookup: what a login with that director_tag would do
        const lk = await json("lookup", "frank@x.example", "--tag", "a")
        expect([lk.tag, lk.tagSource, lk.wouldInsert]).toEqual(["a", "request", true])
        expect(lk.candidates.map((c: { hostname: string }) => c.hostname)).toEqual(["a1.test"])
        const none = await json("lookup", "frank@x.example")
        expect(none.candidates.map((c: { hostname: string }) => c.hostname)).toEqual(["u1.test"])
        // eve's first login (the CLI's router, one by one) goes to pool b; then a tag change is reported, not acted on
        await cli("user", "move", "eve@x.example", "a1.test", "--no-wait")
        const moved = await json("user", "show", "eve@x.example")
        expect([moved.backend.hostname, moved.backend.tag, moved.tagMismatch]).toEqual(["a1.test", "a", true])
        expect(await cli("user", "show", "eve@x.example")).toMatch(/backend tag a: another pool/)
        expect((await json("user", "tag", "eve@x.example", "none", "--dry-run")).tag).toBeNull()
        expect(await json("user", "tags")).toEqual([{ user: "eve@x.example", tag: "b" }])
        const cleared = await json("user", "tag", "eve@x.example", "none")
        expect([cleared.before, cleared.tag, cleared.changed, cleared.mismatch]).toEqual(["b", null, true, true])
        expect(await json("user", "tags")).toEqual([])
      })
    ))
  }, 240_000)
})

describe("tags settings", () => {
  it("tags.domains is refused with strategy shard, and a bad entry is refused; config check names it", async () => {
    const shard = await runCli(["config", "check", "--strategy", "shard"], { env: { DOVEROUTE_TAGS_DOMAINS: "a.example=a" } })
    expect(shard.code).not.toBe(0)
    expect(shard.stderr + shard.stdout).toMatch(/tags need strategy mapping/)
    const bad = await runCli(["config", "check"], { env: { DOVEROUTE_TAGS_DOMAINS: "a.example" } })
    expect(bad.code).not.toBe(0)
    expect(bad.stderr + bad.stdout).toMatch(/expected domain=tag/)
    const ok = await runCli(["config", "check"], { env: { DOVEROUTE_TAGS_DOMAINS: "a.example=a,B.example=b" } })
    expect(ok.stderr + ok.stdout).not.toMatch(/tags/)
  })
})
