// The router's grouped first logins over an in-memory store that counts its calls: how a group
// fails (every member, never a backend), which members are routed alone, placement inside a group,
// and the store's combined read of a group (`groupReads`).
// The real statements on SQLite, PostgreSQL and MariaDB: packages/store/test/first-logins.test.ts.
import { describe, expect, it } from "@effect/vitest"
import {
  type Backend,
  type GroupReads,
  type GroupReadsWant,
  makeTable,
  PlacementInfo,
  RouteCache,
  RouteHolds,
  RouteMap,
  Router,
  RouteStore,
  type RouteStoreService,
  RouteTable,
  StoreError
} from "@doveroute/routing"
import { Effect, Exit, Fiber, Layer, Option } from "effect"

const backends: Array<Backend> = [1, 2].map((id) => ({ id, hostname: `b${id}`, hostip: null, state: 0 }))
const byId = (id: number) => backends.find((b) => b.id === id)!

interface Calls {
  groups: Array<number>
  alone: number
}

/** A store with `assignMany`; `group` decides what a group call answers. */
const storeWith = (
  rows: Map<string, number>,
  calls: Calls,
  group: (pairs: ReadonlyArray<{ key: string | number; backendId: number }>) => Effect.Effect<ReadonlyMap<string, Backend | null>, StoreError>,
  groupWaitMs?: number
) =>
  Layer.succeed(RouteStore, {
    strategy: "mapping",
    findAssigned: (k) =>
      Effect.sync(() => {
        calls.alone++
        const id = rows.get(String(k))
        return id === undefined ? Option.none() : Option.some(byId(id))
      }),
    listBackends: Effect.succeed(backends),
    assign: (k, id) =>
      Effect.sync(() => {
        if (!rows.has(String(k))) rows.set(String(k), id)
        return byId(rows.get(String(k))!)
      }),
    reassign: () => Effect.die("not used"),
    assignMany: (pairs) => Effect.suspend(() => {
      calls.groups.push(pairs.length)
      return group(pairs)
    }),
    groupsInFlight: 1,
    ...(groupWaitMs !== undefined ? { groupWaitMs } : {})
  } satisfies RouteStoreService)

/** Insert-ignore then read, like the SQL store. */
const insertIgnore = (rows: Map<string, number>) => (pairs: ReadonlyArray<{ key: string | number; backendId: number }>) =>
  Effect.sync(() => {
    const m = new Map<string, Backend | null>()
    for (const p of pairs) {
      if (!rows.has(String(p.key))) rows.set(String(p.key), p.backendId)
      m.set(String(p.key), byId(rows.get(String(p.key))!))
    }
    return m as ReadonlyMap<string, Backend | null>
  })

const loadedTable = () => {
  const table = makeTable()
  table.replace({ backends, routes: new RouteMap(), holds: new Map() })
  return Layer.succeed(RouteTable, {
    table,
    status: () => ({ loaded: true, storeUp: true, lastReadAt: 0, reloads: 1, applied: 0 })
  })
}

const routerOver = (store: Layer.Layer<RouteStore>, extra: Layer.Layer<never> = Layer.empty, placement?: "least-loaded") =>
  Effect.provide(
    Router,
    Router.layerCached({ strategy: "mapping", downPolicy: "keep", ...(placement ? { placement } : {}) }).pipe(
      Layer.provide(Layer.mergeAll(store, loadedTable(), RouteCache.disabled, extra))
    )
  )

const names = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`)

describe("grouped first logins", () => {
  it.live("concurrent first logins make one group; each member gets the stored row; the table learns them", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>([["u3", 2]])
      const calls: Calls = { groups: [], alone: 0 }
      const r = yield* routerOver(storeWith(rows, calls, insertIgnore(rows)))
      const routes = yield* Effect.all(names(40).map((u) => r.route(u)), { concurrency: "unbounded" })
      expect(calls.groups).toEqual([40])
      expect(calls.alone).toBe(0)
      for (const x of routes) expect(x.backend.id).toBe(rows.get(x.user))
      expect(routes[3]!.backend.id).toBe(2)
      for (const x of routes) expect(r.cached(x.user)?.backend.id).toBe(x.backend.id)
    }))

  it.live("store down: every member of the group fails with the store error, nobody is routed alone", () =>
    Effect.gen(function*() {
      const calls: Calls = { groups: [], alone: 0 }
      const down = () => Effect.fail(new StoreError({ reason: "Unavailable", detail: "connection refused" }))
      const r = yield* routerOver(storeWith(new Map(), calls, down))
      const exits = yield* Effect.all(names(25).map((u) => Effect.exit(r.route(u))), { concurrency: "unbounded" })
      expect(calls.groups).toEqual([25])
      expect(calls.alone).toBe(0)
      for (const e of exits) {
        expect(Exit.isFailure(e)).toBe(true)
        if (Exit.isFailure(e) && e.cause._tag === "Fail") expect((e.cause.error as StoreError).reason).toBe("Unavailable")
        else expect.fail("expected a StoreError failure")
      }
      expect(r.cached("u0")).toBeUndefined()
    }))

  it.live("a frozen store: a member queued behind a hanging group fails Timeout within groupWaitMs of joining, not after it", () =>
    Effect.gen(function*() {
      const calls: Calls = { groups: [], alone: 0 }
      const r = yield* routerOver(storeWith(new Map(), calls, () => Effect.never, 300))
      const timed = (u: string) =>
        Effect.gen(function*() {
          const t0 = Date.now()
          const e = yield* Effect.exit(r.route(u))
          return { e, ms: Date.now() - t0 }
        })
      // u0 starts the only group slot, which hangs; u1 joins 150 ms later and must queue behind it
      const first = yield* Effect.fork(timed("u0"))
      yield* Effect.sleep("150 millis")
      const second = yield* timed("u1")
      const one = yield* Fiber.join(first)
      expect(calls.groups).toEqual([1])
      for (const x of [one, second]) {
        expect(x.ms).toBeGreaterThanOrEqual(290)
        expect(x.ms, "answered within groupWaitMs of joining (+ scheduling)").toBeLessThan(300 + 250)
        if (Exit.isFailure(x.e) && x.e.cause._tag === "Fail") expect((x.e.cause.error as StoreError).reason).toBe("Timeout")
        else expect.fail("expected a StoreError Timeout")
      }
      expect(calls.alone).toBe(0)
    }))

  it.live("a statement error of the group: each member is routed alone (one bad key cannot fail the rest)", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>()
      const calls: Calls = { groups: [], alone: 0 }
      const broken = () => Effect.fail(new StoreError({ reason: "Query", detail: "value too long" }))
      const r = yield* routerOver(storeWith(rows, calls, broken))
      const routes = yield* Effect.all(names(10).map((u) => r.route(u)), { concurrency: "unbounded" })
      expect(calls.groups).toEqual([10])
      expect(calls.alone).toBe(10)
      for (const x of routes) expect(x.backend.id).toBe(rows.get(x.user))
    }))

  it.live("a row naming a deleted backend (null) or missing from the read-back: that member is routed alone", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>()
      const calls: Calls = { groups: [], alone: 0 }
      const partial = (pairs: ReadonlyArray<{ key: string | number; backendId: number }>) =>
        Effect.map(insertIgnore(rows)(pairs), (m) => {
          const out = new Map(m)
          out.set("u0", null)
          out.delete("u1")
          return out as ReadonlyMap<string, Backend | null>
        })
      const r = yield* routerOver(storeWith(rows, calls, partial))
      const routes = yield* Effect.all(names(6).map((u) => r.route(u)), { concurrency: "unbounded" })
      expect(calls.alone).toBe(2)
      for (const x of routes) expect(x.backend.id).toBe(rows.get(x.user))
    }))

  it.live("least-loaded inside one group: each pick counts for the next", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>()
      const calls: Calls = { groups: [], alone: 0 }
      const info = Layer.succeed(PlacementInfo, {
        weights: Effect.succeed(new Map([[1, 1], [2, 1]])),
        loads: Effect.succeed(new Map([[1, { weight: 1, users: 4 }], [2, { weight: 1, users: 0 }]]))
      })
      const r = yield* routerOver(storeWith(rows, calls, insertIgnore(rows)), info, "least-loaded")
      const routes = yield* Effect.all(names(10).map((u) => r.route(u)), { concurrency: "unbounded" })
      expect(calls.groups).toEqual([10])
      const on = (id: number) => routes.filter((x) => x.backend.id === id).length
      expect([on(1), on(2)]).toEqual([3, 7])
    }))

  it.live("an interrupted member leaves the queue; the others are answered", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>()
      const calls: Calls = { groups: [], alone: 0 }
      const r = yield* routerOver(storeWith(rows, calls, insertIgnore(rows)))
      const gone = yield* Effect.fork(r.route("gone"))
      const kept = yield* Effect.fork(r.route("kept"))
      yield* Effect.yieldNow()
      yield* gone.interruptAsFork(gone.id())
      const k = yield* kept.await
      expect(Exit.isSuccess(k)).toBe(true)
      expect(calls.groups).toEqual([1])
      expect(rows.has("gone")).toBe(false)
    }))
})

describe("a store's combined read for a group (groupReads)", () => {
  const tagged: Array<Backend> = [
    { id: 1, hostname: "b1", hostip: null, state: 0 },
    { id: 2, hostname: "b2", hostip: null, state: 0 },
    { id: 3, hostname: "b3", hostip: null, state: 0, tag: "vip" },
    { id: 4, hostname: "b4", hostip: null, state: 1 }
  ]
  const wrong = (what: string) => Effect.die(`the group read ${what} separately`)

  /** A store whose separate reads die: a group must use `groupReads` only. */
  const combinedStore = (rows: Map<string, number>, wants: Array<GroupReadsWant>, answer: Omit<GroupReads, "backends">) =>
    Layer.succeed(RouteStore, {
      strategy: "mapping",
      findAssigned: (k) => Effect.succeed(Option.fromNullable(tagged.find((b) => b.id === rows.get(String(k))))),
      listBackends: wrong("the backends"),
      assign: (k, id) =>
        Effect.sync(() => {
          if (!rows.has(String(k))) rows.set(String(k), id)
          return tagged.find((b) => b.id === rows.get(String(k)))!
        }),
      reassign: () => Effect.die("not used"),
      assignMany: (pairs) =>
        Effect.sync(() => {
          const m = new Map<string, Backend | null>()
          for (const p of pairs) {
            if (!rows.has(String(p.key))) rows.set(String(p.key), p.backendId)
            m.set(String(p.key), tagged.find((b) => b.id === rows.get(String(p.key)))!)
          }
          return m as ReadonlyMap<string, Backend | null>
        }),
      userTags: () => wrong("the user tags"),
      groupReads: (keys, want) =>
        Effect.sync(() => {
          wants.push(want)
          return { backends: tagged, ...answer }
        }),
      groupsInFlight: 1
    } satisfies RouteStoreService)

  const services = (loads?: ReadonlyMap<number, { weight: number; users: number }>) =>
    Layer.mergeAll(
      Layer.succeed(PlacementInfo, { weights: wrong("the weights"), loads: loads !== undefined ? Effect.succeed(loads) : wrong("the loads") }),
      Layer.succeed(RouteHolds, { heldUntil: () => wrong("a hold"), heldMany: () => wrong("the holds") })
    ) as Layer.Layer<never>

  it.live("holds, weights and stored tags from the one read decide as the separate reads do", () =>
    Effect.gen(function*() {
      const rows = new Map<string, number>()
      const wants: Array<GroupReadsWant> = []
      const store = combinedStore(rows, wants, {
        // b1 takes no new users (weight 0); u-held is being moved; u-vip has the stored tag vip
        weights: new Map([[1, 0], [2, 1], [3, 1], [4, 1]]),
        holds: new Map([["u-held", Date.now() + 60_000], ["u-expired", Date.now() - 1]]),
        userTags: new Map([["u-vip", "vip"]])
      })
      const r = yield* routerOver(store, services())
      const users = [...names(20), "u-held", "u-expired", "u-vip"]
      const exits = yield* Effect.all(users.map((u) => Effect.exit(r.route(u))), { concurrency: "unbounded" })
      expect(wants).toEqual([{ holds: true, weights: true, userTags: true }])
      const byUser = new Map(users.map((u, i) => [u, exits[i]!] as const))
      const held = byUser.get("u-held")!
      expect(Exit.isFailure(held) && held.cause._tag === "Fail" && (held.cause.error as { reason?: string }).reason).toBe("Held")
      expect(rows.has("u-held")).toBe(false)
      for (const u of [...names(20), "u-expired"]) {
        const e = byUser.get(u)!
        expect(Exit.isSuccess(e) && e.value.backend.id, u).toBe(2)
      }
      const vip = byUser.get("u-vip")!
      expect(Exit.isSuccess(vip) && vip.value.backend.id).toBe(3)
    }))

  it.live("without holds or placement services nothing of them is asked for; least-loaded reads its own loads", () =>
    Effect.gen(function*() {
      const bare: Array<GroupReadsWant> = []
      const r1 = yield* routerOver(combinedStore(new Map(), bare, { holds: new Map([["u0", Date.now() + 60_000]]), userTags: new Map() }))
      const routes = yield* Effect.all(names(5).map((u) => r1.route(u)), { concurrency: "unbounded" })
      expect(bare).toEqual([{ holds: false, weights: false, userTags: true }])
      // no RouteHolds service: a hold the store would report is not the router's to apply
      expect(routes.every((x) => x.backend.id === 1 || x.backend.id === 2)).toBe(true)

      const ll: Array<GroupReadsWant> = []
      const rows = new Map<string, number>()
      const r2 = yield* routerOver(
        combinedStore(rows, ll, { holds: new Map(), userTags: new Map() }),
        services(new Map([[1, { weight: 1, users: 4 }], [2, { weight: 1, users: 0 }], [3, { weight: 1, users: 0 }]])),
        "least-loaded"
      )
      const placed = yield* Effect.all(names(10).map((u) => r2.route(u)), { concurrency: "unbounded" })
      expect(ll).toEqual([{ holds: true, weights: false, userTags: true }])
      const on = (id: number) => placed.filter((x) => x.backend.id === id).length
      expect([on(1), on(2)]).toEqual([3, 7])
    }))
})
