// The routing matrix on every store: SQLite file, PostgreSQL and MariaDB (fresh database, or on
// PostgreSQL a fresh schema in a fresh database, per test; see helpers.ts). Needs the machine's
// servers on 127.0.0.1:5432 and :3306. it.live: query timeouts and retries need the real clock.
import { describe, expect, it } from "@effect/vitest"
import { replyFields, Router, RouteStore, shardKey, type Strategy } from "@doveroute/routing"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit, Layer, Option } from "effect"
import { dropFileDatabaseAfterAll, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const layerFor = (url: string, strategy: Strategy, downPolicy: "keep" | "reassign" | "tempfail" = "keep") =>
  Router.layer({ strategy, downPolicy }).pipe(
    Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy }))
  )

const seed = Effect.gen(function*() {
  yield* Admin.addBackend({ hostname: "backend1.test", hostip: "127.0.0.2" })
  yield* Admin.addBackend({ hostname: "127.0.0.3", hostip: null })
  yield* Admin.addBackend({ hostname: "backend3.test", hostip: "127.0.0.4", state: 1 })
})

/** Insert a mapping row directly (the key column quoted by the dialect's compiler). */
const insertRow = (strategy: Strategy, key: string | number, backendId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO user_backend (backend_id, ${sql(strategy === "shard" ? "user_hash" : "user")}) VALUES (${backendId}, ${key})`)

describe.concurrent.each(["sqlite", "postgres", "mysql"] as const)("router on %s", (kind) => {
  it.live("mapping: a new user gets one row on an up backend, the second lookup returns it", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* seed
        const router = yield* Router
        const first = yield* router.route("alice")
        expect(first.source).toBe("assigned")
        expect(first.backend.state).toBe(0)
        const again = yield* router.route("alice")
        expect(again.source).toBe("existing")
        expect(again.backend.id).toBe(first.backend.id)
        expect(yield* Admin.mappingRows("mapping", "alice")).toEqual([first.backend.id])
        expect(yield* Admin.countMappings()).toBe(1)
      }).pipe(Effect.provide(layerFor(url, "mapping")))))

  it.live("50 concurrent first lookups of one user agree on one backend and leave one row", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* seed
        const router = yield* Router
        const routes = yield* Effect.all(Array.from({ length: 50 }, () => router.route("racer")), { concurrency: "unbounded" })
        expect(new Set(routes.map((r) => r.backend.id)).size).toBe(1)
        expect(routes.every((r) => r.backend.state === 0)).toBe(true)
        expect(yield* Admin.mappingRows("mapping", "racer")).toEqual([routes[0]!.backend.id])
      }).pipe(Effect.provide(layerFor(url, "mapping")))))

  it.live("a second router on its own pool sees the first one's assignment", () =>
    withDatabase(kind, (url) =>
      Effect.scoped(Effect.gen(function*() {
        const one = yield* Layer.build(layerFor(url, "mapping"))
        const two = yield* Layer.build(layerFor(url, "mapping"))
        yield* Effect.provide(seed, one)
        const first = yield* Effect.provide(Effect.flatMap(Router, (r) => r.route("shared")), one)
        const second = yield* Effect.provide(Effect.flatMap(Router, (r) => r.route("shared")), two)
        expect(first.source).toBe("assigned")
        expect(second.source).toBe("existing")
        expect(second.backend.id).toBe(first.backend.id)
      }))))

  it.live("shard: the row holds the 16-bit shard number (alice → 10670)", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* seed
        const router = yield* Router
        const r = yield* router.route("alice")
        expect(r.key).toBe(10670)
        expect(yield* Admin.mappingRows("shard", 10670)).toEqual([r.backend.id])
        expect(shardKey("bob")).toBe(25494)
        const jorg = yield* router.route("jörg")
        expect(jorg.key).toBe(8669)
        expect(yield* Admin.mappingRows("shard", 8669)).toEqual([jorg.backend.id])
      }).pipe(Effect.provide(layerFor(url, "shard")))))

  it.live("no backend with state=0 → RouteError NoBackend and no row", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* Admin.addBackend({ hostname: "down.test", hostip: "127.0.0.9", state: 1 })
        const router = yield* Router
        const exit = yield* Effect.exit(router.route("newbie"))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(exit)).toContain("NoBackend")
        expect(yield* Admin.mappingRows("mapping", "newbie")).toEqual([])
        expect(yield* Admin.countMappings()).toBe(0)
      }).pipe(Effect.provide(layerFor(url, "mapping")))))

  it.live("down policies: keep returns the down backend, tempfail fails, reassign moves", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* Effect.provide(Effect.zipRight(seed, insertRow("mapping", "pinned", 3)), layerFor(url, "mapping"))
        const keep = yield* Effect.flatMap(Router, (r) => r.route("pinned")).pipe(Effect.provide(layerFor(url, "mapping", "keep")))
        expect(keep.backend.id).toBe(3)
        expect(keep.source).toBe("existing")
        const tf = yield* Effect.flatMap(Router, (r) => Effect.exit(r.route("pinned"))).pipe(
          Effect.provide(layerFor(url, "mapping", "tempfail"))
        )
        expect(String(tf)).toContain("BackendDown")
        const moved = yield* Effect.flatMap(Router, (r) => r.route("pinned")).pipe(Effect.provide(layerFor(url, "mapping", "reassign")))
        expect(moved.source).toBe("reassigned")
        expect(moved.backend.state).toBe(0)
        const after = yield* Effect.all([
          Effect.flatMap(RouteStore, (s) => s.findAssigned("pinned")),
          Admin.mappingRows("mapping", "pinned")
        ]).pipe(Effect.provide(layerFor(url, "mapping")))
        expect(Option.getOrThrow(after[0]).id).toBe(moved.backend.id)
        expect(after[1]).toEqual([moved.backend.id])
      })))

  it.live("hostip is sent only when neither NULL nor empty", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const withIp = yield* Admin.addBackend({ hostname: "b1.test", hostip: "127.0.0.2" })
        const nullIp = yield* Admin.addBackend({ hostname: "b2.test", hostip: null })
        const emptyIp = yield* Admin.addBackend({ hostname: "b3.test", hostip: "" })
        yield* insertRow("mapping", "u1", withIp.id)
        yield* insertRow("mapping", "u2", nullIp.id)
        yield* insertRow("mapping", "u3", emptyIp.id)
        const router = yield* Router
        const [r1, r2, r3] = yield* Effect.all([router.route("u1"), router.route("u2"), router.route("u3")])
        expect(r3!.backend.hostip).toBe("")
        expect(r2!.backend.hostip).toBe(null)
        expect(replyFields(r1!.backend, "proxy_maybe", [])).toEqual([["proxy_maybe", "y"], ["host", "b1.test"], ["hostip", "127.0.0.2"]])
        expect(replyFields(r2!.backend, "proxy_maybe", [])).toEqual([["proxy_maybe", "y"], ["host", "b2.test"]])
        expect(replyFields(r3!.backend, "proxy_maybe", [])).toEqual([["proxy_maybe", "y"], ["host", "b3.test"]])
      }).pipe(Effect.provide(layerFor(url, "mapping")))))

  it.live("a row pointing at a deleted backend counts as none: the user is placed on an up backend and the row replaced (one row)", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* seed
        yield* insertRow("mapping", "orphan", 99)
        const router = yield* Router
        const r = yield* router.route("orphan")
        expect(r.source).toBe("assigned")
        expect(r.backend.state).toBe(0)
        expect(yield* Admin.mappingRows("mapping", "orphan")).toEqual([r.backend.id])
      }).pipe(Effect.provide(layerFor(url, "mapping")))))
})
