import { describe, expect, it } from "@effect/vitest"
import { makeCache, RouteCache, RouteVersion, type Route, StoreError } from "@doveroute/routing"
import { Effect, Layer, Ref } from "effect"

const route = (user: string, id: number): Route => ({
  user,
  key: user,
  backend: { id, hostname: `b${id}`, hostip: null, state: 0 },
  source: "existing"
})

describe("route cache", () => {
  it("hits until cleared; a route computed before a clear is not stored", () => {
    const c = makeCache({ enabled: true, ttl: "1 minute", refresh: "1 second", maxEntries: 10 })
    const g = c.generation()
    c.set("alice", route("alice", 1), g)
    expect(c.get("alice")?.backend.id).toBe(1)
    const before = c.generation()
    c.clear()
    c.set("bob", route("bob", 2), before) // computed before the clear: dropped
    expect(c.get("bob")).toBeUndefined()
    expect(c.get("alice")).toBeUndefined()
    expect(c.stats()).toEqual({ hits: 1, misses: 2, clears: 1 })
  })

  it("entries expire after ttl; the oldest entry goes first when full", () => {
    let now = 1000
    const c = makeCache({ enabled: true, ttl: "10 millis", refresh: "1 second", maxEntries: 2 }, () => now)
    c.set("a", route("a", 1), 0)
    c.set("b", route("b", 1), 0)
    c.set("c", route("c", 1), 0)
    expect(c.get("a")).toBeUndefined()
    expect(c.get("b")?.user).toBe("b")
    now += 10
    expect(c.get("b")).toBeUndefined()
  })

  it("disabled: always a miss", () => {
    const c = makeCache({ enabled: false, ttl: "1 minute", refresh: "1 second", maxEntries: 10 })
    c.set("a", route("a", 1), c.generation())
    expect(c.get("a")).toBeUndefined()
  })

  it.live("a version change or an unreadable version clears the cache within the refresh interval", () =>
    Effect.gen(function*() {
      const version = yield* Ref.make<number | "down">(1)
      const layer = RouteCache.layer({ enabled: true, ttl: "1 minute", refresh: "20 millis", maxEntries: 100 }).pipe(
        Layer.provide(Layer.succeed(RouteVersion, {
          current: Effect.flatMap(Ref.get(version), (v) =>
            v === "down" ? Effect.fail(new StoreError({ reason: "Unavailable", detail: "down" })) : Effect.succeed(v))
        }))
      )
      yield* Effect.scoped(Effect.gen(function*() {
        const cache = yield* RouteCache
        cache.set("alice", route("alice", 1), cache.generation())
        yield* Effect.sleep("60 millis")
        expect(cache.get("alice")?.backend.id).toBe(1) // unchanged version: kept
        yield* Ref.set(version, 2)
        yield* Effect.sleep("60 millis")
        expect(cache.get("alice")).toBeUndefined()
        cache.set("alice", route("alice", 2), cache.generation())
        yield* Ref.set(version, "down")
        yield* Effect.sleep("60 millis")
        expect(cache.get("alice")).toBeUndefined()
      }).pipe(Effect.provide(layer)))
    }))
})
