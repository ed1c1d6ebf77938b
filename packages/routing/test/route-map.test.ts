// RouteMap (the routing table's key → backend id map in typed arrays) against the built-in Map,
// as a model: any sequence of set / delete / get, over narrow, wide (non-Latin-1) and colliding
// keys, leaves both with the same contents in the same order.
import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { RouteMap } from "../src/RouteMap.js"

const key = fc.oneof(
  fc.string({ unit: fc.constantFrom("a", "b", "@", ".", "0"), maxLength: 6 }), // few distinct keys: many repeats
  fc.string({ unit: "binary", maxLength: 30 }), // any UTF-16, lone surrogates and NULs included
  fc.string({ unit: fc.constantFrom("ö", "é", "ÿ", "Ā", "日", "😀"), maxLength: 8 }), // around the one-byte limit
  fc.integer({ min: 0, max: 65535 }).map(String) // shard keys
)
const op = fc.oneof(
  fc.tuple(fc.constant("set" as const), key, fc.integer({ min: -2147483648, max: 2147483647 })),
  fc.tuple(fc.constant("delete" as const), key, fc.constant(0)),
  fc.tuple(fc.constant("get" as const), key, fc.constant(0))
)

const same = (m: RouteMap, model: Map<string, number>) => {
  expect(m.size).toBe(model.size)
  // compared as text: deep equality of large arrays is slow in the matcher
  expect(JSON.stringify([...m])).toBe(JSON.stringify([...model]))
  expect(JSON.stringify([...m.keys()])).toBe(JSON.stringify([...model.keys()]))
  expect(JSON.stringify([...m.values()])).toBe(JSON.stringify([...model.values()]))
  const wrong: Array<string> = []
  for (const [k, v] of model) if (m.get(k) !== v || !m.has(k)) wrong.push(k)
  expect(wrong).toEqual([])
}

describe("RouteMap", () => {
  it("behaves as a Map<string, number> for any sequence of set, delete and get", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const m = new RouteMap()
        const model = new Map<string, number>()
        for (const [what, k, v] of ops) {
          if (what === "set") {
            m.set(k, v)
            model.set(k, v)
          } else if (what === "delete") expect(m.delete(k)).toBe(model.delete(k))
          else expect(m.get(k)).toBe(model.get(k))
        }
        same(m, model)
      }),
      { numRuns: 300 }
    )
  })

  it("grows, compacts after many deletes and keeps insertion order (200 000 keys)", () => {
    const m = new RouteMap()
    const model = new Map<string, number>()
    for (let i = 0; i < 200_000; i++) {
      const k = i % 7 === 0 ? `üser${i}@例え.jp` : `user${i}@example.org`
      m.set(k, i % 5)
      model.set(k, i % 5)
    }
    same(m, model)
    const before = m.bytes
    for (let i = 0; i < 200_000; i += 3) {
      const k = i % 7 === 0 ? `üser${i}@例え.jp` : `user${i}@example.org`
      expect(m.delete(k)).toBe(true)
      model.delete(k)
    }
    // moves: a new value keeps the entry's place
    for (let i = 1; i < 200_000; i += 10) {
      const k = i % 7 === 0 ? `üser${i}@例え.jp` : `user${i}@example.org`
      m.set(k, 9)
      model.set(k, 9)
    }
    expect(m.get("user0@example.org")).toBeUndefined()
    expect(m.get("nobody")).toBeUndefined()
    same(m, model)
    expect(m.bytes).toBeLessThanOrEqual(before)
    // a million users take about 50-70 bytes each (the routing table's memory figure in the README)
    const big = new RouteMap()
    for (let i = 0; i < 1_000_000; i++) big.set(`user${i}@example.org`, i & 3)
    expect(big.size).toBe(1_000_000)
    expect(big.bytes / big.size).toBeLessThan(80)
    expect(big.get("user999999@example.org")).toBe(3)
  })

  it("refuses a value that is not an int32", () => {
    const m = new RouteMap()
    expect(() => m.set("a", 2 ** 31)).toThrow(RangeError)
    expect(() => m.set("a", 1.5)).toThrow(RangeError)
    expect(m.size).toBe(0)
  })
})
