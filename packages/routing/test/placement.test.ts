import { describe, expect, it } from "@effect/vitest"
import { type Backend, normalizeUser, Placement, routeKey, shardKey } from "@doveroute/routing"

const b = (id: number, state = 0): Backend => ({ id, hostname: `b${id}`, hostip: null, state })

describe("placement", () => {
  it("candidates: only state 0, and weight > 0 when weights are known", () => {
    const all = [b(1), b(2, 1), b(3, 2), b(4, 3), b(5)]
    expect(Placement.candidates(all).map((x) => x.id)).toEqual([1, 5])
    expect(Placement.candidates(all, new Map([[5, 0]])).map((x) => x.id)).toEqual([1])
  })
  it("weighted: proportional to weight, weight 0 never chosen", () => {
    const cands = [b(1), b(2), b(3)]
    const weights = new Map([[1, 1], [2, 3], [3, 0]])
    const counts = new Map<number, number>()
    let seed = 1
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647)
    for (let i = 0; i < 20000; i++) {
      const p = Placement.chooseWeighted(cands, weights, rnd)!
      counts.set(p.id, (counts.get(p.id) ?? 0) + 1)
    }
    expect(counts.get(3)).toBeUndefined()
    const ratio = counts.get(2)! / counts.get(1)!
    expect(ratio).toBeGreaterThan(2.7)
    expect(ratio).toBeLessThan(3.3)
    // exact boundaries with an injected random
    expect(Placement.chooseWeighted(cands, weights, () => 0)!.id).toBe(1)
    expect(Placement.chooseWeighted(cands, weights, () => 0.25)!.id).toBe(2)
    expect(Placement.chooseWeighted(cands, weights, () => 0.9999)!.id).toBe(2)
    expect(Placement.chooseWeighted(cands, new Map([[1, 0], [2, 0], [3, 0]]))).toBeUndefined()
  })
  it("least-loaded: fewest users per weight, ties to the lowest id, weight 0 skipped", () => {
    const cands = [b(3), b(1), b(2)]
    expect(Placement.chooseLeastLoaded(cands, new Map([
      [1, { weight: 1, users: 10 }], [2, { weight: 4, users: 20 }], [3, { weight: 1, users: 6 }]
    ]))!.id).toBe(2) // 20/4 = 5 < 6 < 10
    expect(Placement.chooseLeastLoaded(cands, new Map([
      [1, { weight: 1, users: 5 }], [2, { weight: 0, users: 0 }], [3, { weight: 1, users: 5 }]
    ]))!.id).toBe(1)
    expect(Placement.chooseLeastLoaded([b(7)], new Map())!.id).toBe(7) // unknown: weight 1, 0 users
  })
})

describe("username normalisation (off by default)", () => {
  it("raw name by default", () => {
    expect(normalizeUser("Alice@Example.COM")).toBe("Alice@Example.COM")
    expect(routeKey("mapping", "Alice@Example.COM")).toBe("Alice@Example.COM")
  })
  it("lowercase (%Lu), strip_domain (%n), both", () => {
    expect(normalizeUser("Alice@Example.COM", { lowercase: true, stripDomain: false })).toBe("alice@example.com")
    expect(normalizeUser("Alice@Example.COM", { lowercase: false, stripDomain: true })).toBe("Alice")
    expect(normalizeUser("a@b@Example.com", { lowercase: true, stripDomain: true })).toBe("a@b")
    expect(normalizeUser("@domain", { lowercase: false, stripDomain: true })).toBe("@domain")
  })
  it("is applied before the key: mapping row name and shard", () => {
    const n = { lowercase: true, stripDomain: true }
    expect(routeKey("mapping", "ALICE@x.org", n)).toBe("alice")
    expect(routeKey("shard", "ALICE@x.org", n)).toBe(shardKey("alice"))
    expect(routeKey("shard", "ALICE@x.org")).not.toBe(shardKey("alice"))
  })
})
