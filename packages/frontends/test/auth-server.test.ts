// The standalone auth-client server over real UNIX sockets, driven with the wire lines captured
// from Dovecot 2.3.19 / 2.4.1 login processes, doveadm, Postfix and Exim (docs/protocols.md §2).
import { describe, expect, it } from "@effect/vitest"
import { Authenticator, AuthServer, Lookup } from "@doveroute/frontends"
import { AuthClient } from "@doveroute/protocol"
import { Router } from "@doveroute/routing"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import { Duration, Effect, Layer, Logger, Redacted } from "effect"
import type * as net from "node:net"
import * as path from "node:path"
import * as util from "node:util"
import { B1, B2, B3, B4, backend, LineClient, scriptedLookup, scopedTmp, testResolver } from "./helpers.js"

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")
const plain = (user: string, pass: string, authzid = "") => b64(`${authzid}\0${user}\0${pass}`)

const HANDSHAKE_LINES = 7
const V23 = "VERSION\t1\t2\nCPID\t20788\n"
const V24 = "VERSION\t1\t3\nCPID\t4030\n"

type StartOptions = Partial<Omit<AuthServer.AuthServerOptions, "path">> & {
  readonly routes?: Parameters<typeof scriptedLookup>[0]
  /** The scripted routing core also answers at once (as the routing table does). */
  readonly fromMemory?: boolean
}

/** Start the auth server on a fresh socket with a scripted routing core; logs are captured. */
const startAuth = (opts: StartOptions = {}) =>
  Effect.gen(function*() {
    const dir = yield* scopedTmp
    const sock = path.join(dir, "auth.sock")
    const lookup = scriptedLookup(opts.routes ?? {}, undefined, { fromMemory: opts.fromMemory === true })
    const logs: Array<string> = []
    const capture = Logger.make(({ annotations, message }) => {
      logs.push(`${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(annotations))}`)
    })
    const { fromMemory: _m, routes: _r, ...serverOpts } = opts
    const app = AuthServer.layer({
      path: sock,
      mode: 0o666,
      failureDelay: 0,
      resolver: testResolver,
      ports: { fallback: 25143, byProtocol: new Map([["pop3", 25110]]) },
      ...serverOpts
    }).pipe(Layer.provide(Layer.succeed(Lookup, lookup.service)))
    yield* Layer.build(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    return { sock, lookup, logs }
  })

/** Connect and consume the handshake. */
const connect = (sock: string) =>
  Effect.promise(async () => {
    const c = await LineClient.connect(sock)
    await c.waitLines(HANDSHAKE_LINES)
    return c
  })

/** Lines after the handshake, waiting until `n` of them arrived. */
const after = (c: LineClient, n: number, timeoutMs?: number) =>
  Effect.promise(() => c.waitLines(HANDSHAKE_LINES + n, timeoutMs)).pipe(Effect.map((l) => l.slice(HANDSHAKE_LINES)))

describe("standalone auth-client server: handshake and protocol rules", () => {
  it.scopedLive("sends the whole handshake at once in 2.3 order, before the client writes anything", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      const a = yield* Effect.promise(() => LineClient.connect(sock))
      const b = yield* Effect.promise(() => LineClient.connect(sock))
      const la = yield* Effect.promise(() => a.waitLines(HANDSHAKE_LINES))
      const lb = yield* Effect.promise(() => b.waitLines(HANDSHAKE_LINES))
      expect(la.slice(0, 3)).toEqual(["VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext"])
      expect(la[3]).toBe(`SPID\t${process.pid}`)
      expect(la[4]).toMatch(/^CUID\t\d+$/)
      expect(la[5]).toMatch(/^COOKIE\t[0-9a-f]{32}$/)
      expect(la[6]).toBe("DONE")
      // a connection counter and a fresh cookie per connection
      expect(Number(lb[4]!.split("\t")[1])).toBe(Number(la[4]!.split("\t")[1]) + 1)
      expect(lb[5]).not.toBe(la[5])
      a.close()
      b.close()
    }))

  it.scopedLive("2.3 imap-login: the captured AUTH line gets a proxy OK with bare proxy, IP host, port and pass", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth()
      const c = yield* connect(sock)
      c.send(V23)
      c.send(
        "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=GhpGcWphVJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37204\tresp=AGFsaWNlAHNlY3JldA==\n"
      )
      expect(yield* after(c, 1)).toEqual(["OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret"])
      expect(lookup.calls).toEqual([{ user: "alice", frontend: "auth" }])
      c.close()
    }))

  it.scopedLive("2.4 client: VERSION 1.3 + CPID + AUTH (protocol=) pipelined in one write; POP3 gets its own port", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth({ routes: { dave: B2 } })
      const c = yield* connect(sock)
      c.send(
        V24 +
          "AUTH\t1\tPLAIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=EE7+gGphAJR/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=20143\trport=37888\tresp=AGRhdmUAcGFzcw==\n" +
          `AUTH\t2\tPLAIN\tprotocol=pop3\tlip=127.0.0.1\trip=127.0.0.1\tlport=20110\trport=37889\tresp=${plain("dave", "pass")}\n`
      )
      const lines = yield* after(c, 2)
      expect(lines.sort()).toEqual([
        "OK\t1\tuser=dave\tproxy\thost=127.0.0.3\tport=25143\tpass=pass",
        "OK\t2\tuser=dave\tproxy\thost=127.0.0.3\tport=25110\tpass=pass"
      ])
      c.close()
    }))

  it.scopedLive("doveadm auth test (authzid = authcid) and a client that waits for DONE before VERSION (Exim order)", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      const c = yield* connect(sock) // read up to DONE first, then write
      // nopassword mode answers doveadm's own service name with a FAIL naming why
      c.send(V23 + "AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tresp=YWxpY2UAYWxpY2UAc2VjcmV0\n")
      expect(yield* after(c, 1)).toEqual([`FAIL\t1\tuser=alice\treason=${AuthServer.REASON_UNCHECKED_SERVICE}`])
      // `doveadm auth test -x service=imap` shows the route
      c.send("AUTH\t2\tPLAIN\tservice=imap\tdebug\tresp=YWxpY2UAYWxpY2UAc2VjcmV0\n")
      expect((yield* after(c, 2))[1]).toBe("OK\t2\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret")
      c.close()
    }))

  it.scopedLive("PLAIN without initial response: an empty CONT, then the credentials", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      const c = yield* connect(sock)
      c.send(V23 + "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=ot2HcWphaJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37224\n")
      expect(yield* after(c, 1)).toEqual(["CONT\t1\t"])
      c.send("CONT\t1\tAGFsaWNlAHNlY3JldA==\n")
      expect((yield* after(c, 2))[1]).toBe("OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret")
      c.close()
    }))

  it.scopedLive("LOGIN without initial response (Username:/Password:) and with the user name as initial response", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      const c = yield* connect(sock)
      c.send(V24 + "AUTH\t1\tLOGIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=x\n")
      expect(yield* after(c, 1)).toEqual(["CONT\t1\tVXNlcm5hbWU6"])
      c.send("CONT\t1\tbWFsbG9yeQ==\n")
      expect((yield* after(c, 2))[1]).toBe("CONT\t1\tUGFzc3dvcmQ6")
      c.send("CONT\t1\tcGFzcw==\n")
      expect((yield* after(c, 3))[2]).toBe("OK\t1\tuser=mallory\tproxy\thost=127.0.0.2\tport=25143\tpass=pass")
      c.send(`AUTH\t2\tLOGIN\tprotocol=pop3\tresp=${b64("erin")}\n`)
      expect((yield* after(c, 4))[3]).toBe("CONT\t2\tUGFzc3dvcmQ6")
      c.send(`CONT\t2\t${b64("pw2")}\n`)
      expect((yield* after(c, 5))[4]).toBe("OK\t2\tuser=erin\tproxy\thost=127.0.0.2\tport=25110\tpass=pw2")
      c.close()
    }))

  it.scopedLive("CANCEL: silent for minor 2, CANCELLED for minor 4; a cancelled request is never answered, a reused id is", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth()
      lookup.hold("slow")
      const c2 = yield* connect(sock)
      c2.send(V23 + `AUTH\t7\tPLAIN\tservice=imap\tresp=${plain("slow", "x")}\n`)
      yield* Effect.promise(async () => {
        while (lookup.calls.length < 1) await new Promise((r) => setTimeout(r, 5))
      })
      c2.send("CANCEL\t7\n")
      c2.send(`AUTH\t7\tPLAIN\tservice=imap\tresp=${plain("bob", "pw")}\n`)
      expect(yield* after(c2, 1)).toEqual(["OK\t7\tuser=bob\tproxy\thost=127.0.0.2\tport=25143\tpass=pw"])
      lookup.release("slow")
      yield* Effect.sleep("100 millis")
      expect(c2.lines.slice(HANDSHAKE_LINES)).toHaveLength(1) // the cancelled "slow" login never answered

      const c4 = yield* connect(sock)
      c4.send("VERSION\t1\t4\nCPID\t99\nAUTH\t3\tPLAIN\tprotocol=imap\n")
      expect(yield* after(c4, 1)).toEqual(["CONT\t3\t"])
      c4.send("CANCEL\t3\nCANCEL\t12345\n") // an unknown id: ignored
      expect(yield* after(c4, 2)).toEqual(["CONT\t3\t", "CANCELLED\t3"])
      c2.close()
      c4.close()
    }))

  it.scopedLive("a line over 16 KiB closes only that connection", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      const good = yield* connect(sock)
      good.send(V23)
      const bad = yield* connect(sock)
      bad.send(V23 + "AUTH\t1\tPLAIN\tservice=imap\tx=" + "a".repeat(16_400) + "\n")
      expect(yield* Effect.promise(() => bad.waitClosed(3000))).toBe(true)
      expect(bad.lines.slice(HANDSHAKE_LINES)).toEqual([])
      // exactly 16384 bytes is still accepted
      const edge = yield* connect(sock)
      const head = `AUTH\t1\tPLAIN\tservice=imap\tx=`
      const tail = `\tresp=${plain("carol", "s")}`
      edge.send(V23 + head + "a".repeat(16384 - head.length - tail.length) + tail + "\n")
      expect((yield* after(edge, 1))[0]).toMatch(/^OK\t1\tuser=carol\t/)
      good.send(`AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("dave", "s")}\n`)
      expect((yield* after(good, 1))[0]).toMatch(/^OK\t1\tuser=dave\t/)
      good.close()
      edge.close()
    }))

  it.scopedLive("protocol errors disconnect like the real server; bad base64 gets code=invalid_base64", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth()
      for (
        const bad of [
          `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("a", "b")}\n`, // no VERSION
          "VERSION\t2\t0\n", // wrong major
          "VERSION\t1\t2\nAUTH\t1\tPLAIN\tservice=imap\n", // no CPID
          V23 + "AUTH\t1\tCRAM-MD5\tservice=imap\n", // unknown mechanism
          V23 + "AUTH\t1\tPLAIN\tservice=imap\nAUTH\t1\tPLAIN\tservice=imap\n", // duplicate id
          V23 + "AUTH\t1\tPLAIN\tresp=AA==\tservice=imap\n", // parameters after resp
          V23 + "AUTH\t0\tPLAIN\tservice=imap\n" // id 0
        ]
      ) {
        const c = yield* connect(sock)
        c.send(bad)
        expect(yield* Effect.promise(() => c.waitClosed(3000)), JSON.stringify(bad)).toBe(true)
      }
      const c = yield* connect(sock)
      c.send(V23 + "AUTH\t1\tPLAIN\tservice=imap\tresp=!!!\n")
      expect(yield* after(c, 1)).toEqual(["FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in initial response"])
      c.close()
    }))

  it.scopedLive("Postfix (VERSION 1.0, service=smtp, nologin) and Exim (empty resp= means none below 1.2)", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth({ authenticator: Authenticator.masterPassword(Redacted.make("m4ster")) })
      const pf = yield* connect(sock)
      pf.send(`VERSION\t1\t0\nCPID\t555\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tsecured\tresp=${plain("alice", "m4ster")}\n`)
      expect(yield* after(pf, 1)).toEqual(["OK\t1\tuser=alice"])
      const ex = yield* connect(sock)
      ex.send("VERSION\t1\t0\nCPID\t556\nAUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tlip=127.0.0.1\tnologin\tresp=\n")
      expect(yield* after(ex, 1)).toEqual(["CONT\t1\t"])
      ex.send(`CONT\t1\t${plain("bob", "wrong")}\n`)
      expect((yield* after(ex, 2))[1]).toBe("FAIL\t1\tuser=bob")
      expect(lookup.calls).toEqual([]) // SASL-only clients are never routed
      pf.close()
      ex.close()
    }))
})

describe.each([
  ["through the lookup's promise", false],
  ["from memory, within the socket read", true]
])("standalone auth-client server: authentication and routing decisions, routes %s", (_how, fromMemory) => {
  it.scopedLive("routing failure is FAIL code=temp_fail at once, never a password failure", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth({ fromMemory,  routes: { broken: "fail", far: B4 }, failureDelay: "5 seconds" })
      const c = yield* connect(sock)
      const t0 = Date.now()
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("broken", "x")}\nAUTH\t2\tPLAIN\tservice=imap\tresp=${plain("far", "x")}\n`)
      const lines = (yield* after(c, 2)).sort()
      expect(lines).toEqual(["FAIL\t1\tuser=broken\tcode=temp_fail", "FAIL\t2\tuser=far\tcode=temp_fail"])
      expect(Date.now() - t0).toBeLessThan(2000) // no failure delay for temporary failures
      c.close()
    }))

  it.scopedLive("host is always an IP: hostip, an IP hostname, or the resolved name", () =>
    Effect.gen(function*() {
      const { sock } = yield* startAuth({ fromMemory,  routes: { a: B1, b: B2, c: B3, d: backend(5, "127.0.0.5", "127.0.0.6") } })
      const c = yield* connect(sock)
      c.send(V23 + ["a", "b", "c", "d"].map((u, i) => `AUTH\t${i + 1}\tPLAIN\tservice=imap\tresp=${plain(u, "p")}\n`).join(""))
      const hosts = Object.fromEntries((yield* after(c, 4)).map((l) => [l.split("\t")[2], /\thost=([^\t]+)/.exec(l)?.[1]]))
      expect(hosts).toEqual({ "user=a": "127.0.0.2", "user=b": "127.0.0.3", "user=c": "127.0.0.9", "user=d": "127.0.0.6" })
      c.close()
    }))

  it.scopedLive("proxy_maybe: backend IP = lip (and port = lport) is 'self' → temp_fail with a reason; other ports proxy", () =>
    Effect.gen(function*() {
      const { sock, logs } = yield* startAuth({ fromMemory,  proxyFlag: "proxy_maybe" })
      const c = yield* connect(sock)
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tlip=127.0.0.2\tlport=25143\tresp=${plain("alice", "s")}\n`)
      expect(yield* after(c, 1)).toEqual([`FAIL\t1\tuser=alice\tcode=temp_fail\treason=${AuthServer.REASON_SELF}`])
      c.send(`AUTH\t2\tPLAIN\tservice=imap\tlip=127.0.0.2\tlport=993\tresp=${plain("alice", "s")}\n`)
      expect((yield* after(c, 2))[1]).toBe("OK\t2\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=s")
      c.send(`AUTH\t3\tPLAIN\tservice=imap\tlip=127.0.0.9\treal_lip=127.0.0.2\tlport=25143\tresp=${plain("alice", "s")}\n`)
      expect((yield* after(c, 3))[2]).toMatch(/^FAIL\t3\tuser=alice\tcode=temp_fail\treason=/) // real_lip wins
      expect(logs.some((l) => l.includes("standalone auth socket cannot serve local logins"))).toBe(true)
      c.close()
      // with proxy_flag=proxy there is no self check
      const p = yield* startAuth({ fromMemory,  proxyFlag: "proxy" })
      const d = yield* connect(p.sock)
      d.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tlip=127.0.0.2\tlport=25143\tresp=${plain("alice", "s")}\n`)
      expect((yield* after(d, 1))[0]).toMatch(/^OK\t1\tuser=alice\tproxy\t/)
      d.close()
    }))

  it.scopedLive("password mode: right password is routed; wrong one fails after the delay, unrouted; no secret is logged", () =>
    Effect.gen(function*() {
      const { sock, lookup, logs } = yield* startAuth({ fromMemory, 
        authenticator: Authenticator.masterPassword(Redacted.make("Sup3r-master")),
        failureDelay: "300 millis"
      })
      const c = yield* connect(sock)
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("alice", "typed-wrong")}\n`)
      const t0 = Date.now()
      expect(yield* after(c, 1)).toEqual(["FAIL\t1\tuser=alice"])
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
      expect(lookup.calls).toEqual([])
      c.send(`AUTH\t2\tPLAIN\tservice=imap\tresp=${plain("alice", "Sup3r-master")}\n`)
      expect((yield* after(c, 2))[1]).toBe("OK\t2\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=Sup3r-master")
      expect(lookup.calls).toEqual([{ user: "alice", frontend: "auth" }])
      // a CANCEL during the failure delay drops the FAIL
      c.send(`AUTH\t3\tPLAIN\tservice=imap\tresp=${plain("bob", "nope")}\nCANCEL\t3\n`)
      yield* Effect.sleep("450 millis")
      expect(c.lines.slice(HANDSHAKE_LINES)).toHaveLength(2)
      const all = logs.join("\n")
      expect(all).toMatch(/auth failed/)
      for (const secret of ["Sup3r-master", "typed-wrong", "nope"]) expect(all).not.toContain(secret)
      c.close()
    }))

  it.scopedLive("nopassword mode refuses auth-only clients (nothing would check the password)", () =>
    Effect.gen(function*() {
      const { sock, lookup, logs } = yield* startAuth({ fromMemory })
      const c = yield* connect(sock)
      c.send(`VERSION\t1\t0\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tresp=${plain("alice", "anything")}\n`)
      expect(yield* after(c, 1)).toEqual([`FAIL\t1\tuser=alice\treason=${AuthServer.REASON_UNCHECKED_SERVICE}`])
      expect(lookup.calls).toEqual([])
      expect(logs.some((l) => l.includes("nopassword mode nothing checks the password"))).toBe(true)
      c.close()
    }))

  it.scopedLive("nopassword mode serves only the allow-listed proxied services, in any case; every other service gets FAIL with a reason, unrouted", () =>
    Effect.gen(function*() {
      const { sock, lookup, logs } = yield* startAuth({ fromMemory })
      const c = yield* connect(sock)
      c.send("VERSION\t1\t0\nCPID\t1\n")
      const refused = ["SMTP", "Smtp", "smtpd", "doveadm", "lmtp", "imaps", "ssh", "x"]
      let id = 0
      for (const service of refused) {
        id++
        c.send(`AUTH\t${id}\tPLAIN\tservice=${service}\tresp=${plain("alice", "anything")}\n`)
        expect((yield* after(c, id))[id - 1], service).toBe(`FAIL\t${id}\tuser=alice\treason=${AuthServer.REASON_UNCHECKED_SERVICE}`)
      }
      expect(lookup.calls).toEqual([])
      // an allow-listed service with nologin is still an auth-only client: refused
      id++
      c.send(`AUTH\t${id}\tPLAIN\tservice=imap\tnologin\tresp=${plain("alice", "anything")}\n`)
      expect((yield* after(c, id))[id - 1]).toBe(`FAIL\t${id}\tuser=alice\treason=${AuthServer.REASON_UNCHECKED_SERVICE}`)
      expect(lookup.calls).toEqual([])
      for (const service of ["imap", "IMAP", "pop3", "Submission", "sieve"]) {
        id++
        c.send(`AUTH\t${id}\tPLAIN\tservice=${service}\tresp=${plain("alice", "anything")}\n`)
        expect((yield* after(c, id))[id - 1], service).toMatch(new RegExp(`^OK\\t${id}\\tuser=alice\\tproxy\\thost=`))
      }
      expect(lookup.calls).toHaveLength(5)
      expect([...AuthServer.NOPASSWORD_SERVICES].sort()).toEqual(["imap", "pop3", "sieve", "submission"])
      // SMTP/Smtp are smtp in any case: auth-only clients; the others are not proxied services
      expect(logs.filter((l) => l.includes("refusing an auth-only client"))).toHaveLength(3)
      expect(logs.filter((l) => l.includes("refusing a service not proxied to a password-checking backend"))).toHaveLength(refused.length - 2)
      c.close()
    }))

  it.scopedLive("passwords with TAB/CR/LF/0x01 are refused unrouted; other bytes pass into pass= tab-escaped; a user name with 0x01 is refused", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth({ fromMemory })
      const c = yield* connect(sock)
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("alice", "a\tb")}\n`)
      expect(yield* after(c, 1)).toEqual(["FAIL\t1\tuser=alice"])
      expect(lookup.calls).toEqual([])
      c.send(`AUTH\t2\tPLAIN\tservice=imap\tresp=${plain("we ird=ü", "pä\\ss=1 \x02")}\n`)
      expect((yield* after(c, 2))[1]).toBe("OK\t2\tuser=we ird=ü\tproxy\thost=127.0.0.2\tport=25143\tpass=pä\\ss=1 \x02")
      expect(lookup.calls).toEqual([{ user: "we ird=ü", frontend: "auth" }])
      c.send(`AUTH\t3\tPLAIN\tservice=imap\tresp=${plain("we\x01ird", "pw")}\n`)
      expect((yield* after(c, 3))[2]).toBe("FAIL\t3\treason=doveroute: invalid request: user contains a control character")
      expect(lookup.calls).toHaveLength(1)
      c.close()
    }))

  it.scopedLive("a UTF-8 name split inside a character between two writes is routed whole", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth({ fromMemory })
      const c = yield* connect(sock)
      const bytes = Buffer.from(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("jörg", "p")}\n`, "utf8")
      const resp = bytes.indexOf("resp=") + 8
      c.socket.write(bytes.subarray(0, resp))
      yield* Effect.sleep("20 millis")
      c.socket.write(bytes.subarray(resp))
      expect((yield* after(c, 1))[0]).toMatch(/^OK\t1\tuser=jörg\t/)
      expect(lookup.calls[0]!.user).toBe("jörg")
      c.close()
    }))

  it.scopedLive("master-user login (authzid ≠ authcid): the target user is routed, master= is passed", () =>
    Effect.gen(function*() {
      const { sock, lookup } = yield* startAuth({ fromMemory })
      const c = yield* connect(sock)
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("admin", "adminpw", "alice")}\n`)
      expect(yield* after(c, 1)).toEqual(["OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=adminpw\tmaster=admin"])
      expect(lookup.calls.map((x) => x.user)).toEqual(["alice"])
      c.close()
    }))

  it.scopedLive("a pluggable authenticator: Rejected → FAIL, Unavailable/throwing → temp_fail, Accepted may rename", () =>
    Effect.gen(function*() {
      const pam: Authenticator.Authenticator = {
        name: "test",
        verifiesPassword: true,
        authenticate: async (r) => {
          if (r.user === "down") return { _tag: "Unavailable", detail: "pam down" }
          if (r.user === "boom") throw new Error("bug")
          if (r.user === "Alice") return { _tag: "Accepted", user: "alice" }
          return { _tag: "Rejected", detail: "no" }
        }
      }
      const { sock, lookup } = yield* startAuth({ fromMemory,  authenticator: pam })
      const c = yield* connect(sock)
      c.send(V23 + ["down", "boom", "Alice", "eve"].map((u, i) => `AUTH\t${i + 1}\tPLAIN\tservice=imap\tresp=${plain(u, "p")}\n`).join(""))
      expect((yield* after(c, 4)).sort()).toEqual([
        "FAIL\t1\tuser=down\tcode=temp_fail",
        "FAIL\t2\tuser=boom\tcode=temp_fail",
        "FAIL\t4\tuser=eve",
        "OK\t3\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=p"
      ])
      expect(lookup.calls.map((x) => x.user)).toEqual(["alice"])
      c.close()
    }))

  it("masterPassword compares in constant time over digests and refuses an empty secret", () => {
    expect(Authenticator.constantTimeEquals("abc", "abc")).toBe(true)
    expect(Authenticator.constantTimeEquals("abc", "abcd")).toBe(false)
    expect(() => Authenticator.masterPassword(Redacted.make(""))).toThrow(RangeError)
    expect(String(Redacted.make("s3cret"))).not.toContain("s3cret")
  })
})

describe("standalone auth-client server on a real SQLite store", () => {
  it.scopedLive("logins write one row per user; a wrong master password writes none", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "auth.sock")
      const store = storeLayer({ url: parseStoreUrl(`sqlite:${path.join(dir, "r.db")}`), strategy: "mapping" })
      const app = AuthServer.layer({
        path: sock,
        authenticator: Authenticator.masterPassword(Redacted.make("m")),
        failureDelay: Duration.zero,
        proxyFlag: "proxy_maybe"
      }).pipe(
        Layer.provideMerge(Lookup.layer),
        Layer.provideMerge(Router.layer({ strategy: "mapping", downPolicy: "keep" })),
        Layer.provideMerge(store)
      )
      const ctx = yield* Layer.build(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
      yield* Admin.addBackend({ hostname: "127.0.0.3", hostip: null }).pipe(Effect.provide(ctx))
      const users = () => Admin.listBackends.pipe(Effect.provide(ctx), Effect.map((bs) => bs.reduce((n, b) => n + b.users, 0)))
      const c = yield* connect(sock)
      c.send(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("zed", "wrong")}\n`)
      expect(yield* after(c, 1)).toEqual(["FAIL\t1\tuser=zed"])
      expect(yield* users()).toBe(0)
      c.send(`AUTH\t2\tPLAIN\tservice=imap\tresp=${plain("zed", "m")}\nAUTH\t3\tPLAIN\tservice=pop3\tresp=${plain("zed", "m")}\n`)
      expect((yield* after(c, 3)).slice(1).sort()).toEqual([
        "OK\t2\tuser=zed\tproxy\thost=127.0.0.3\tpass=m",
        "OK\t3\tuser=zed\tproxy\thost=127.0.0.3\tpass=m"
      ])
      expect(yield* users()).toBe(1)
      c.close()
    }))
})

/** A socket stand-in recording what a connection writes, and whether it destroyed it. */
const recordingSocket = () => {
  const written: Array<string> = []
  const state = { destroyed: false }
  const socket = {
    write: (data: string | Uint8Array) => {
      if (state.destroyed) throw new Error("write after destroy")
      written.push(typeof data === "string" ? data : Buffer.from(data).toString("utf8"))
      return true
    },
    destroy: () => {
      state.destroyed = true
    },
    get destroyed() {
      return state.destroyed
    }
  }
  /** Lines written after the handshake. */
  const lines = () => written.join("").split("\n").filter((l) => l.length > 0).slice(HANDSHAKE_LINES)
  return { socket: socket as unknown as net.Socket, lines, state }
}

describe("auth connection: replies made within one socket read", () => {
  const connection = (authenticator?: Authenticator.Authenticator) => {
    const lookup = scriptedLookup({}, undefined, { fromMemory: true })
    const ctx = AuthServer.makeContext(lookup.service, { failureDelay: 0, ...(authenticator ? { authenticator } : {}) }, () => {})
    const rec = recordingSocket()
    return { conn: new AuthServer.AuthConnection(rec.socket, ctx), ...rec }
  }

  it("a line over the limit after answered requests in the same read: the answers still go out before the close", () => {
    const { conn, lines, state } = connection()
    conn.onData(Buffer.from(
      V23 +
        `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("alice", "pw")}\n` +
        "AUTH\t2\tPLAIN\tservice=imap\tresp=!!!\n" +
        "X".repeat(AuthClient.AUTH_CLIENT_MAX_LINE + 10) + "\n"
    ))
    expect(state.destroyed).toBe(true)
    expect(lines()).toEqual([
      "OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tpass=pw",
      `FAIL\t2\tcode=invalid_base64\treason=${AuthClient.REASON_BAD_BASE64_INITIAL}`
    ])
  })

  it("a protocol error after answered requests in the same read: the answers still go out, nothing after it", () => {
    const { conn, lines, state } = connection()
    conn.onData(Buffer.from(
      V23 +
        `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("alice", "pw")}\n` +
        // id 1 was answered: reusing it is a new request
        `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("bob", "pw")}\n` +
        "BOGUS\t1\n" +
        `AUTH\t3\tPLAIN\tservice=imap\tresp=${plain("carol", "pw")}\n`
    ))
    expect(state.destroyed).toBe(true)
    expect(lines()).toEqual([
      "OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tpass=pw",
      "OK\t1\tuser=bob\tproxy\thost=127.0.0.2\tpass=pw"
    ])
  })

  it("the request an authenticator gets shows its password only through Redacted (logging it leaks nothing)", () => {
    let seen: Authenticator.AuthenticationRequest | undefined
    const { conn, lines } = connection({
      name: "capture",
      verifiesPassword: true,
      authenticate: () => Promise.resolve({ _tag: "Accepted" }),
      check: (r) => {
        seen = r
        return { _tag: "Accepted" }
      }
    })
    conn.onData(Buffer.from(V23 + `AUTH\t1\tPLAIN\tservice=imap\tresp=${plain("alice", "Sup3rS3cret")}\n`))
    expect(lines()).toEqual(["OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tpass=Sup3rS3cret"])
    const r = seen!
    expect(Redacted.value(r.password)).toBe("Sup3rS3cret")
    expect(JSON.stringify(r)).not.toContain("Sup3rS3cret")
    expect(util.inspect(r, { showHidden: true, depth: 5 })).not.toContain("Sup3rS3cret")
    expect(JSON.stringify({ ...r })).not.toContain("Sup3rS3cret")
    expect(JSON.stringify(Object.getOwnPropertyNames(r).map((k) => (r as unknown as Record<string, unknown>)[k]))).not.toContain("Sup3rS3cret")
  })
})
