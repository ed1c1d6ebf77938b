import { describe, expect, it } from "@effect/vitest"
import { Dict, LineSplitter, LineTooLongError, TabEscape } from "@doveroute/protocol"
import { FastCheck } from "effect"

describe("dict codec (Dovecot 2.3.19 / 2.4.1 captures)", () => {
  it("decodes the 2.3 hello and lookup", () => {
    expect(Dict.decodeRequest("H3\t2\t0\t\tdirector")).toEqual({ _tag: "Hello", major: 3, minor: 2, user: "", dictName: "director" })
    expect(Dict.decodeRequest("Lshared/passdb/alice\talice")).toEqual({ _tag: "Lookup", key: "shared/passdb/alice", username: "alice" })
  })
  it("decodes the 2.4 hello and a lookup without user", () => {
    expect(Dict.decodeRequest("H4\t0\t0\t\tdirector")).toMatchObject({ _tag: "Hello", major: 4, minor: 0 })
    expect(Dict.decodeRequest("Lshared/director/alice\t")).toEqual({ _tag: "Lookup", key: "shared/director/alice", username: "" })
  })
  it("unescapes keys", () => {
    expect(Dict.decodeRequest("Lshared/passdb/a\x01tb\tx")).toMatchObject({ key: "shared/passdb/a\tb" })
  })
  it("flags bad input", () => {
    expect(Dict.decodeRequest("")._tag).toBe("Invalid")
    expect(Dict.decodeRequest("Hx\ty")._tag).toBe("Invalid")
    expect(Dict.decodeRequest("L")._tag).toBe("Invalid")
    expect(Dict.decodeRequest("Ifoo")._tag).toBe("Unsupported")
  })
  it("encodes replies", () => {
    expect(Dict.encodeFound('{"host":"a\tb"}')).toBe('O{"host":"a\x01tb"}\n')
    expect(Dict.encodeNotFound()).toBe("N\n")
    expect(Dict.encodeFailure("no\nbackend")).toBe("Fno\x01nbackend\n")
  })
  it("renders passdb JSON with flags as y", () => {
    expect(Dict.encodePassdbJson([["proxy_maybe", "y"], ["host", "127.0.0.2"], ["nopassword", undefined]]))
      .toBe('{"proxy_maybe":"y","host":"127.0.0.2","nopassword":"y"}')
  })
  it.prop("decodeRequest never throws", [FastCheck.string({ unit: "binary", maxLength: 200 })], ([s]) => {
    expect(typeof Dict.decodeRequest(s)._tag).toBe("string")
  })
})

describe("tab escaping", () => {
  it("escapes the five special bytes", () => {
    expect(TabEscape.escape("a\x00b\x01c\td\re\nf")).toBe("a\x010b\x011c\x01td\x01re\x01nf")
  })
  it("drops a lone trailing \\x01 and passes unknown escapes through", () => {
    expect(TabEscape.unescape("ab\x01")).toBe("ab")
    expect(TabEscape.unescape("a\x01xb")).toBe("axb")
  })
  it.prop("round-trips any string", [FastCheck.string({ unit: "binary", maxLength: 200 })], ([s]) => {
    const e = TabEscape.escape(s)
    expect(e).not.toMatch(/[\t\n\r\x00]/)
    expect(TabEscape.unescape(e)).toBe(s)
  })
  it.prop("joinLine/splitLine round-trip", [FastCheck.array(FastCheck.string({ unit: "binary", maxLength: 30 }), { minLength: 1, maxLength: 8 })], ([fields]) => {
    expect(TabEscape.splitLine(TabEscape.joinLine(fields))).toEqual(fields)
  })
})

describe("line splitter", () => {
  it("keeps a UTF-8 character split across chunks whole", () => {
    const bytes = Buffer.from("Lshared/passdb/jörg\tjörg\n", "utf8")
    const cut = bytes.indexOf(0xc3) + 1
    const lines: Array<string> = []
    const s = new LineSplitter(1024)
    s.push(bytes.subarray(0, cut), (l) => lines.push(l))
    s.push(bytes.subarray(cut), (l) => lines.push(l))
    expect(lines).toEqual(["Lshared/passdb/jörg\tjörg"])
  })
  it("splits many lines in one chunk and across chunks", () => {
    const lines: Array<string> = []
    const s = new LineSplitter(64)
    s.push(Buffer.from("a\nbb\ncc"), (l) => lines.push(l))
    s.push(Buffer.from("c\n\n"), (l) => lines.push(l))
    expect(lines).toEqual(["a", "bb", "ccc", ""])
  })
  it("throws LineTooLongError past the limit, with or without LF", () => {
    expect(() => new LineSplitter(4).push(Buffer.from("12345\n"), () => {})).toThrow(LineTooLongError)
    expect(() => new LineSplitter(4).push(Buffer.from("12345"), () => {})).toThrow(LineTooLongError)
    expect(() => new LineSplitter(5).push(Buffer.from("12345\n"), () => {})).not.toThrow()
  })
  it.prop("any chunking gives the same lines", [
    FastCheck.array(FastCheck.string({ maxLength: 20 }).map((s) => s.replace(/\n/g, "")), { maxLength: 10 }),
    FastCheck.array(FastCheck.nat(50), { maxLength: 10 })
  ], ([lines, cuts]) => {
    const data = Buffer.from(lines.map((l) => l + "\n").join(""), "utf8")
    const out: Array<string> = []
    const s = new LineSplitter(1 << 16)
    let pos = 0
    for (const c of cuts) {
      const end = Math.min(data.length, pos + c)
      s.push(data.subarray(pos, end), (l) => out.push(l))
      pos = end
    }
    s.push(data.subarray(pos), (l) => out.push(l))
    expect(out).toEqual(lines)
  })
})
