/**
 * Decoders must be total: any string in, a value out, never an exception. The fuzz issue runs the
 * same properties with far more runs; here each gets ≥ 10 000.
 */
import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { decodeClientLine } from "../src/AuthClient.js"
import { AuthClientSession } from "../src/AuthClientSession.js"
import { AuthMasterCodec } from "@doveroute/testkit"
import { needsRoute, parseReplyLine, routeUser } from "../src/ProxyFields.js"
import { decodePlain, LoginMechanism, PlainMechanism } from "../src/Sasl.js"

const RUNS = 10_000

const commands = ["VERSION", "CPID", "AUTH", "CONT", "CANCEL", "PASS", "USER", "LIST", "REQUEST", "CACHE-FLUSH", "OK", "FAIL", "NOTFOUND", "DONE", "SPID", "X"]
const token = fc.oneof(
  fc.constantFrom("0", "1", "2", "4", "4294967295", "4294967296", "-1", "", "PLAIN", "LOGIN", "service=imap", "protocol=lmtp", "resp=", "resp=AGFsaWNlAHNlY3JldA==", "resp=!!", "secured", "lport=99999", "forward_fields=a=b\x01tc", "user=alice*m", "proxy", "\x01", "="),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.nat().map(String)
)
/** Lines that look like protocol lines: a known command plus random fields. */
const protocolish = fc.tuple(fc.constantFrom(...commands), fc.array(token, { maxLength: 8 })).map(([c, a]) => [c, ...a].join("\t"))
const anyLine = fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ maxLength: 200 }), protocolish)

const tags = new Set(["Version", "Cpid", "Auth", "Cont", "Cancel", "Invalid"])

describe("decoders never throw", () => {
  it("AuthClient.decodeClientLine", () => {
    fc.assert(fc.property(anyLine, (l) => {
        expect(tags.has(decodeClientLine(l)._tag)).toBe(true)
      }), { numRuns: RUNS })
  })

  it("AuthClientSession.handleLine over random line sequences", () => {
    const seq = fc.array(fc.oneof(protocolish, anyLine), { maxLength: 12 })
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), seq, (minor, lines) => {
        const s = new AuthClientSession({ mechanisms: ["PLAIN", "LOGIN"] })
        for (const l of [`VERSION\t1\t${minor}`, "CPID\t1", ...lines]) {
          const d = s.handleLine(l)
          if (d._tag === "StartAuth") s.cont(d.request.id, "")
          if (d._tag === "Disconnect") expect(s.closed).toBe(true)
        }
      }),
      { numRuns: RUNS }
    )
  })

  it("AuthMaster.decodeRequest and decodeReply", () => {
    fc.assert(
      fc.property(anyLine, (l) => {
        expect(typeof AuthMasterCodec.decodeRequest(l)._tag).toBe("string")
        expect(typeof AuthMasterCodec.decodeReply(l)._tag).toBe("string")
      }),
      { numRuns: RUNS }
    )
  })

  it("ProxyFields on arbitrary reply lines", () => {
    fc.assert(
      fc.property(anyLine, (l) => {
        const r = parseReplyLine(l)
        if (r !== undefined) {
          needsRoute(r.fields)
          routeUser(r.fields)
        }
      }),
      { numRuns: RUNS }
    )
  })

  it("SASL decoders", () => {
    const b64ish = fc.oneof(fc.string({ maxLength: 60 }), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString("base64")))
    fc.assert(
      fc.property(b64ish, b64ish, b64ish, (a, b, c) => {
        expect(typeof decodePlain(a)._tag).toBe("string")
        const p = new PlainMechanism()
        p.start(undefined)
        p.continue(b)
        const m = new LoginMechanism()
        m.start(a)
        m.continue(b)
        m.continue(c)
      }),
      { numRuns: RUNS }
    )
  })
})
