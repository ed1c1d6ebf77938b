import { describe, expect, it } from "@effect/vitest"
import { crc32, parseExtraField, Placement, replyFields, shardKey, type Backend, fieldsForLog, InvalidExtraField } from "@doveroute/routing"
import { FastCheck, Redacted } from "effect"
import * as zlib from "node:zlib"

describe("shard key (docs/lua-director.md §4 vectors)", () => {
  const vectors: ReadonlyArray<[string, number, number]> = [
    ["alice", 2553358766, 10670],
    ["bob", 2973983638, 25494],
    ["testuser", 1214130342, 10406],
    ["testuser@domain", 3641406936, 30168],
    ["user1@example.com", 2001641393, 40881],
    ["alice@example.com", 211898814, 20926],
    ["user@example.com", 2191319145, 57449],
    ["jörg", 3253412317, 8669]
  ]
  for (const [user, crc, key] of vectors) {
    it(`${user} → crc ${crc}, shard ${key}`, () => {
      expect(crc32(user)).toBe(crc)
      expect(shardKey(user)).toBe(key)
    })
  }
  it("is case-sensitive like the script (no folding)", () => {
    expect(shardKey("Alice")).not.toBe(shardKey("alice"))
  })
  it.prop("always 0..65535 and equal to Node's zlib.crc32 low 16 bits", [FastCheck.string({ unit: "grapheme", maxLength: 64 })], ([s]) => {
    const k = shardKey(s)
    expect(k).toBeGreaterThanOrEqual(0)
    expect(k).toBeLessThanOrEqual(0xffff)
    expect(k).toBe(zlib.crc32(Buffer.from(s, "utf8"), 120254) & 0xffff)
  })
})

const b1: Backend = { id: 1, hostname: "backend1.test", hostip: "127.0.0.2", state: 0 }
const b2: Backend = { id: 2, hostname: "127.0.0.3", hostip: null, state: 0 }
const b3: Backend = { id: 3, hostname: "backend3.test", hostip: "", state: 0 }

describe("reply fields", () => {
  it("mapping shape: proxy_maybe, host, hostip, extras in order", () => {
    const extra = ["nopassword", "port=25143"].map(parseExtraField)
    expect(replyFields(b1, "proxy_maybe", extra)).toEqual([
      ["proxy_maybe", "y"], ["host", "backend1.test"], ["hostip", "127.0.0.2"], ["nopassword", undefined], ["port", "25143"]
    ])
  })
  it("shard shape: proxy=y; no hostip when NULL or empty", () => {
    expect(replyFields(b2, "proxy", [])).toEqual([["proxy", "y"], ["host", "127.0.0.3"]])
    expect(replyFields(b3, "proxy", [])).toEqual([["proxy", "y"], ["host", "backend3.test"]])
  })
  it("proxy flag none omits the flag", () => {
    expect(replyFields(b2, "none", [])).toEqual([["host", "127.0.0.3"]])
  })
  it("a user on a backend without hostip never gets another user's hostip (defect 5)", () => {
    const extra = [parseExtraField("nopassword")]
    const first = replyFields(b1, "proxy_maybe", extra)
    first.push(["injected", "x"])
    const second = replyFields(b2, "proxy_maybe", extra)
    expect(second.find(([k]) => k === "hostip")).toBeUndefined()
    expect(second.find(([k]) => k === "injected")).toBeUndefined()
  })
  it.prop("every reply is a fresh array whose hostip is exactly the backend's", [
    FastCheck.array(FastCheck.record({ ip: FastCheck.option(FastCheck.ipV4(), { nil: null }), id: FastCheck.nat() }), { minLength: 1, maxLength: 20 })
  ], ([seq]) => {
    for (const { ip, id } of seq) {
      const f = replyFields({ id, hostname: `h${id}`, hostip: ip, state: 0 }, "proxy_maybe", [])
      const hostip = f.find(([k]) => k === "hostip")?.[1]
      expect(hostip).toBe(ip === null || ip === "" ? undefined : ip)
    }
  })
  it("password values are Redacted in config and hidden in logs", () => {
    const f = parseExtraField("password=s3cret")
    expect(Redacted.isRedacted(f.value)).toBe(true)
    expect(String(f.value)).not.toContain("s3cret")
    const fields = replyFields(b1, "proxy_maybe", [f])
    expect(fields).toContainEqual(["password", "s3cret"])
    expect(fieldsForLog(fields)).toContain("password=<hidden>")
    expect(fieldsForLog(fields)).not.toContain("s3cret")
  })
  it("rejects malformed extra fields", () => {
    expect(() => parseExtraField("")).toThrow(InvalidExtraField)
    expect(() => parseExtraField("bad key=1")).toThrow(InvalidExtraField)
    expect(() => parseExtraField("k=a\tb")).toThrow(InvalidExtraField)
  })
  it("refuses the routing fields doveroute sets itself, in any case and with or without a value", () => {
    for (const spec of ["proxy_maybe", "proxy_maybe=y", "PROXY_MAYBE", "proxy", "proxy=y", "host=10.0.0.9", "hostip=10.0.0.9", "Host=x"]) {
      expect(() => parseExtraField(spec), spec).toThrow(/reserved/)
    }
    // neighbours that are not routing fields stay allowed
    expect(parseExtraField("proxy_timeout=5").key).toBe("proxy_timeout")
    expect(parseExtraField("nopassword").key).toBe("nopassword")
  })
})

describe("placement", () => {
  const down: Backend = { id: 9, hostname: "down", hostip: null, state: 1 }
  it("only state=0 backends are candidates", () => {
    expect(Placement.candidates([b1, down, b2]).map((b) => b.id)).toEqual([1, 2])
  })
  it("uniform choice covers every candidate; none → undefined", () => {
    expect(Placement.choose([], () => 0.5)).toBeUndefined()
    expect(Placement.choose([b1, b2], () => 0)?.id).toBe(1)
    expect(Placement.choose([b1, b2], () => 0.9999)?.id).toBe(2)
    const seen = new Set<number>()
    for (let i = 0; i < 200; i++) seen.add(Placement.choose([b1, b2, b3])!.id)
    expect([...seen].sort()).toEqual([1, 2, 3])
  })
})
