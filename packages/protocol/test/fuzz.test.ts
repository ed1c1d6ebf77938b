/**
 * Issue 8, codec level: ≥ 1 000 000 generated and mutated hostile lines per codec (fast-check,
 * `@doveroute/testkit` Hostile arbitraries: invalid base64, unknown mechanisms, duplicate and huge
 * ids, missing fields, tab-escape sequences, NUL and non-UTF-8 bytes, lines around 1/8/16/64 KiB,
 * commands before the handshake). Each run feeds a batch of lines, so a million lines cost a few
 * seconds per codec. Beyond "never throws", every property checks what the daemon relies on.
 *
 * `FUZZ_LINES` (default 1 000 000) scales every codec; `FUZZ_SEED` replays a failing run.
 */
import { AuthMasterCodec, Hostile } from "@doveroute/testkit"
import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { AUTH_CLIENT_MAX_LINE, decodeClientLine, encodeFail } from "../src/AuthClient.js"
import { AuthClientSession } from "../src/AuthClientSession.js"
import { USERDB_COMMANDS, userdbRefusal } from "../src/AuthMaster.js"
import { decodeRequest as decodeDict, encodeFailure, encodeFound } from "../src/Dict.js"
import { LineSplitter, LineTooLongError } from "../src/LineSplitter.js"
import { appendFieldsBytes, needsRoute, parseReplyLine, routeUser, tempFailLine } from "../src/ProxyFields.js"
import { createMechanism, decodePlain, isValidBase64 } from "../src/Sasl.js"
import { escape, joinLine, splitLine, unescape } from "../src/TabEscape.js"

const LINES = Number(process.env["FUZZ_LINES"] ?? 1_000_000)
/** Each run: BASE fast-check lines, each expanded into EXPAND cheap mutants (the line itself first). */
const BASE = 10
const EXPAND = 5
const BATCH = BASE * EXPAND
const RUNS = Math.ceil(LINES / BATCH)
const SEED = process.env["FUZZ_SEED"] !== undefined ? { seed: Number(process.env["FUZZ_SEED"]) } : {}
const TIMEOUT = 120_000

/** BATCH hostile lines: BASE generated/mutated by fast-check, each with EXPAND - 1 derived mutants. */
const batchOf = (arb: fc.Arbitrary<string>): fc.Arbitrary<Array<string>> =>
  fc.array(fc.tuple(arb, fc.integer()), { minLength: BASE, maxLength: BASE })
    .map((pairs) => pairs.flatMap(([line, seed]) => Hostile.expand(line, seed, EXPAND)))

/** A cheap assertion for hot loops (vitest's expect costs microseconds per call). */
const must = (ok: boolean, what: string, line: string): void => {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(line.length > 300 ? line.slice(0, 300) + "…" : line)}`)
}

/**
 * `fc.assert` in slices of `runs`, yielding to the event loop between slices (the test worker
 * must keep answering vitest). Each slice has its own seed (FUZZ_SEED + slice when replaying).
 */
const assertSliced = async <T extends [unknown, ...Array<unknown>]>(
  arbs: { [K in keyof T]: fc.Arbitrary<T[K]> },
  predicate: (...args: T) => void,
  runs: number
): Promise<void> => {
  const SLICE = 2000
  for (let done = 0, slice = 0; done < runs; done += SLICE, slice++) {
    fc.assert(fc.property(...arbs, predicate), {
      numRuns: Math.min(SLICE, runs - done),
      ...(SEED.seed !== undefined ? { seed: SEED.seed + slice } : {})
    })
    await new Promise((r) => setImmediate(r))
  }
}

/** Run `check` over ≥ LINES lines from `arb`; resolves with the number of lines checked. */
const fuzzLines = async (arb: fc.Arbitrary<string>, check: (line: string) => void): Promise<number> => {
  let n = 0
  await assertSliced<[Array<string>]>([batchOf(arb)], (lines) => {
    for (const l of lines) {
      check(l)
      n++
    }
  }, RUNS)
  return n
}

const ONE_LINE = /^[^\n]*\n$/

describe(`codec fuzz: ${LINES} hostile lines per codec`, () => {
  it("TabEscape: escape/unescape round-trips, escaped text is TAB/LF/CR/NUL-free, unescape is total", async () => {
    const n = await fuzzLines(Hostile.authClientLine, (raw) => {
      const s = Hostile.asText(raw)
      const e = escape(s)
      must(!/[\t\n\r\x00]/.test(e), "escaped text has a raw TAB/LF/CR/NUL", raw)
      must(unescape(e) === s, "unescape(escape(s)) !== s", raw)
      // hostile (already escaped-looking) input: total, never longer than the input
      must(unescape(s).length <= s.length, "unescape grew the text", raw)
      const fields = s.split("\x0b")
      const back = splitLine(joinLine(fields))
      must(back.length === fields.length && back.every((f, i) => f === fields[i]), "splitLine(joinLine(fields)) differs", raw)
    })
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("LineSplitter: byte streams cut anywhere give exactly the LF-separated lines, or LineTooLongError", async () => {
    // a stream = hostile lines joined by LF, cut into chunks at random offsets; small limits too
    let lines = 0
    await assertSliced<[Array<string>, Array<number>, number]>(
      [
        batchOf(Hostile.dictLine),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(64, 1024, AUTH_CLIENT_MAX_LINE, 65536)
      ],
        (ls, cuts, max) => {
          const bytes = Hostile.toBytes(ls.join("\n") + "\n")
          const offsets = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
          const splitter = new LineSplitter(max)
          const got: Array<string> = []
          let tooLong = false
          let prev = 0
          try {
            for (const off of [...offsets, bytes.length]) {
              splitter.push(bytes.subarray(prev, off), (l) => got.push(l))
              prev = off
            }
          } catch (e) {
            must(e instanceof LineTooLongError, `unexpected ${String(e)}`, ls.join("\n"))
            tooLong = true
          }
          const want = ls.map((l) => Hostile.toBytes(l))
          const firstLong = want.findIndex((b) => b.length > max)
          const expected = (firstLong === -1 ? want : want.slice(0, firstLong)).map((b) => b.toString("utf8"))
          must(tooLong === (firstLong !== -1), "LineTooLongError iff a line is over the limit", ls.join("\n"))
          must(got.length === expected.length && got.every((l, i) => l === expected[i]), "lines differ", ls.join("\n"))
          lines += ls.length
        },
      RUNS
    )
    expect(lines).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("Dict: decodeRequest is total; lookups have a key; encoded replies are one escaped line", async () => {
    const tags = new Set(["Hello", "Lookup", "Unsupported", "Invalid"])
    const n = await fuzzLines(Hostile.dictLine, (raw) => {
      const line = Hostile.asText(raw)
      const r = decodeDict(line)
      must(tags.has(r._tag), "unknown tag", raw)
      if (r._tag === "Lookup") must(r.key.length > 0, "lookup without key", raw)
      if (r._tag === "Hello") must(Number.isInteger(r.major) && Number.isInteger(r.minor), "hello numbers", raw)
      // whatever text ends up in a reply stays one line and decodes back
      const found = encodeFound(line)
      must(ONE_LINE.test(found) && unescape(found.slice(1, -1)) === line, "O reply not one line / not reversible", raw)
      must(ONE_LINE.test(encodeFailure(line)), "F reply not one line", raw)
    })
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("AuthClient: decodeClientLine is total and only yields well-formed requests", async () => {
    const n = await fuzzLines(Hostile.authClientLine, (raw) => {
      const m = decodeClientLine(Hostile.asText(raw))
      switch (m._tag) {
        case "Auth":
          must(m.id >= 1 && m.id <= 0xffffffff && m.service.length > 0 && m.mech.length > 0, "bad AUTH accepted", raw)
          break
        case "Cont":
        case "Cancel":
          must(m.id >= 1 && m.id <= 0xffffffff, "bad id accepted", raw)
          break
        case "Cpid":
          must(m.pid > 0, "CPID 0 accepted", raw)
          break
        case "Version":
        case "Invalid":
          break
        default:
          must(false, `unexpected tag ${(m as { _tag: string })._tag}`, raw)
      }
      if (Hostile.toBytes(raw).length > AUTH_CLIENT_MAX_LINE) must(m._tag === "Invalid", "over-long line accepted", raw)
    })
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("AuthClientSession: hostile sequences never start a request before the handshake, never reuse a pending id, replies are one line", async () => {
    let lines = 0
    const handshake = fc.constantFrom<ReadonlyArray<string>>([], ["VERSION\t1\t2"], ["VERSION\t1\t2", "CPID\t1"], ["VERSION\t1\t4", "CPID\t9"], ["CPID\t1"], ["VERSION\t2\t0", "CPID\t1"])
    await assertSliced<[ReadonlyArray<string>, Array<string>, Array<boolean>]>(
      [handshake, batchOf(Hostile.authClientLine), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 })],
      (hs, ls, finishes) => {
        const s = new AuthClientSession({ mechanisms: ["PLAIN", "LOGIN"] })
        let disconnected = false
        let i = 0
        for (const line of [...hs, ...ls.map(Hostile.asText)]) {
          const wasReady = s.ready
          const pendingBefore = s.pendingCount
          const d = s.handleLine(line)
          if (disconnected) must(d._tag === "Disconnect", "accepted a line after a disconnect", line)
          switch (d._tag) {
            case "Disconnect":
              disconnected = true
              must(s.closed, "disconnect without closing", line)
              break
            case "StartAuth": {
              must(wasReady, "request before the handshake", line)
              must(d.request.mech === "PLAIN" || d.request.mech === "LOGIN", "unknown mechanism started", line)
              must(s.pendingCount === pendingBefore + 1, "id reused", line)
              must(d.request.resp === undefined || isValidBase64(d.request.resp), "bad base64 started", line)
              // the server either finishes the request or asks for more
              if (finishes[i % finishes.length] === true) must(s.finish(d.request.id), "finish", line)
              else must(s.cont(d.request.id, "") === `CONT\t${d.request.id}\t\n`, "cont", line)
              break
            }
            case "Continue":
              must(wasReady && isValidBase64(d.data), "bad continuation accepted", line)
              s.finish(d.id)
              break
            case "Reply":
              must(wasReady && ONE_LINE.test(d.line) && d.line.startsWith("FAIL\t"), "bad reply", line)
              break
            case "Abort":
              must(wasReady && !s.has(d.id), "abort left the id", line)
              if (d.line !== undefined) must(ONE_LINE.test(d.line), "abort reply not one line", line)
              break
            case "Ignore":
              break
          }
          i++
        }
        lines += ls.length
      },
      RUNS
    )
    expect(lines).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  const { decodeReply, decodeRequest: decodeMasterRequest } = AuthMasterCodec
  it("AuthMaster: requests and replies decode totally; ids are uint32; the userdb filter passes only VERSION/USER/PASS/LIST", async () => {
    const n = await fuzzLines(fc.oneof(Hostile.authMasterLine, Hostile.replyLine), (raw) => {
      const line = Hostile.asText(raw)
      const r = decodeMasterRequest(line)
      if ("id" in r) must(r.id >= 0 && r.id <= 0xffffffff, "id out of range", raw)
      if (r._tag === "Pass" || r._tag === "User") must(r.user.length > 0 && r.service.length > 0, "lookup without user/service", raw)
      // the relay's filter looks at the raw command (as Dovecot's userdb socket does) and never
      // passes a master-only request
      const passed = userdbRefusal(Buffer.from(line, "utf8")) === undefined
      must(passed === USERDB_COMMANDS.has(line.split("\t")[0]!), "userdb filter", raw)
      if (r._tag === "Request" || r._tag === "CacheFlush" || r._tag === "Cpid") must(!passed, "userdb filter passed a master-only command", raw)
      must(typeof decodeReply(line)._tag === "string", "reply decode", raw)
    })
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("SASL: PLAIN/LOGIN steps on hostile base64 never throw; credentials never hold NUL; bad base64 is invalid_base64", async () => {
    const b64 = fc.oneof(
      fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString("base64")),
      fc.constantFrom("", "=", "==", "AA", "AA=", "A===", "!!!!", "AGFsaWNlAHNlY3JldA==", "YWxpY2U=", "AAAA", "AGEAYgBj", "8J+Ygg==", "/w=="),
      Hostile.authClientLine.map(Hostile.asText)
    )
    let n = 0
    const sasl = fc.array(fc.tuple(fc.constantFrom("PLAIN", "LOGIN", "plain"), fc.option(b64), b64, b64), { minLength: 17, maxLength: 17 })
    await assertSliced<[Array<[string, string | null, string, string]>]>(
      [sasl],
      (cases) => {
        for (const [mechName, initial, c1, c2] of cases) {
          const mech = createMechanism(mechName)!
          for (const step of [mech.start(initial ?? undefined), mech.continue(c1), mech.continue(c2)]) {
            if (step._tag === "Credentials") {
              must(step.authcid.length > 0, "empty authcid", c1)
              must(!/\x00/.test(step.authcid + step.authzid + step.password), "NUL in credentials", c1)
            }
            if (step._tag === "Challenge") must(isValidBase64(step.challenge), "challenge not base64", c1)
            n++
          }
          const p = decodePlain(c1)
          if (!isValidBase64(c1)) must(p._tag === "SaslError" && p.reason === "invalid_base64", "bad base64 not invalid_base64", c1)
        }
      },
      Math.ceil(LINES / 51)
    )
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)

  it("ProxyFields (relay rewrite): hostile reply lines parse totally; appending keeps the original bytes; temp_fail is one line", async () => {
    const n = await fuzzLines(Hostile.replyLine, (raw) => {
      const text = Hostile.asText(raw)
      const r = parseReplyLine(text)
      if (r !== undefined) {
        needsRoute(r.fields)
        routeUser(r.fields)
        must(ONE_LINE.test(tempFailLine(r.id)), "temp_fail line", raw)
        must(ONE_LINE.test(encodeFail(1, { user: r.id, code: "temp_fail" })), "FAIL line", raw)
      }
      const bytes = Buffer.concat([Hostile.toBytes(raw), Buffer.from("\n")])
      const out = Buffer.from(appendFieldsBytes(bytes, [["host", text], ["hostip", "127.0.0.2"], ["proxy", undefined]]))
      must(out.subarray(0, bytes.length - 1).equals(bytes.subarray(0, -1)), "original bytes changed", raw)
      must(out.indexOf(10) === out.length - 1, "appended line is not one line", raw)
    })
    expect(n).toBeGreaterThanOrEqual(LINES)
  }, TIMEOUT)
})
