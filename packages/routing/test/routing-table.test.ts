// The routing table and its feed reader, over an in-memory feed whose entries the test controls
// (the SQL feed on real databases: packages/store/test/change-feed.test.ts):
// - lookups: only from a loaded table, only for a backend the table holds, never for a held key,
//   never from a table older than max_stale; users per backend follow every change;
// - a first assignment is added unless the feed changed the table meanwhile;
// - feed entries visible out of order (holes) are applied when they appear; a hole that stays
//   reloads the table; so does a "reload" entry and a position behind the pruned feed;
// - a reload keeps answering from the old contents until the new ones are in;
// - a failing store: the table keeps answering, the status says so, and it recovers.
import { describe, expect, it } from "@effect/vitest"
import {
  type Backend,
  type Change,
  GAP_WAIT_MS,
  makeSync,
  MAX_HOLES,
  makeTable,
  type RouteFeed,
  Router,
  RouteMap,
  RouteStore,
  RouteTable,
  StoreError,
  type TableSnapshot
} from "@doveroute/routing"
import { type Context, Effect, Layer, Option } from "effect"

const b = (id: number, state = 0): Backend => ({ id, hostname: `b${id}.test`, hostip: null, state })
const snap = (routes: Record<string, number>, backends = [b(1), b(2)], holds: Record<string, number> = {}): TableSnapshot => ({
  backends,
  routes: RouteMap.from(Object.entries(routes)),
  holds: new Map(Object.entries(holds))
})

/** A feed the test writes to: `visible` entries are what the store would show now. */
const fakeFeed = (state: { snapshot: TableSnapshot; stored?: Map<string, number> }) => {
  const visible: Array<Change> = []
  let oldest = 1
  let down = false
  let snapshots = 0
  const fail = () => Effect.fail(new StoreError({ reason: "Unavailable", detail: "store is down (test)" }))
  const feed: Context.Tag.Service<RouteFeed> = {
    head: Effect.suspend(() => (down ? fail() : Effect.succeed(Math.max(0, ...visible.map((c) => c.id))))),
    oldest: Effect.suspend(() => (down ? fail() : Effect.succeed(visible.length === 0 ? undefined : oldest))),
    read: (after, limit) =>
      Effect.suspend(() => down ? fail() : Effect.succeed(visible.filter((c) => c.id > after).sort((x, y) => x.id - y.id).slice(0, limit))),
    readIds: (ids) => Effect.suspend(() => (down ? fail() : Effect.succeed(visible.filter((c) => ids.includes(c.id))))),
    rowsOf: (keys) =>
      Effect.suspend(() =>
        down ? fail() : Effect.succeed(
          [...(state.stored ?? new Map<string, number>())].filter(([k]) => keys.some((x) => x.toLowerCase() === k.toLowerCase()))
            .map(([key, backendId]) => ({ key, backendId }))
        )
      ),
    snapshot: Effect.suspend(() => {
      if (down) return fail()
      snapshots++
      return Effect.succeed(state.snapshot)
    }),
    prune: () => Effect.void
  }
  return {
    feed,
    push: (...cs: Array<Change>) => visible.push(...cs),
    pruneTo: (id: number) => {
      oldest = id
      visible.splice(0, visible.length, ...visible.filter((c) => c.id >= id))
    },
    setDown: (d: boolean) => {
      down = d
    },
    snapshots: () => snapshots
  }
}

const route = (id: number, key: string, backendId: number | null): Change => ({ _tag: "route", id, key, backendId })
const OPTS = { refresh: "1 second", maxStale: 0, keepChanges: 1000 } as const

/** A table and its reader over a fake feed, after the first refresh (the load). */
const started = (routes: Record<string, number>) =>
  Effect.gen(function*() {
    const state: { snapshot: TableSnapshot; stored: Map<string, number> } = { snapshot: snap(routes), stored: new Map() }
    const f = fakeFeed(state)
    const t = makeTable()
    const clock = { now: 0 }
    const s = makeSync(f.feed, t, OPTS, () => clock.now)
    yield* s.step
    return { state, f, t, clock, s }
  })

describe("routing table", () => {
  it("answers only when loaded, only for backends it holds, never for a held key or past max_stale", () => {
    let now = 1000
    const t = makeTable({ maxStaleMs: 5000 })
    expect(t.lookup("alice", now), "not loaded").toBeUndefined()
    t.replace(snap({ alice: 1, bob: 9, carol: 2 }, [b(1), b(2)], { carol: 2000 }))
    t.markRead(now)
    expect(t.lookup("alice", now)?.hostname).toBe("b1.test")
    expect(t.lookup("bob", now), "backend 9 is not in the table").toBeUndefined()
    expect(t.lookup("carol", now), "held until 2000").toBeUndefined()
    now = 2001
    expect(t.lookup("carol", now)?.hostname).toBe("b2.test")
    now = 7002
    expect(t.lookup("alice", now), "older than max_stale").toBeUndefined()
    t.markRead(now)
    expect(t.lookup("alice", now)?.hostname).toBe("b1.test")
    expect(t.stats()).toEqual({ hits: 3, misses: 4 })
  })

  it("applies moves, deletes, backend changes and holds; counts users per backend", () => {
    const t = makeTable()
    t.replace(snap({ alice: 1, bob: 1 }))
    expect(t.backends().map((x) => [x.id, x.users])).toEqual([[1, 2], [2, 0]])
    expect(t.apply(route(1, "alice", 2))).toBe(true)
    expect(t.apply(route(2, "bob", null))).toBe(true)
    expect(t.apply({ _tag: "backend", id: 3, backendId: 2, backend: { ...b(2), hostname: "new2.test", state: 1 } })).toBe(true)
    expect(t.apply({ _tag: "backend", id: 4, backendId: 1, backend: null })).toBe(true)
    expect(t.apply({ _tag: "hold", id: 5, key: "dave", until: Number.MAX_SAFE_INTEGER })).toBe(true)
    expect(t.apply(route(6, "dave", 2))).toBe(true)
    expect(t.lookup("alice", 0)).toEqual({ id: 2, hostname: "new2.test", hostip: null, state: 1 })
    expect(t.lookup("bob", 0)).toBeUndefined()
    expect(t.lookup("dave", 0), "held").toBeUndefined()
    t.apply({ _tag: "hold", id: 7, key: "dave", until: null })
    expect(t.lookup("dave", 0)?.hostname).toBe("new2.test")
    expect(t.backends().map((x) => [x.id, x.users])).toEqual([[2, 2]])
    expect(t.apply({ _tag: "reload", id: 8 }), "asks for a reload").toBe(false)
  })

  it("adds a first assignment unless the feed changed the table since the route started", () => {
    const t = makeTable()
    t.replace(snap({ alice: 1 }))
    const g = t.generation()
    t.addAssigned("erin", 2, g)
    expect(t.lookup("erin", 0)?.id).toBe(2)
    t.addAssigned("alice", 2, t.generation())
    expect(t.lookup("alice", 0)?.id, "an existing row is the feed's").toBe(1)
    const before = t.generation()
    t.apply(route(1, "frank", null))
    t.addAssigned("frank", 1, before)
    expect(t.lookup("frank", 0), "the feed changed the table meanwhile: its entry wins").toBeUndefined()
  })
})

describe("feed reader", () => {
  it.effect("loads, then applies entries; a hole is filled when its entry becomes visible", () =>
    Effect.gen(function*() {
      const { clock, f, s, t } = yield* started({ alice: 1 })
      expect(s.status()).toMatchObject({ loaded: true, storeUp: true, reloads: 1 })
      f.push(route(1, "alice", 2), route(3, "bob", 1)) // id 2 not committed yet
      yield* s.step
      expect(t.lookup("bob", clock.now)?.id).toBe(1)
      f.push(route(2, "carol", 2))
      clock.now += 1000
      yield* s.step
      expect(t.lookup("carol", clock.now)?.id, "the late entry was applied").toBe(2)
      clock.now += GAP_WAIT_MS * 2
      yield* s.step
      expect(s.status()).toMatchObject({ reloads: 1, applied: 3 })
    }))

  it.effect("a hole that stays, a reload entry and a position behind the pruned feed reload; the old rows answer meanwhile", () =>
    Effect.gen(function*() {
      const { clock, f, s, state, t } = yield* started({ alice: 1 })
      f.push(route(2, "bob", 1)) // id 1 never shows (rolled back, or a transaction still open)
      yield* s.step
      clock.now += GAP_WAIT_MS - 1
      yield* s.step
      expect(s.status().reloads, "within the wait: no reload").toBe(1)
      state.snapshot = snap({ alice: 2, bob: 1 })
      clock.now += 2
      yield* s.step
      expect(s.status().reloads, "the hole stayed: reloaded").toBe(2)
      expect(t.lookup("alice", clock.now)?.id).toBe(2)

      f.push({ _tag: "reload", id: 3 })
      state.snapshot = snap({ alice: 1, bob: 1 })
      yield* s.step
      expect(s.status().reloads, "a reload entry (TRUNCATE)").toBe(3)

      // a second reader starts after the reload entry (it re-reads it, covered by its snapshot: no
      // second load), then stops reading; the feed is pruned past its position
      const t2 = makeTable()
      const late = makeSync(f.feed, t2, OPTS, () => clock.now)
      yield* late.step
      yield* late.step
      expect(late.status().reloads).toBe(1)
      f.push(...Array.from({ length: 20 }, (_, i) => route(4 + i, "alice", (i % 2) + 1)))
      f.pruneTo(20)
      state.snapshot = {
        ...snap({ alice: 2, bob: 1 }),
        get routes() {
          // while the snapshot is read, the old rows still answer
          expect(t2.lookup("alice", clock.now)?.hostname).toMatch(/^b[12]\.test$/)
          expect(t2.lookup("bob", clock.now)?.id).toBe(1)
          return RouteMap.from([["alice", 2], ["bob", 1]])
        }
      }
      yield* late.step
      expect(late.status().reloads, "behind the pruned feed: reloaded at once").toBe(2)
      expect(t2.lookup("alice", clock.now)?.id).toBe(2)

      // more missing ids than are tracked: reloaded at once, without tracking each
      f.push(route(24 + MAX_HOLES + 5, "bob", 2))
      yield* late.step
      expect(late.status().reloads).toBe(3)
    }))

  it.effect("a hole in the range replayed after a load is waited for (its change committed after the snapshot); a given-up id is not", () =>
    Effect.gen(function*() {
      const state = { snapshot: snap({ alice: 1 }) }
      const f = fakeFeed(state)
      // id 2 (bob) was written before id 3 but its transaction is still open while the table loads
      f.push(route(1, "alice", 1), route(3, "carol", 2))
      const t = makeTable()
      const clock = { now: 0 }
      const s = makeSync(f.feed, t, OPTS, () => clock.now)
      yield* s.step
      expect(t.lookup("bob", clock.now), "not committed at the load").toBeUndefined()
      f.push(route(2, "bob", 2))
      clock.now += 1000
      yield* s.step
      expect(t.lookup("bob", clock.now)?.id, "the late commit reached the table").toBe(2)
      expect(s.status().reloads).toBe(1)

      // a rolled-back id (4): one reload after the wait, then the replay passes it without waiting again
      f.push(route(5, "dave", 1))
      yield* s.step
      clock.now += GAP_WAIT_MS + 1
      yield* s.step
      expect(s.status().reloads).toBe(2)
      clock.now += GAP_WAIT_MS * 3
      yield* s.step
      yield* s.step
      expect(s.status().reloads, "the given-up id does not reload the table again").toBe(2)
    }))

  it.effect("a first assignment the login path added is confirmed or dropped at the next refresh", () =>
    Effect.gen(function*() {
      const { clock, s, state, t } = yield* started({ alice: 1 })
      t.addAssigned("erin", 2, t.generation()) // the store holds it
      t.addAssigned("lost", 1, t.generation()) // the store does not (insert lost, row removed unseen)
      t.addAssigned("bob", 1, t.generation()) // the store holds "Bob" (case-insensitive collation) on 2
      state.stored.set("erin", 2).set("Bob", 2)
      expect(t.unconfirmed()).toEqual(["erin", "lost", "bob"])
      yield* s.step
      expect(t.lookup("erin", clock.now)?.id).toBe(2)
      expect(t.lookup("lost", clock.now)).toBeUndefined()
      expect(t.lookup("bob", clock.now)).toBeUndefined()
      expect(t.lookup("Bob", clock.now)?.id).toBe(2)
      expect(t.unconfirmed()).toEqual([])
    }))

  it.effect("a failing store: the table keeps answering, the status says so, then it recovers", () =>
    Effect.gen(function*() {
      const { clock, f, s, t } = yield* started({ alice: 1 })
      f.setDown(true)
      clock.now += 5000
      yield* s.step
      expect(s.status()).toMatchObject({ storeUp: false, lastReadAt: 0 })
      expect(t.lookup("alice", clock.now)?.hostname).toBe("b1.test")
      f.setDown(false)
      f.push(route(1, "alice", 2))
      clock.now += 1000
      yield* s.step
      expect(s.status()).toMatchObject({ storeUp: true, lastReadAt: clock.now })
      expect(t.lookup("alice", clock.now)?.id).toBe(2)
    }))
})

describe("router over the table", () => {
  const store = (calls: Array<string>) =>
    Layer.succeed(RouteStore, {
      strategy: "mapping",
      findAssigned: (key) => Effect.sync(() => (calls.push(`find ${String(key)}`), key === "bob" ? Option.some(b(2, 1)) : Option.none())),
      listBackends: Effect.succeed([b(1), b(2, 1)]),
      assign: (key, id) => Effect.sync(() => (calls.push(`assign ${String(key)}`), b(id))),
      reassign: () => Effect.die("unused")
    })

  it.effect("known users from memory; a down backend follows down_policy; first logins go the store and join the table", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const t = makeTable()
      t.replace(snap({ alice: 1, bob: 2 }, [b(1), b(2, 1)]))
      const table = Layer.succeed(RouteTable, { table: t, status: () => ({ loaded: true, storeUp: true, lastReadAt: 0, reloads: 1, applied: 0 }) })
      const router = yield* Effect.provide(
        Router,
        Router.layer({ strategy: "mapping", downPolicy: "tempfail", normalize: { lowercase: true, stripDomain: false } }).pipe(
          Layer.provide(Layer.merge(store(calls), table))
        )
      )
      expect(router.cached("ALICE")).toMatchObject({ key: "alice", backend: { id: 1 }, source: "existing" })
      expect(router.cached("bob"), "down backend under tempfail: the store path decides").toBeUndefined()
      expect(router.cached("a\tb")).toBeUndefined()
      expect(router.cached("new")).toBeUndefined()
      const r = yield* Effect.either(router.route("bob"))
      expect(r._tag === "Left" && r.left._tag === "RouteError" && r.left.reason).toBe("BackendDown")
      const first = yield* router.route("new")
      expect(first).toMatchObject({ source: "assigned", backend: { id: 1 } })
      expect(router.cached("new"), "the first assignment joined the table").toMatchObject({ backend: { id: 1 }, source: "existing" })
      expect(calls).toEqual(["find bob", "find new", "assign new"])
    }))
})
