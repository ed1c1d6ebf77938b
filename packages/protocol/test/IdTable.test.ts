// IdTable (requests in flight by id) against the built-in Map as a model, across the switch from
// its arrays to a Map and back: any sequence of set / delete / get / clear leaves both alike.
import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { IdTable, SMALL } from "../src/IdTable.js"

const op = fc.oneof(
  fc.tuple(fc.constant("set" as const), fc.integer({ min: 1, max: 3 * SMALL }), fc.integer()),
  fc.tuple(fc.constant("delete" as const), fc.integer({ min: 1, max: 3 * SMALL }), fc.constant(0)),
  fc.tuple(fc.constant("get" as const), fc.integer({ min: 1, max: 3 * SMALL }), fc.constant(0)),
  fc.tuple(fc.constant("clear" as const), fc.constant(0), fc.constant(0))
)

describe("IdTable", () => {
  it("behaves as a Map<number, V> for any sequence of set, delete, get and clear", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = new IdTable<number>()
        const model = new Map<number, number>()
        for (const [what, id, v] of ops) {
          if (what === "set") {
            t.set(id, v)
            model.set(id, v)
          } else if (what === "delete") expect(t.delete(id)).toBe(model.delete(id))
          else if (what === "get") {
            expect(t.get(id)).toBe(model.get(id))
            expect(t.has(id)).toBe(model.has(id))
          } else {
            t.clear()
            model.clear()
          }
          expect(t.size).toBe(model.size)
        }
        expect([...t.values()].sort((a, b) => a - b)).toEqual([...model.values()].sort((a, b) => a - b))
      }),
      { numRuns: 500 }
    )
  })

  it("values() may be walked while the table changes (a connection closing clears it)", () => {
    const t = new IdTable<string>()
    for (let i = 1; i <= 5; i++) t.set(i, `r${i}`)
    const seen: Array<string> = []
    for (const v of t.values()) {
      seen.push(v)
      t.clear()
    }
    expect(seen).toEqual(["r1", "r2", "r3", "r4", "r5"])
    expect(t.size).toBe(0)
  })
})
