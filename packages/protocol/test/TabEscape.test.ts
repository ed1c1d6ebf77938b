import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { escape, formatKeyValue, joinLine, parseKeyValue, splitLine, unescape } from "../src/TabEscape.js"

const anyString = fc.string({ unit: "binary", maxLength: 80 })
/** Strings dense in the bytes that need escaping. */
const nasty = fc.string({ unit: fc.constantFrom("\x00", "\x01", "\t", "\r", "\n", "=", "a", "ö", "0", "t", "n"), maxLength: 40 })
const field = fc.oneof(anyString, nasty)

describe("TabEscape (docs/protocols.md §1)", () => {
  it("escapes exactly the five bytes of the table", () => {
    expect(escape("\x00\x01\t\r\n")).toBe("\x010\x011\x01t\x01r\x01n")
    expect(escape("plain=ö")).toBe("plain=ö")
    expect(unescape("\x010\x011\x01t\x01r\x01n")).toBe("\x00\x01\t\r\n")
  })

  it("decodes unknown escapes to the character and drops a trailing lone \\001", () => {
    expect(unescape("a\x01zb")).toBe("azb")
    expect(unescape("a\x01l")).toBe("al")
    expect(unescape("abc\x01")).toBe("abc")
    expect(unescape("\x01")).toBe("")
  })

  it("unescape(escape(s)) === s (property)", () => {
    fc.assert(fc.property(field, (s) => {
      expect(unescape(escape(s))).toBe(s)
    }), { numRuns: 20000 })
  })

  it("escaped text never contains NUL, TAB, CR or LF (property)", () => {
    fc.assert(fc.property(field, (s) => {
      expect(/[\x00\t\r\n]/.test(escape(s))).toBe(false)
    }), { numRuns: 20000 })
  })

  it("splitLine(joinLine(fields)) === fields (property)", () => {
    fc.assert(
      fc.property(fc.array(field, { minLength: 1, maxLength: 10 }), (fields) => {
        expect(splitLine(joinLine(fields))).toEqual(fields)
      }),
      { numRuns: 10000 }
    )
  })

  it("parseKeyValue(unescape(formatKeyValue(k, v))) round trips for keys without '=' (property)", () => {
    const key = field.filter((k) => !k.includes("="))
    const value = fc.option(field, { nil: undefined })
    fc.assert(
      fc.property(key, value, (k, v) => {
        const f = formatKeyValue(k, v)
        expect(f.includes("\t")).toBe(false)
        expect(parseKeyValue(unescape(f))).toEqual({ key: k, value: v })
      }),
      { numRuns: 10000 }
    )
  })

  it("splits key=value at the first '='", () => {
    expect(parseKeyValue("forward_fields=a=b")).toEqual({ key: "forward_fields", value: "a=b" })
    expect(parseKeyValue("secured")).toEqual({ key: "secured", value: undefined })
    expect(parseKeyValue("resp=")).toEqual({ key: "resp", value: "" })
  })
})
