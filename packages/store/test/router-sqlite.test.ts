import { describe, expect, it } from "@effect/vitest"
import { Router, RouteStore, shardKey, type Strategy } from "@doveroute/routing"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "dvr-store-"))

const layerFor = (file: string, strategy: Strategy, downPolicy: "keep" | "reassign" | "tempfail" = "keep") =>
  Router.layer({ strategy, downPolicy }).pipe(
    Layer.provideMerge(storeLayer({ url: parseStoreUrl(`sqlite:${file}`), strategy }))
  )

const seed = Effect.gen(function*() {
  yield* Admin.addBackend({ hostname: "backend1.test", hostip: "127.0.0.2" })
  yield* Admin.addBackend({ hostname: "127.0.0.3", hostip: null })
  yield* Admin.addBackend({ hostname: "backend3.test", hostip: "127.0.0.4", state: 1 })
})

describe("router on a real SQLite file", () => {
  it.effect("mapping: a new user gets one row on an up backend, the second lookup returns it", () =>
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
    }).pipe(Effect.provide(layerFor(path.join(tmp(), "a.db"), "mapping"))))

  it.effect("concurrent first logins of one user agree on one backend and leave one row", () =>
    Effect.gen(function*() {
      yield* seed
      const router = yield* Router
      const routes = yield* Effect.all(Array.from({ length: 50 }, () => router.route("racer")), { concurrency: "unbounded" })
      const ids = new Set(routes.map((r) => r.backend.id))
      expect(ids.size).toBe(1)
      expect((yield* Admin.mappingRows("mapping", "racer")).length).toBe(1)
    }).pipe(Effect.provide(layerFor(path.join(tmp(), "b.db"), "mapping"))))

  it.effect("shard: the row holds the 16-bit shard number (alice → 10670)", () =>
    Effect.gen(function*() {
      yield* seed
      const router = yield* Router
      const r = yield* router.route("alice")
      expect(r.key).toBe(10670)
      expect(yield* Admin.mappingRows("shard", 10670)).toEqual([r.backend.id])
      expect(shardKey("bob")).toBe(25494)
    }).pipe(Effect.provide(layerFor(path.join(tmp(), "c.db"), "shard"))))

  it.effect("no backend with state=0 → RouteError NoBackend and no row", () =>
    Effect.gen(function*() {
      yield* Admin.addBackend({ hostname: "down.test", hostip: "127.0.0.9", state: 1 })
      const router = yield* Router
      const exit = yield* Effect.exit(router.route("newbie"))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(exit)).toContain("NoBackend")
      expect(yield* Admin.mappingRows("mapping", "newbie")).toEqual([])
    }).pipe(Effect.provide(layerFor(path.join(tmp(), "d.db"), "mapping"))))

  it.effect("down policies: keep returns the down backend, tempfail fails, reassign moves", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const file = path.join(dir, "e.db")
      const setup = Effect.gen(function*() {
        yield* seed
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO user_backend (backend_id, "user") VALUES (3, 'pinned')`
      }).pipe(Effect.provide(layerFor(file, "mapping")))
      yield* setup
      const keep = yield* Effect.flatMap(Router, (r) => r.route("pinned")).pipe(Effect.provide(layerFor(file, "mapping", "keep")))
      expect(keep.backend.id).toBe(3)
      const tf = yield* Effect.flatMap(Router, (r) => Effect.exit(r.route("pinned"))).pipe(
        Effect.provide(layerFor(file, "mapping", "tempfail"))
      )
      expect(String(tf)).toContain("BackendDown")
      const moved = yield* Effect.flatMap(Router, (r) => r.route("pinned")).pipe(Effect.provide(layerFor(file, "mapping", "reassign")))
      expect(moved.source).toBe("reassigned")
      expect(moved.backend.state).toBe(0)
      const store = yield* Effect.flatMap(RouteStore, (s) => s.findAssigned("pinned")).pipe(Effect.provide(layerFor(file, "mapping")))
      expect(Option.getOrThrow(store).id).toBe(moved.backend.id)
    }))
})
