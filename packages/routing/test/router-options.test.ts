import { describe, expect, it } from "@effect/vitest"
import { type Backend, PlacementInfo, RouteHolds, RouteStore, Router } from "@doveroute/routing"
import { Effect, Layer, Option } from "effect"

const backends: Array<Backend> = [1, 2, 3].map((id) => ({ id, hostname: `b${id}`, hostip: null, state: 0 }))

const memoryStore = (rows: Map<string | number, number>) =>
  Layer.succeed(RouteStore, {
    strategy: "mapping",
    findAssigned: (k) => Effect.succeed(rows.has(k) ? Option.some(backends.find((b) => b.id === rows.get(k))!) : Option.none()),
    listBackends: Effect.succeed(backends),
    assign: (k, id) => Effect.sync(() => {
      if (!rows.has(k)) rows.set(k, id)
      return backends.find((b) => b.id === rows.get(k))!
    }),
    reassign: (k, _f, t) => Effect.sync(() => {
      rows.set(k, t)
      return backends.find((b) => b.id === t)!
    })
  })

describe("Router options", () => {
  it.effect("normalisation: Alice@X and alice share one row", () =>
    Effect.gen(function*() {
      const rows = new Map<string | number, number>()
      const r = yield* Effect.provide(Router, Router.layer({ strategy: "mapping", downPolicy: "keep", normalize: { lowercase: true, stripDomain: true } }).pipe(Layer.provide(memoryStore(rows))))
      const a = yield* r.route("Alice@Example.com")
      const b = yield* r.route("alice")
      expect(a.backend.id).toBe(b.backend.id)
      expect([...rows.keys()]).toEqual(["alice"])
    }))
  it.effect("weighted and least-loaded use PlacementInfo; weight 0 gets nobody", () =>
    Effect.gen(function*() {
      const info = Layer.succeed(PlacementInfo, {
        weights: Effect.succeed(new Map([[1, 0], [2, 1], [3, 0]])),
        loads: Effect.succeed(new Map([[1, { weight: 1, users: 0 }], [2, { weight: 1, users: 9 }], [3, { weight: 1, users: 5 }]]))
      })
      const rows = new Map<string | number, number>()
      const w = yield* Effect.provide(Router, Router.layer({ strategy: "mapping", downPolicy: "keep", placement: "weighted" }).pipe(Layer.provide(Layer.merge(memoryStore(rows), info))))
      for (let i = 0; i < 50; i++) expect((yield* w.route(`u${i}`)).backend.id).toBe(2)
      const l = yield* Effect.provide(Router, Router.layer({ strategy: "mapping", downPolicy: "keep", placement: "least-loaded" }).pipe(Layer.provide(Layer.merge(memoryStore(new Map()), info))))
      expect((yield* l.route("x")).backend.id).toBe(1)
      const rnd = yield* Effect.provide(Router, Router.layer({ strategy: "mapping", downPolicy: "keep", placement: "random" }).pipe(Layer.provide(Layer.merge(memoryStore(new Map()), info))))
      for (let i = 0; i < 50; i++) expect((yield* rnd.route(`v${i}`)).backend.id).toBe(2)
    }))
  it.live("a held key answers RouteError Held until it expires", () =>
    Effect.gen(function*() {
      let until = Date.now() + 60_000
      const holds = Layer.succeed(RouteHolds, { heldUntil: (k) => Effect.succeed(k === "bob" ? Option.some(until) : Option.none()) })
      const r = yield* Effect.provide(Router, Router.layer({ strategy: "mapping", downPolicy: "keep" }).pipe(Layer.provide(Layer.merge(memoryStore(new Map()), holds))))
      const e = yield* Effect.flip(r.route("bob"))
      expect(e._tag === "RouteError" && e.reason).toBe("Held")
      expect((yield* r.route("carol")).backend).toBeDefined()
      until = Date.now() - 1
      expect((yield* r.route("bob")).backend).toBeDefined()
    }))
})
