// Login relay and userdb relay over real UNIX sockets, with a fake Dovecot auth socket upstream
// that replays lines captured from Dovecot 2.3.19 / 2.4.1 (docs/protocols.md §5, §8).
import { describe, expect, it } from "@effect/vitest"
import { LoginRelay, Lookup, UserdbRelay } from "@doveroute/frontends"
import { Effect, Layer, Logger } from "effect"
import * as path from "node:path"
import { B2, B3, B4, FakeUpstream, RawClient, scriptedLookup, scopedTmp, testResolver } from "./helpers.js"

type RelayKind = "login" | "userdb"

const HANDSHAKE_24 =
  "VERSION\t1\t3\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t3934\nCUID\t2\nCOOKIE\t669513f30ad082a7f790a4322d8b6352\nDONE\n"

/** Start a relay in front of a fake upstream; returns everything a test needs. */
const startRelay = (
  kind: RelayKind,
  opts: { readonly routes?: Parameters<typeof scriptedLookup>[0]; readonly greeting?: string; readonly noUpstream?: boolean } = {}
) =>
  Effect.gen(function*() {
    const dir = yield* scopedTmp
    const sock = path.join(dir, "relay.sock")
    const upPath = path.join(dir, "upstream.sock")
    const upstream = opts.noUpstream === true
      ? undefined
      : yield* Effect.acquireRelease(Effect.promise(() => FakeUpstream.listen(upPath, opts.greeting)), (u) => Effect.promise(() => u.close()))
    const lookup = scriptedLookup(opts.routes ?? {})
    const options = {
      path: sock,
      upstream: upPath,
      mode: 0o666,
      resolver: testResolver,
      ports: { fallback: undefined, byProtocol: new Map([["imap", 25143], ["pop3", 25110], ["lmtp", 24]]) }
    }
    const relay = kind === "login" ? LoginRelay.layer(options) : UserdbRelay.layer(options)
    yield* Layer.build(relay.pipe(Layer.provide(Layer.succeed(Lookup, lookup.service)))).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none))
    )
    return { sock, upstream: upstream!, lookup }
  })

const connectClient = (sock: string) =>
  Effect.acquireRelease(Effect.promise(() => RawClient.connect(sock)), (c) => Effect.sync(() => c.close()))

const waitText = (c: RawClient, pred: (s: string) => boolean) =>
  Effect.promise(() => c.waitFor((b) => pred(b.toString("utf8")))).pipe(Effect.map((b) => b.toString("utf8")))

describe("login relay", () => {
  it.scopedLive("bytes pass verbatim both ways (invalid UTF-8 included); only proxy OKs without host change", () =>
    Effect.gen(function*() {
      const { sock, upstream, lookup } = yield* startRelay("login", { greeting: HANDSHAKE_24 })
      const c = yield* connectClient(sock)
      // client → Dovecot: split at odd places, with bytes that are not UTF-8
      const fromClient = Buffer.concat([
        Buffer.from("VERSION\t1\t3\nCPID\t4030\nAUTH\t1\tPLAIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=EE7+gGphAJR/AAAB\t"),
        Buffer.from([0xff, 0xfe, 0x80]),
        Buffer.from("\tlip=127.0.0.1\trip=127.0.0.1\tlport=20143\trport=37888\tresp=AGRhdmUAcGFzcw==\n")
      ])
      c.send(fromClient.subarray(0, 30))
      yield* Effect.sleep("10 millis")
      c.send(fromClient.subarray(30))
      const got = yield* Effect.promise(() => upstream.waitBytes(fromClient.length))
      expect(got.equals(fromClient)).toBe(true)

      const lines = [
        "OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass", // needs a route
        "OK\t2\tuser=erin\tproxy\thost=10.0.0.1\tport=143\tpass=x", // has a host: unchanged
        "OK\t3\tuser=mallory", // local login: unchanged
        "FAIL\t4\tuser=mallory", // failure: unchanged, never routed
        "CONT\t5\tVXNlcm5hbWU6",
        "OK\t6\tuser=frank\tnologin\treason=go away"
      ]
      const weird = Buffer.concat([Buffer.from("XYZ\t"), Buffer.from([0xc3, 0x28, 0x01, 0x74]), Buffer.from("\n")])
      upstream.send(lines.join("\n") + "\n")
      upstream.send(weird)
      const expected = Buffer.concat([
        Buffer.from(HANDSHAKE_24),
        Buffer.from(lines.slice(1).join("\n") + "\n"),
        weird,
        Buffer.from("OK\t1\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20143\tpass=pass\thost=backend1.test\thostip=127.0.0.2\tport=25143\n")
      ])
      const out = yield* Effect.promise(() => c.waitFor((b) => b.length >= expected.length))
      expect(out.toString("latin1")).toBe(expected.toString("latin1"))
      expect(lookup.calls).toEqual([{ user: "dave", frontend: "login-relay" }])
    }))

  it.scopedLive("routing failure and unresolvable hosts become FAIL <id> code=temp_fail", () =>
    Effect.gen(function*() {
      const { sock, upstream } = yield* startRelay("login", { routes: { broken: "fail", far: B4 } })
      const c = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(1))
      upstream.send("OK\t1\tuser=broken\tproxy\tpass=x\nOK\t2\tuser=far\tproxy\tpass=x\n")
      const text = yield* waitText(c, (s) => s.split("\n").length > 2)
      expect(text.split("\n").sort()).toEqual(["", "FAIL\t1\tcode=temp_fail", "FAIL\t2\tcode=temp_fail"])
    }))

  it.scopedLive("destuser wins over user; the master-user suffix is cut; host names get hostip", () =>
    Effect.gen(function*() {
      const { sock, upstream, lookup } = yield* startRelay("login", { routes: { bob: B3, alice: B2 } })
      const c = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(1))
      upstream.send("OK\t1\tuser=alice*admin\tproxy\tpass=x\nOK\t2\tuser=carl\tdestuser=bob\tproxy\tpass=x\n")
      const text = yield* waitText(c, (s) => s.split("\n").length > 2)
      expect(text.split("\n").sort()).toEqual([
        "",
        "OK\t1\tuser=alice*admin\tproxy\tpass=x\thost=127.0.0.3",
        "OK\t2\tuser=carl\tdestuser=bob\tproxy\tpass=x\thost=named.test\thostip=127.0.0.9"
      ])
      expect(lookup.calls.map((x) => x.user).sort()).toEqual(["alice", "bob"])
    }))

  it.scopedLive("port comes from the AUTH line's protocol; a port already in the reply is kept", () =>
    Effect.gen(function*() {
      const { sock, upstream } = yield* startRelay("login")
      const c = yield* connectClient(sock)
      c.send("VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=pop3\tlip=127.0.0.1\tlport=110\nAUTH\t2\tPLAIN\tservice=imap\n")
      yield* Effect.promise(() => upstream.waitBytes(60))
      upstream.send("OK\t1\tuser=a\tproxy\tpass=x\nOK\t2\tuser=b\tproxy\tport=1143\tpass=x\nOK\t3\tuser=c\tproxy\tpass=x\n")
      const text = yield* waitText(c, (s) => s.split("\n").length > 3)
      expect(text.split("\n").sort()).toEqual([
        "",
        "OK\t1\tuser=a\tproxy\tpass=x\thost=backend1.test\thostip=127.0.0.2\tport=25110",
        "OK\t2\tuser=b\tproxy\tport=1143\tpass=x\thost=backend1.test\thostip=127.0.0.2",
        "OK\t3\tuser=c\tproxy\tpass=x\thost=backend1.test\thostip=127.0.0.2" // unknown request: no protocol, no port
      ])
    }))

  it.scopedLive("the backend being this server (lip/lport) becomes temp_fail; proxy_maybe alone gets a bare proxy", () =>
    Effect.gen(function*() {
      const { sock, upstream } = yield* startRelay("login")
      const c = yield* connectClient(sock)
      c.send("VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=imap\n")
      yield* Effect.promise(() => upstream.waitBytes(40))
      upstream.send(
        "OK\t1\tuser=a\tproxy\tlip=127.0.0.2\tlport=25143\tpass=x\n" +
          "OK\t2\tuser=b\tproxy\tlip=127.0.0.2\tlport=9\tport=10\tpass=x\n" +
          "OK\t3\tuser=c\tdirector_proxy_maybe\tpass=x\n"
      )
      const text = yield* waitText(c, (s) => s.split("\n").length > 3)
      expect(text.split("\n").sort()).toEqual([
        "",
        "FAIL\t1\tcode=temp_fail",
        "OK\t2\tuser=b\tproxy\tlip=127.0.0.2\tlport=9\tport=10\tpass=x\thost=backend1.test\thostip=127.0.0.2",
        "OK\t3\tuser=c\tdirector_proxy_maybe\tpass=x\tproxy\thost=backend1.test\thostip=127.0.0.2"
      ])
    }))

  it.scopedLive("a reply waiting for routing does not hold back other lines (answers are matched by id)", () =>
    Effect.gen(function*() {
      const { sock, upstream, lookup } = yield* startRelay("login")
      lookup.hold("slow")
      const c = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(1))
      upstream.send("OK\t1\tuser=slow\tproxy\tpass=x\nFAIL\t2\tuser=z\nCONT\t3\t\n")
      const early = yield* waitText(c, (s) => s.includes("CONT\t3"))
      expect(early).toBe("FAIL\t2\tuser=z\nCONT\t3\t\n")
      lookup.release("slow")
      const all = yield* waitText(c, (s) => s.includes("OK\t1"))
      expect(all).toBe(early + "OK\t1\tuser=slow\tproxy\tpass=x\thost=backend1.test\thostip=127.0.0.2\n")
    }))

  it.scopedLive("Dovecot unreachable: the client is closed; Dovecot closing: pending routes are written first", () =>
    Effect.gen(function*() {
      const down = yield* startRelay("login", { noUpstream: true })
      const c1 = yield* connectClient(down.sock)
      expect(yield* Effect.promise(() => c1.waitClosed())).toBe(true)

      const { sock, upstream, lookup } = yield* startRelay("login")
      lookup.hold("slow")
      const c2 = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(1))
      upstream.send("OK\t9\tuser=slow\tproxy\tpass=x\n")
      yield* Effect.promise(async () => {
        while (lookup.calls.length < 1) await new Promise((r) => setTimeout(r, 5))
      })
      upstream.sockets[0]!.end()
      yield* Effect.sleep("50 millis")
      expect(c2.closed).toBe(false)
      lookup.release("slow")
      expect(yield* Effect.promise(() => c2.waitClosed())).toBe(true)
      expect(c2.text()).toBe("OK\t9\tuser=slow\tproxy\tpass=x\thost=backend1.test\thostip=127.0.0.2\n")
      // and the client closing closes the Dovecot side
      const c3 = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(2))
      const up3 = upstream.sockets[1]!
      c3.close()
      yield* Effect.promise(async () => {
        for (let i = 0; i < 200 && !up3.destroyed && up3.readable; i++) await new Promise((r) => setTimeout(r, 5))
      })
      expect(up3.readable).toBe(false)
    }))
})

describe("userdb relay", () => {
  it.scopedLive("2.4.1 LMTP capture: PASS proxy replies get host and the lmtp port; order is kept", () =>
    Effect.gen(function*() {
      const { sock, upstream, lookup } = yield* startRelay("userdb", { greeting: "VERSION\t1\t3\nSPID\t3934\n", routes: { dave: B2 } })
      const c = yield* connectClient(sock)
      const req =
        "VERSION\t1\t3\nPASS\t1\terin@example.org\tprotocol=lmtp\tlip=127.0.0.1\tlport=20125\trip=127.0.0.1\trport=49412\n" +
        "PASS\t2\tdave\tprotocol=lmtp\tlip=127.0.0.1\tlport=20125\trip=127.0.0.1\trport=49412\n" +
        "USER\t3\tdave\tprotocol=lmtp\n"
      c.send(req)
      expect((yield* Effect.promise(() => upstream.waitBytes(req.length))).toString()).toBe(req)
      lookup.hold("erin@example.org")
      upstream.send(
        "PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125\n" +
          "PASS\t2\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20125\n" +
          "USER\t3\tdave\tproxy\tuid=5000\n" +
          "NOTFOUND\t4\n"
      )
      yield* Effect.sleep("50 millis")
      expect(c.text()).toBe("VERSION\t1\t3\nSPID\t3934\n") // PASS 1 holds back everything after it
      lookup.release("erin@example.org")
      const text = yield* waitText(c, (s) => s.includes("NOTFOUND"))
      expect(text).toBe(
        "VERSION\t1\t3\nSPID\t3934\n" +
          "PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125\thost=backend1.test\thostip=127.0.0.2\tport=24\n" +
          "PASS\t2\tuser=dave\tproxy=y\tlip=127.0.0.1\tlport=20125\thost=127.0.0.3\tport=24\n" +
          "USER\t3\tdave\tproxy\tuid=5000\n" +
          "NOTFOUND\t4\n"
      )
      expect(lookup.calls.map((x) => [x.user, x.frontend])).toEqual([["erin@example.org", "userdb-relay"], ["dave", "userdb-relay"]])
    }))

  it.scopedLive("PASS without proxy, with a host, FAIL and NOTFOUND pass unchanged; routing failure is FAIL code=temp_fail", () =>
    Effect.gen(function*() {
      const { sock, upstream, lookup } = yield* startRelay("userdb", { routes: { broken: "fail" } })
      const c = yield* connectClient(sock)
      yield* Effect.promise(() => upstream.waitConnections(1))
      const same = "PASS\t1\tuser=a\nPASS\t2\tuser=b\tproxy\thost=10.1.1.1\nFAIL\t3\treason=x\nNOTFOUND\t4\n"
      upstream.send(same + "PASS\t5\tuser=broken\tproxy\n")
      const text = yield* waitText(c, (s) => s.includes("\t5\t"))
      expect(text).toBe(same + "FAIL\t5\tcode=temp_fail\n")
      expect(lookup.calls.map((x) => x.user)).toEqual(["broken"])
    }))
})
