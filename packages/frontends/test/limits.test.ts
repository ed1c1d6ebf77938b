// Issue 8: per-listener limits and flow control, over real UNIX sockets with a scripted routing
// core — connection limit, per-connection in-flight limit (what a client over it gets, per
// front-end), slow-loris line timeout, idle timeout, a client that does not read its replies, the
// userdb relay's command filter and non-UTF-8 dict user names.
import { describe, expect, it } from "@effect/vitest"
import { AuthServer, DictServer, HttpRoute, LoginRelay, Lookup, UserdbRelay } from "@doveroute/frontends"
import { parseExtraField } from "@doveroute/routing"
import { Duration, Effect, Layer, Logger } from "effect"
import * as net from "node:net"
import * as path from "node:path"
import { FakeUpstream, LineClient, RawClient, scriptedLookup, scopedTmp } from "./helpers.js"

const HELLO = "H3\t2\t0\t\tdirector\n"
const lookupLine = (user: string) => `Lshared/passdb/${user}\t${user}\n`

const quiet = <A, E, R>(eff: Effect.Effect<A, E, R>) => eff.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))

const startDict = (opts: Partial<DictServer.DictServerOptions> = {}) =>
  Effect.gen(function*() {
    const dir = yield* scopedTmp
    const sock = path.join(dir, "dict.sock")
    const lookup = scriptedLookup()
    const app = DictServer.layer({
      path: sock,
      mode: 0o600,
      proxyFlag: "proxy",
      extraFields: [parseExtraField("nopassword")],
      ...opts
    }).pipe(Layer.provide(Layer.succeed(Lookup, lookup.service)))
    yield* quiet(Layer.build(app))
    return { sock, lookup }
  })

const connect = (sock: string) =>
  Effect.acquireRelease(Effect.promise(() => LineClient.connect(sock)), (c) => Effect.sync(() => c.close()))

const waitUntil = (pred: () => boolean, timeoutMs = 3000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    return pred()
  })

describe("connection limit (max_clients)", () => {
  it.scopedLive("the client over the limit is closed at once without a byte; the others keep being served", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict({ maxConnections: 3 })
      const held = [yield* connect(sock), yield* connect(sock), yield* connect(sock)]
      const extra = yield* Effect.promise(() => RawClient.connect(sock))
      expect(yield* Effect.promise(() => extra.waitClosed(2000))).toBe(true)
      expect(extra.bytes().length).toBe(0)
      for (const c of held) c.send(HELLO + lookupLine("alice"))
      for (const c of held) expect((yield* Effect.promise(() => c.waitLines(1)))[0]).toMatch(/^O\{/)
      held[0]!.close()
      yield* Effect.sleep("50 millis")
      const again = yield* connect(sock)
      again.send(HELLO + lookupLine("bob"))
      expect((yield* Effect.promise(() => again.waitLines(1)))[0]).toMatch(/^O\{/)
    }))
})

describe("connection limit on the HTTP endpoint", () => {
  it.scopedLive("the connection over max_clients is closed; the others get answers", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "http.sock")
      const lookup = scriptedLookup()
      yield* quiet(Layer.build(
        HttpRoute.layer({ listen: { _tag: "Unix", path: sock }, proxyFlag: "proxy", extraFields: [], maxConnections: 2 }).pipe(
          Layer.provide(Layer.succeed(Lookup, lookup.service))
        )
      ))
      const a = yield* Effect.promise(() => RawClient.connect(sock))
      const b = yield* Effect.promise(() => RawClient.connect(sock))
      yield* Effect.sleep("50 millis")
      const c = yield* Effect.promise(() => RawClient.connect(sock))
      expect(yield* Effect.promise(() => c.waitClosed(2000))).toBe(true)
      for (const x of [a, b]) x.send("GET /route?user=alice HTTP/1.1\r\nHost: x\r\n\r\n")
      for (const x of [a, b]) {
        const got = yield* Effect.promise(() => x.waitFor((buf) => buf.toString().includes("host=")))
        expect(got.toString()).toMatch(/^HTTP\/1\.1 200 /)
      }
      a.close()
      b.close()
    }))
})

describe("in-flight request limit (max_requests_per_client)", () => {
  it.scopedLive("dict: lookups beyond the limit wait unread (backpressure, no error) and are answered in order", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startDict({ maxRequests: 4 })
      const users = Array.from({ length: 20 }, (_, i) => `u${i}`)
      for (const u of users) lookup.hold(u)
      const c = yield* connect(sock)
      c.send(HELLO + users.map(lookupLine).join(""))
      yield* waitUntil(() => lookup.calls.length >= 4)
      yield* Effect.sleep("100 millis")
      expect(lookup.calls.length).toBe(4)
      for (const u of users) lookup.release(u)
      const lines = yield* Effect.promise(() => c.waitLines(20))
      expect(lines).toHaveLength(20)
      expect(lines.every((l) => l.startsWith("O{"))).toBe(true)
      expect(lookup.calls.map((x) => x.user)).toEqual(users)
      expect(c.closed).toBe(false)
    }))

  it.scopedLive("auth: an AUTH over the limit gets FAIL code=temp_fail at once; the connection and its requests go on", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "auth.sock")
      const lookup = scriptedLookup()
      yield* quiet(Layer.build(
        AuthServer.layer({ path: sock, mode: 0o600, failureDelay: 0, maxRequests: 2 }).pipe(
          Layer.provide(Layer.succeed(Lookup, lookup.service))
        )
      ))
      const c = yield* connect(sock)
      yield* Effect.promise(() => c.waitLines(7))
      c.send("VERSION\t1\t2\nCPID\t42\nAUTH\t1\tPLAIN\tservice=imap\nAUTH\t2\tPLAIN\tservice=imap\nAUTH\t3\tPLAIN\tservice=imap\n")
      const lines = (yield* Effect.promise(() => c.waitLines(10))).slice(7)
      expect(lines).toEqual([
        "CONT\t1\t",
        "CONT\t2\t",
        `FAIL\t3\tcode=temp_fail\treason=${AuthServer.REASON_TOO_MANY_REQUESTS}`
      ])
      c.send(`CONT\t1\t${Buffer.from("\0alice\0pw").toString("base64")}\n`)
      const ok = (yield* Effect.promise(() => c.waitLines(11))).slice(10)
      expect(ok[0]).toMatch(/^OK\t1\tuser=alice\tproxy\thost=/)
      // a slot is free again
      c.send(`AUTH\t4\tPLAIN\tservice=imap\tresp=${Buffer.from("\0bob\0pw").toString("base64")}\n`)
      expect((yield* Effect.promise(() => c.waitLines(12))).slice(11)[0]).toMatch(/^OK\t4\tuser=bob\t/)
    }))
})

describe("relay in-flight limit", () => {
  it.scopedLive("login relay: while max_requests replies wait for routing, the client is not read; then it is", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "relay.sock")
      const upPath = path.join(dir, "up.sock")
      const upstream = yield* Effect.acquireRelease(
        Effect.promise(() => FakeUpstream.listen(upPath, "VERSION\t1\t2\nDONE\n")),
        (u) => Effect.promise(() => u.close())
      )
      const lookup = scriptedLookup()
      lookup.hold("u1")
      lookup.hold("u2")
      yield* quiet(Layer.build(
        LoginRelay.layer({ path: sock, upstream: upPath, mode: 0o600, maxRequests: 2 }).pipe(
          Layer.provide(Layer.succeed(Lookup, lookup.service))
        )
      ))
      const c = yield* Effect.promise(() => RawClient.connect(sock))
      yield* Effect.promise(() => upstream.waitConnections(1))
      upstream.send("OK\t1\tuser=u1\tproxy\nOK\t2\tuser=u2\tproxy\n")
      yield* waitUntil(() => lookup.calls.length === 2)
      yield* Effect.sleep("50 millis")
      c.send("CANCEL\t9\n")
      yield* Effect.sleep("300 millis")
      expect(upstream.bytes().toString()).toBe("") // held back while 2 rewrites are pending
      lookup.release("u1")
      lookup.release("u2")
      expect((yield* Effect.promise(() => upstream.waitBytes(9))).toString()).toBe("CANCEL\t9\n")
      const out = (yield* Effect.promise(() => c.waitFor((b) => (b.toString().match(/host=/g) ?? []).length === 2))).toString()
      expect(out).toMatch(/OK\t1\tuser=u1\tproxy\thost=/)
      c.close()
    }))
})

describe("slow and idle clients", () => {
  it.scopedLive("a line left unfinished longer than line_timeout closes that connection; whole lines keep others open", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict({ lineTimeout: Duration.millis(300) })
      const slow = yield* connect(sock)
      const steady = yield* connect(sock)
      steady.send(HELLO)
      slow.send(HELLO + "Lshared/pass")
      const t0 = Date.now()
      // the steady client sends a whole line every 100 ms for 1.2 s
      let served = 0
      while (Date.now() - t0 < 1200) {
        slow.send("w") // one more byte of the never-ending line
        steady.send(lookupLine(`s${served}`))
        served++
        yield* Effect.promise(() => steady.waitLines(served))
        yield* Effect.sleep("100 millis")
      }
      expect(slow.closed).toBe(true)
      expect(steady.closed).toBe(false)
      expect(steady.lines.filter((l) => l.startsWith("O{"))).toHaveLength(served)
    }))

  it.scopedLive("idle_timeout closes a silent connection, but not one whose lookup is still running", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startDict({ idleTimeout: Duration.millis(200) })
      lookup.hold("busy")
      const idle = yield* connect(sock)
      const busy = yield* connect(sock)
      idle.send(HELLO)
      busy.send(HELLO + lookupLine("busy"))
      expect(yield* Effect.promise(() => idle.waitClosed(2000))).toBe(true)
      yield* Effect.sleep("300 millis")
      expect(busy.closed).toBe(false)
      lookup.release("busy")
      expect((yield* Effect.promise(() => busy.waitLines(1)))[0]).toMatch(/^O\{/)
    }))

  it.scopedLive("defaults: no idle timeout (Dovecot keeps dict and auth connections open)", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict()
      const c = yield* connect(sock)
      c.send(HELLO)
      yield* Effect.sleep("600 millis")
      expect(c.closed).toBe(false)
    }))

  it.scopedLive("a client that never reads its replies stops being read (bounded work), then is served when it reads", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startDict()
      const s = yield* Effect.acquireRelease(
        Effect.async<net.Socket>((resume) => {
          const c = net.connect({ path: sock }, () => resume(Effect.succeed(c)))
        }),
        (c) => Effect.sync(() => c.destroy())
      )
      s.pause() // never reads
      const total = 200_000
      const batch = Array.from({ length: 1000 }, (_, i) => lookupLine(`user${i}`)).join("")
      s.write(HELLO)
      for (let i = 0; i < total / 1000; i++) s.write(batch)
      yield* Effect.sleep("1500 millis")
      const stalled = lookup.calls.length
      yield* Effect.sleep("500 millis")
      expect(lookup.calls.length).toBe(stalled) // the daemon stopped reading
      expect(stalled).toBeLessThan(total)
      let received = 0
      s.on("data", (d: Buffer) => {
        for (const b of d) if (b === 10) received++
      })
      s.resume()
      yield* waitUntil(() => received === total, 20_000)
      expect(received).toBe(total)
    }), 30_000)
})

describe("userdb relay: only the commands auth-userdb serves", () => {
  it.scopedLive("VERSION/USER/PASS/LIST pass; REQUEST, CACHE-FLUSH, CPID never reach Dovecot and close the client", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "relay.sock")
      const upPath = path.join(dir, "up.sock")
      const upstream = yield* Effect.acquireRelease(
        Effect.promise(() => FakeUpstream.listen(upPath, "VERSION\t1\t1\nSPID\t1\n")),
        (u) => Effect.promise(() => u.close())
      )
      const lookup = scriptedLookup()
      yield* quiet(Layer.build(
        UserdbRelay.layer({ path: sock, upstream: upPath, mode: 0o600 }).pipe(Layer.provide(Layer.succeed(Lookup, lookup.service)))
      ))
      const good = "VERSION\t1\t0\nPASS\t1\talice\tservice=lmtp\nUSER\t2\talice\tservice=lmtp\nLIST\t3\tuser=*\n"
      const c = yield* Effect.promise(() => RawClient.connect(sock))
      c.send(good)
      expect((yield* Effect.promise(() => upstream.waitBytes(good.length))).toString()).toBe(good)
      for (const bad of ["REQUEST\t4\t123\t1\t0123456789abcdef0123456789abcdef\n", "CACHE-FLUSH\t5\n", "CPID\t99\n", "\n", "HELLO\n"]) {
        const before = upstream.bytes().length
        const b = yield* Effect.promise(() => RawClient.connect(sock))
        b.send("VERSION\t1\t0\n" + bad + "PASS\t9\tbob\tservice=lmtp\n")
        expect(yield* Effect.promise(() => b.waitClosed(2000)), JSON.stringify(bad)).toBe(true)
        yield* Effect.sleep("50 millis")
        const got = upstream.bytes().subarray(before).toString()
        // the VERSION line before it may or may not have reached Dovecot before the close; nothing after it did
        expect(["", "VERSION\t1\t0\n"], JSON.stringify(bad)).toContain(got)
      }
      expect(c.closed).toBe(false)
    }))
})

describe("userdb relay socket mode", () => {
  it.scopedLive("a world-accessible userdb relay socket is warned about at start (0660 is not)", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const logs: Array<string> = []
      const capture = Logger.make(({ message }) => void logs.push(String(message)))
      for (const [mode, name] of [[0o666, "open.sock"], [0o660, "group.sock"]] as const) {
        yield* Layer.build(
          UserdbRelay.layer({ path: path.join(dir, name), upstream: path.join(dir, "none.sock"), mode }).pipe(
            Layer.provide(Layer.succeed(Lookup, scriptedLookup().service))
          )
        ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      }
      expect(logs.filter((l) => /userdb relay socket is open to every local user/.test(l))).toHaveLength(1)
    }))
})

describe("dict: user names that are not valid UTF-8", () => {
  it.scopedLive("get F and are never routed (a guessed name would be another user)", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startDict()
      const c = yield* Effect.promise(() => RawClient.connect(sock))
      c.send(Buffer.concat([Buffer.from(HELLO + "Lshared/passdb/j"), Buffer.from([0xf6]), Buffer.from("rg\tx\n" + lookupLine("ok"))]))
      const out = (yield* Effect.promise(() => c.waitFor((b) => b.toString().split("\n").length >= 3))).toString()
      expect(out.split("\n")[0]).toBe("Fdoveroute: invalid request: key is not valid UTF-8")
      expect(out.split("\n")[1]).toMatch(/^O\{/)
      expect(lookup.calls.map((x) => x.user)).toEqual(["ok"])
      c.close()
    }))
})
