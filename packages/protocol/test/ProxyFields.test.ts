import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { AuthMasterCodec } from "@doveroute/testkit"
import {
  appendFields,
  appendFieldsBytes,
  fieldValue,
  hasProxyMaybe,
  needsRoute,
  parseReplyLine,
  routeTag,
  routeUser,
  tempFailLine
} from "../src/ProxyFields.js"
import { parseKeyValue, splitLine } from "../src/TabEscape.js"

const fieldsOf = (line: string) => parseReplyLine(line)!.fields

describe("needsRoute on captured replies", () => {
  const cases: Array<[string, boolean]> = [
    // docs/protocols.md §8 relay capture (2.4.1 login socket)
    ["OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass", true],
    // docs/protocols.md §5.2 LMTP relay capture (2.4.1 auth-userdb)
    ["PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125", true],
    // already has host: pass through
    ["OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret", false],
    ["PASS\t1\tuser=alice\thostip=127.0.0.2\thost=backend1.test\tproxy", false],
    ["PASS\t1\tuser=carol\tport=20144\thostip=127.0.0.1\thost=localhost\tproxy=yes", false],
    ["OK\t1\tuser=alice\tproxy_maybe=y\thostip=127.0.0.2\thost=backend1.test", false],
    // not a proxy reply
    ["OK\t1\tuser=mallory", false],
    ["OK\t1\tuser=selfie\thostip=127.0.0.1", false],
    ["OK\t1\tuser=dave\tpass=secret", false],
    // proxy variants without host
    ["OK\t1\tuser=a\tproxy", true],
    ["OK\t1\tuser=a\tproxy=no", true],
    ["OK\t1\tuser=a\tproxy_maybe", true],
    ["PASS\t1\tuser=a\tdirector_proxy_maybe\tport=143", true],
    ["OK\t1\tuser=a\tproxy\thost=", false],
    ["OK\t1\tuser=a\tproxy\thost", true],
    ["OK\t1\tuser=a\tproxyx", false]
  ]
  for (const [line, expected] of cases) {
    it(JSON.stringify(line), () => expect(needsRoute(fieldsOf(line))).toBe(expected))
  }

  it("works on AuthMaster.decodeReply fields too", () => {
    const r = AuthMasterCodec.decodeReply("PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125")
    if (r._tag !== "Pass") throw new Error("expected PASS")
    expect(needsRoute(r.fields)).toBe(true)
    expect(routeUser(r.fields)).toBe("erin@example.org")
  })
})

describe("routeUser / fields", () => {
  it("destuser wins over user; cut at the master-user separator", () => {
    expect(routeUser(fieldsOf("OK\t1\tuser=dave\tproxy=y"))).toBe("dave")
    expect(routeUser(fieldsOf("OK\t1\tuser=alice*admin\tproxy"))).toBe("alice")
    expect(routeUser(fieldsOf("OK\t1\tuser=x\tdestuser=bob*m*n\tproxy"))).toBe("bob")
    expect(routeUser(fieldsOf("OK\t1\tuser=alice%admin\tproxy"), "%")).toBe("alice")
    expect(routeUser(fieldsOf("OK\t1\tuser=alice*admin\tproxy"), "")).toBe("alice*admin")
    expect(routeUser(fieldsOf("OK\t1\tuser=j\x01tö\tproxy"))).toBe("j\tö")
    expect(routeUser(fieldsOf("OK\t1\tproxy"))).toBeUndefined()
  })

  it("tag, proxy_maybe, last value wins", () => {
    const f = fieldsOf("OK\t1\tuser=a\tdirector_tag=eu\tdirector_proxy_maybe\tport=1\tport=2")
    expect(routeTag(f)).toBe("eu")
    expect(hasProxyMaybe(f)).toBe(true)
    expect(fieldValue(f, "port")).toBe("2")
    expect(fieldValue(f, "director_proxy_maybe")).toBe("")
    expect(fieldValue(f, "host")).toBeUndefined()
  })

  it("parseReplyLine", () => {
    expect(parseReplyLine("OK\t17\tuser=a\tproxy\n")).toEqual({
      command: "OK",
      id: "17",
      fields: [{ key: "user", value: "a" }, { key: "proxy", value: undefined }]
    })
    expect(parseReplyLine("DONE")).toBeUndefined()
  })
})

describe("appendFields", () => {
  it("docs/protocols.md §8 relay rewrite, byte for byte", () => {
    expect(
      appendFields("OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass", [["host", "127.0.0.1"], ["port", "20144"]])
    ).toBe("OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass\thost=127.0.0.1\tport=20144")
    expect(
      appendFields("PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125\n", [["host", "127.0.0.1"], ["port", "20124"]])
    ).toBe("PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125\thost=127.0.0.1\tport=20124\n")
    expect(appendFields("OK\t1\tuser=a\tproxy", [["proxy_refresh", "450"], ["host", "backend1"], ["hostip", "10.0.0.1"]])).toBe(
      "OK\t1\tuser=a\tproxy\tproxy_refresh=450\thost=backend1\thostip=10.0.0.1"
    )
  })

  it("does not re-encode existing text (odd escapes stay as they were)", () => {
    const raw = "OK\t1\tuser=a\x01zb\tpass=\x01\tproxy"
    expect(appendFields(raw, [["host", "h\tx"], ["flag", undefined]])).toBe(raw + "\thost=h\x01tx\tflag")
    expect(() => appendFields(raw, [["", "x"]])).toThrow(RangeError)
  })

  it("bytes variant keeps invalid UTF-8 and the LF", () => {
    const line = Uint8Array.from([...Buffer.from("OK\t1\tuser=a\xff", "latin1"), 0x0a])
    const out = appendFieldsBytes(line, [["host", "127.0.0.1"]])
    expect(Buffer.from(out).toString("latin1")).toBe("OK\t1\tuser=a\xff\thost=127.0.0.1\n")
    expect(Buffer.from(appendFieldsBytes(Buffer.from("PASS\t1\tuser=jörg"), [["port", "1"]])).toString("utf8")).toBe("PASS\t1\tuser=jörg\tport=1")
    expect(Buffer.from(appendFieldsBytes(new Uint8Array(0), [["k", "v"]])).toString()).toBe("\tk=v")
  })

  it("appended fields decode back (property)", () => {
    const key = fc.stringMatching(/^[a-z_]{1,10}$/)
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 60 }).filter((s) => !s.includes("\n")),
        fc.array(fc.tuple(key, fc.option(fc.string({ unit: "binary", maxLength: 20 }), { nil: undefined })), { minLength: 1, maxLength: 5 }),
        (raw, fields) => {
          const out = appendFields(raw, fields)
          expect(out.startsWith(raw)).toBe(true)
          const tail = splitLine(out.slice(raw.length + 1)).map(parseKeyValue)
          expect(tail).toEqual(fields.map(([k, v]) => ({ key: k, value: v })))
          expect(Buffer.from(appendFieldsBytes(Buffer.from(raw), fields)).toString()).toBe(out)
        }
      ),
      { numRuns: 3000 }
    )
  })
})

describe("tempFailLine", () => {
  it("replaces an unroutable proxy reply", () => {
    expect(tempFailLine("1")).toBe("FAIL\t1\tcode=temp_fail\n")
  })
})
