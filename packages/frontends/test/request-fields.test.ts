// Issue 11: a request field holding a control character (NUL, CR, LF, other C0, DEL) or invalid
// UTF-8 fails that request with a clear reason and never reaches the routing core, on every
// front-end (auth-client, dict, HTTP); auth failures are logged with Dovecot's rip/lip/service keys.
import { describe, expect, it } from "@effect/vitest"
import { Authenticator, AuthServer, DictServer, HttpRoute, Lookup } from "@doveroute/frontends"
import { parseExtraField } from "@doveroute/routing"
import { Effect, Layer, Logger, Redacted } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { RawClient, scopedTmp, scriptedLookup, testResolver } from "./helpers.js"

const b64 = (s: string | Buffer) => (typeof s === "string" ? Buffer.from(s, "utf8") : s).toString("base64")
const plain = (user: string, pass: string) => b64(`\0${user}\0${pass}`)
const V23 = "VERSION\t1\t2\nCPID\t20788\n"
const GOOD = "service=imap\tlip=192.0.2.1\trip=198.51.100.7\tlport=143\trport=50000"

const startAuth = (opts: Partial<AuthServer.AuthServerOptions> = {}) =>
  Effect.gen(function*() {
    const dir = yield* scopedTmp
    const sock = path.join(dir, "auth.sock")
    const lookup = scriptedLookup()
    const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const capture = Logger.make(({ annotations, message }) => {
      logs.push({ message: Array.isArray(message) ? message[0] : message, annotations: Object.fromEntries(annotations) })
    })
    const app = AuthServer.layer({ path: sock, mode: 0o600, failureDelay: 0, resolver: testResolver, ...opts }).pipe(
      Layer.provide(Layer.succeed(Lookup, lookup.service))
    )
    yield* Layer.build(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    const c = yield* Effect.acquireRelease(Effect.promise(() => RawClient.connect(sock)), (c) => Effect.sync(() => c.close()))
    c.send(V23)
    return { c, lookup, logs }
  })

/** The reply line for request `id`, waiting for it. */
const replyFor = (c: RawClient, id: number) =>
  Effect.promise(async () => {
    const re = new RegExp(`^(OK|FAIL)\\t${id}(\\t|$)`)
    const find = (b: Buffer) => b.toString("utf8").split("\n").find((l) => re.test(l))
    return find(await c.waitFor((b) => find(b) !== undefined)) ?? "(no reply)"
  })

const line = (...parts: Array<string | Buffer>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : p)))

describe("auth-client: refused request fields", () => {
  // [what, AUTH line bytes, the field named in the reason, the problem]
  const cases: ReadonlyArray<readonly [string, (id: number) => Buffer, string, string]> = [
    ["raw NUL in service", (id) => line(`AUTH\t${id}\tPLAIN\tservice=im\0ap\tresp=${plain("alice", "pw")}\n`), "service", "control character"],
    ["escaped CR in service", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\x01r\tresp=${plain("alice", "pw")}\n`), "service", "control character"],
    ["escaped LF in rip", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\trip=1.2.3.4\x01n5\tresp=${plain("alice", "pw")}\n`), "rip", "control character"],
    ["ESC (other C0) in lip", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\tlip=\x1b[31m\tresp=${plain("alice", "pw")}\n`), "lip", "control character"],
    ["DEL in session", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\tsession=ab\x7fcd\tresp=${plain("alice", "pw")}\n`), "session", "control character"],
    ["invalid UTF-8 in service", (id) => line(`AUTH\t${id}\tPLAIN\tservice=im`, Buffer.from([0xff]), `ap\tresp=${plain("alice", "pw")}\n`), "service", "not valid UTF-8"],
    ["invalid UTF-8 in rip", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\trip=1.2.3.`, Buffer.from([0xc3, 0x28]), `\tresp=${plain("alice", "pw")}\n`), "rip", "not valid UTF-8"],
    ["ESC in the mechanism", (id) => line(`AUTH\t${id}\tPL\x1bAIN\tservice=imap\tresp=${plain("alice", "pw")}\n`), "mechanism", "control character"],
    ["DEL in resp", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\tresp=AGFsaWNl\x7f\n`), "resp", "control character"],
    ["NUL in a forward_fields entry", (id) => line(`AUTH\t${id}\tPLAIN\tservice=imap\tforward_fields=k=v\x01\x010\tresp=${plain("alice", "pw")}\n`), "forward_fields", "control character"]
  ]
  for (const [what, bytes, field, problem] of cases) {
    it.scopedLive(`${what}: FAIL naming ${field}, never routed, the connection stays usable`, () =>
      Effect.gen(function*() {
        const { c, lookup, logs } = yield* startAuth()
        c.send(bytes(1))
        const reply = yield* replyFor(c, 1)
        expect(reply).toBe(`FAIL\t1\treason=doveroute: invalid request: ${field} ${problem === "control character" ? "contains a control character" : "is not valid UTF-8"}`)
        expect(lookup.calls).toEqual([])
        const logged = logs.find((l) => l.message === "auth failed")
        expect(logged?.annotations["reason"]).toMatch(new RegExp(`^${field} `))
        // the refused value itself never reaches the log
        for (const v of Object.values(logged?.annotations ?? {})) expect(String(v)).not.toMatch(/[\x00-\x1f\x7f\uFFFD]/)
        c.send(`AUTH\t2\tPLAIN\t${GOOD}\tresp=${plain("alice", "pw")}\n`)
        expect(yield* replyFor(c, 2)).toMatch(/^OK\t2\tuser=alice\tproxy\thost=/)
        expect(lookup.calls).toEqual([{ user: "alice", frontend: "auth" }])
      }))
  }

  it.scopedLive("a user name with a control character, DEL or invalid UTF-8 (inside SASL) fails with a reason and is never routed", () =>
    Effect.gen(function*() {
      const { c, lookup } = yield* startAuth()
      c.send(`AUTH\t1\tPLAIN\t${GOOD}\tresp=${plain("ali\x1bce", "pw")}\n`)
      expect(yield* replyFor(c, 1)).toBe("FAIL\t1\treason=doveroute: invalid request: user contains a control character")
      c.send(`AUTH\t2\tPLAIN\t${GOOD}\tresp=${plain("alice\x7f", "pw")}\n`)
      expect(yield* replyFor(c, 2)).toBe("FAIL\t2\treason=doveroute: invalid request: user contains a control character")
      c.send(`AUTH\t3\tPLAIN\t${GOOD}\tresp=${b64(line("\0ali", Buffer.from([0xff]), "ce\0pw"))}\n`)
      expect(yield* replyFor(c, 3)).toBe(`FAIL\t3\treason=${AuthServer.REASON_MALFORMED}`)
      // LOGIN: the user name arrives in a CONT
      // LOGIN: the user name is checked once the exchange is complete
      c.send(`AUTH\t4\tLOGIN\t${GOOD}\tresp=${b64("bob\x03")}\n`)
      yield* Effect.promise(() => c.waitFor((b) => b.toString().includes("CONT\t4\t")))
      c.send(`CONT\t4\t${b64("pw")}\n`)
      expect(yield* replyFor(c, 4)).toBe("FAIL\t4\treason=doveroute: invalid request: user contains a control character")
      expect(lookup.calls).toEqual([])
    }))

  it.scopedLive("auth failed lines carry rip, lip and service (Dovecot's keys) and the reason", () =>
    Effect.gen(function*() {
      const { c, logs, lookup } = yield* startAuth({ authenticator: Authenticator.masterPassword(Redacted.make("master-secret")) })
      c.send(`AUTH\t1\tPLAIN\t${GOOD}\tresp=${plain("alice", "wrong")}\n`)
      expect(yield* replyFor(c, 1)).toBe("FAIL\t1\tuser=alice")
      c.send(`AUTH\t2\tPLAIN\tservice=pop3\tlip=192.0.2.1\trip=2001:db8::7\treal_rip=10.0.0.9\tresp=${plain("bob", "a\tb")}\n`)
      expect(yield* replyFor(c, 2)).toBe("FAIL\t2\tuser=bob")
      const failed = logs.filter((l) => l.message === "auth failed").map((l) => l.annotations)
      expect(failed).toHaveLength(2)
      expect(failed[0]).toMatchObject({ listener: "auth", service: "imap", mechanism: "PLAIN", user: "alice", rip: "198.51.100.7", lip: "192.0.2.1" })
      expect(failed[0]!["reason"]).toBeDefined()
      expect(failed[1]).toMatchObject({ service: "pop3", user: "bob", rip: "2001:db8::7", real_rip: "10.0.0.9", reason: "password contains TAB/CR/LF/0x01" })
      for (const f of failed) expect(JSON.stringify(f)).not.toContain("wrong")
      expect(lookup.calls).toEqual([])
    }))
})

describe("dict: refused request fields", () => {
  const startDict = Effect.gen(function*() {
    const dir = yield* scopedTmp
    const sock = path.join(dir, "dict.sock")
    const lookup = scriptedLookup()
    yield* Layer.build(
      DictServer.layer({ path: sock, mode: 0o600, proxyFlag: "proxy", extraFields: [parseExtraField("nopassword")] }).pipe(
        Layer.provide(Layer.succeed(Lookup, lookup.service))
      )
    ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
    const c = yield* Effect.acquireRelease(Effect.promise(() => RawClient.connect(sock)), (c) => Effect.sync(() => c.close()))
    c.send("H3\t2\t0\t\tdirector\n")
    return { c, lookup }
  })

  it.scopedLive("NUL (escaped), ESC, DEL, CR in the key or the username field: F naming the field, in order, never routed", () =>
    Effect.gen(function*() {
      const { c, lookup } = yield* startDict
      c.send(line(
        "Lshared/passdb/al\x010ice\talice\n",
        "Lshared/passdb/al\x1bice\talice\n",
        "Lshared/passdb/alice\x7f\talice\n",
        "Lshared/passdb/alice\tali\x01rce\n",
        "Lshared/passdb/ok\tok\n"
      ))
      const out = (yield* Effect.promise(() => c.waitFor((b) => b.toString().split("\n").length > 5))).toString().split("\n")
      expect(out.slice(0, 4)).toEqual([
        "Fdoveroute: invalid request: key contains a control character",
        "Fdoveroute: invalid request: key contains a control character",
        "Fdoveroute: invalid request: key contains a control character",
        "Fdoveroute: invalid request: username contains a control character"
      ])
      expect(out[4]).toMatch(/^O\{/)
      expect(lookup.calls.map((x) => x.user)).toEqual(["ok"])
    }))
})

describe("HTTP route: refused request fields", () => {
  // a TCP listener needs a shared token; the right one is sent, so only the fields are refused
  const TOKEN = "request-fields-token"
  const get = (port: number, q: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: `/route?${q}`, agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (d: string) => (body += d))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on("error", reject)
      req.end()
    })

  it.scopedLive("control characters in user, protocol or any other parameter, and invalid UTF-8: 400, never routed", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() =>
        new Promise<number>((r) => {
          const s = net.createServer().listen(0, "127.0.0.1", () => {
            const p = (s.address() as net.AddressInfo).port
            s.close(() => r(p))
          })
        })
      )
      const lookup = scriptedLookup()
      yield* Layer.build(
        HttpRoute.layer({ listen: { _tag: "Tcp", host: "127.0.0.1", port }, proxyFlag: "proxy", extraFields: [], token: Redacted.make(TOKEN) }).pipe(
          Layer.provide(Layer.succeed(Lookup, lookup.service))
        )
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["user=al%00ice", "bad request: user contains a control character"],
        ["user=al%1bice", "bad request: user contains a control character"],
        ["user=alice%7f", "bad request: user contains a control character"],
        ["user=alice&protocol=im%0dap", "bad request: protocol contains a control character"],
        ["user=alice&session=x%0ay", "bad request: session contains a control character"],
        ["user=al%ffice", "bad request: the query is not valid UTF-8"]
      ]
      for (const [q, body] of cases) {
        const r = yield* Effect.promise(() => get(port, q))
        expect(r.status, q).toBe(400)
        expect(r.body.trim(), q).toBe(body)
      }
      expect(lookup.calls).toEqual([])
      expect((yield* Effect.promise(() => get(port, "user=alice&protocol=imap"))).status).toBe(200)
      expect(lookup.calls.map((x) => x.user)).toEqual(["alice"])
    }))
})
