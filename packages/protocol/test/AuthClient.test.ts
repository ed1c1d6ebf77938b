import { describe, expect, it } from "vitest"
import {
  AUTH_CLIENT_MAX_LINE,
  decodeClientLine,
  DEFAULT_MECHANISMS,
  encodeCancelled,
  encodeCont,
  encodeFail,
  encodeHandshake,
  encodeOk,
  type AuthLine,
  type ClientLine
} from "../src/AuthClient.js"
import { AuthClientSession, type SessionDecision } from "../src/AuthClientSession.js"
import { createMechanism, decodePlain, LoginMechanism } from "../src/Sasl.js"

const COOKIE = "310c068b7b5a1b9b6d9ea3ba700f6208"

const auth = (msg: ClientLine): AuthLine => {
  if (msg._tag !== "Auth") throw new Error(`expected Auth, got ${JSON.stringify(msg)}`)
  return msg
}

const started = (d: SessionDecision): AuthLine => {
  if (d._tag !== "StartAuth") throw new Error(`expected StartAuth, got ${JSON.stringify(d)}`)
  return d.request
}

/** A session that has completed VERSION 1.<minor> + CPID. */
const readySession = (minor = 2, mechanisms?: Array<string>): AuthClientSession => {
  const s = mechanisms === undefined ? new AuthClientSession() : new AuthClientSession({ mechanisms })
  expect(s.handleLine(`VERSION\t1\t${minor}`)).toEqual({ _tag: "Ignore" })
  expect(s.handleLine("CPID\t4242")).toEqual({ _tag: "Ignore" })
  expect(s.ready).toBe(true)
  return s
}

describe("encodeHandshake", () => {
  it("produces the 2.3.19 handshake bytes (MECH before SPID)", () => {
    const hs = encodeHandshake({ mechanisms: DEFAULT_MECHANISMS, spid: 19728, cuid: 6, cookie: COOKIE })
    expect(hs).toBe(
      "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t19728\nCUID\t6\nCOOKIE\t310c068b7b5a1b9b6d9ea3ba700f6208\nDONE\n"
    )
  })

  it("prints flags in Dovecot's fixed order and without duplicates", () => {
    const hs = encodeHandshake({
      mechanisms: [{ name: "SCRAM-SHA-256", flags: ["mutual-auth", "dictionary", "active", "dictionary"] }, { name: "ANONYMOUS", flags: ["anonymous"] }],
      spid: 1,
      cuid: 1,
      cookie: COOKIE,
      minor: 3
    })
    expect(hs).toBe(
      `VERSION\t1\t3\nMECH\tSCRAM-SHA-256\tdictionary\tactive\tmutual-auth\nMECH\tANONYMOUS\tanonymous\nSPID\t1\nCUID\t1\nCOOKIE\t${COOKIE}\nDONE\n`
    )
  })

  it("rejects programmer errors", () => {
    expect(() => encodeHandshake({ mechanisms: [], spid: 1, cuid: 1, cookie: COOKIE })).toThrow(RangeError)
    expect(() => encodeHandshake({ mechanisms: DEFAULT_MECHANISMS, spid: 1, cuid: 1, cookie: COOKIE.toUpperCase() })).toThrow(RangeError)
    expect(() => encodeHandshake({ mechanisms: DEFAULT_MECHANISMS, spid: 1, cuid: 1, cookie: "abc" })).toThrow(RangeError)
    expect(() => encodeHandshake({ mechanisms: DEFAULT_MECHANISMS, spid: -1, cuid: 1, cookie: COOKIE })).toThrow(RangeError)
    expect(() => encodeHandshake({ mechanisms: [{ name: "PL\tAIN", flags: [] }], spid: 1, cuid: 1, cookie: COOKIE })).toThrow(RangeError)
  })
})

describe("decodeClientLine: captured lines", () => {
  it("2.3.19 imap-login IMAP LOGIN", () => {
    const a = auth(
      decodeClientLine(
        "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=GhpGcWphVJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37204\tresp=AGFsaWNlAHNlY3JldA=="
      )
    )
    expect(a).toEqual({
      _tag: "Auth",
      id: 1,
      mech: "PLAIN",
      service: "imap",
      params: [
        { key: "service", value: "imap" },
        { key: "secured", value: undefined },
        { key: "session", value: "GhpGcWphVJF/AAAB" },
        { key: "lip", value: "127.0.0.1" },
        { key: "rip", value: "127.0.0.1" },
        { key: "lport", value: "24143" },
        { key: "rport", value: "37204" }
      ],
      resp: "AGFsaWNlAHNlY3JldA==",
      secured: true,
      securedTls: false,
      finalRespOk: false,
      noPenalty: false,
      validClientCert: false,
      debug: false,
      nologin: false,
      session: "GhpGcWphVJF/AAAB",
      lip: "127.0.0.1",
      rip: "127.0.0.1",
      lport: 24143,
      rport: 37204,
      realLip: "127.0.0.1",
      realRip: "127.0.0.1",
      realLport: 24143,
      realRport: 37204,
      localName: undefined,
      clientId: undefined,
      certUsername: undefined,
      forwardFields: []
    })
    expect(decodePlain(a.resp!)).toEqual({ _tag: "Credentials", authzid: "", authcid: "alice", password: "secret" })
  })

  it("2.3.19 doveadm auth test", () => {
    const a = auth(decodeClientLine("AUTH\t1\tPLAIN\tservice=doveadm\tdebug\tresp=YWxpY2UAYWxpY2UAc2VjcmV0"))
    expect(a.service).toBe("doveadm")
    expect(a.debug).toBe(true)
    expect(a.secured).toBe(false)
    expect(a.params).toEqual([{ key: "service", value: "doveadm" }, { key: "debug", value: undefined }])
    expect(a.lip).toBeUndefined()
    expect(a.lport).toBeUndefined()
    expect(decodePlain(a.resp!)).toEqual({ _tag: "Credentials", authzid: "alice", authcid: "alice", password: "secret" })
  })

  it("2.4.1 imap-login with protocol=", () => {
    const a = auth(
      decodeClientLine(
        "AUTH\t1\tPLAIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=EE7+gGphAJR/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=20143\trport=37888\tresp=AGRhdmUAcGFzcw=="
      )
    )
    expect(a.service).toBe("imap")
    expect(a.finalRespOk).toBe(true)
    expect(a.secured).toBe(true)
    expect(a.session).toBe("EE7+gGphAJR/AAAB")
    expect([a.lip, a.rip, a.lport, a.rport]).toEqual(["127.0.0.1", "127.0.0.1", 20143, 37888])
    expect(a.params.map((p) => p.key)).toEqual(["protocol", "final-resp-ok", "secured", "session", "lip", "rip", "lport", "rport"])
    expect(decodePlain(a.resp!)).toEqual({ _tag: "Credentials", authzid: "", authcid: "dave", password: "pass" })
  })

  it("2.4.1 doveadm auth test -x service=imap -x rip=… (log line, resp reconstructed)", () => {
    const a = auth(
      decodeClientLine("AUTH\t1\tPLAIN\tprotocol=imap\tfinal-resp-ok\tdebug\tlip=127.0.0.1\trip=192.0.2.10\tresp=YWxpY2UAYWxpY2UAc2VjcmV0")
    )
    expect([a.service, a.finalRespOk, a.debug, a.lip, a.rip, a.realRip]).toEqual(["imap", true, true, "127.0.0.1", "192.0.2.10", "192.0.2.10"])
  })

  it("2.3.19 AUTHENTICATE PLAIN without SASL-IR has no resp", () => {
    const a = auth(
      decodeClientLine("AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=ot2HcWphaJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37224")
    )
    expect(a.resp).toBeUndefined()
    expect(a.rport).toBe(37224)
    expect(decodeClientLine("CONT\t1\tAGFsaWNlAHNlY3JldA==")).toEqual({ _tag: "Cont", id: 1, data: "AGFsaWNlAHNlY3JldA==" })
  })

  it("Postfix and Exim AUTH shapes", () => {
    const p = auth(decodeClientLine("AUTH\t7\tLOGIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=198.51.100.7\tsecured"))
    expect([p.id, p.mech, p.service, p.nologin, p.secured, p.resp]).toEqual([7, "LOGIN", "smtp", true, true, undefined])
    const e = auth(decodeClientLine("AUTH\t1\tPLAIN\tservice=smtp\tsecured\tvalid-client-cert\trip=198.51.100.7\tlip=192.0.2.1\tnologin\tresp="))
    expect([e.validClientCert, e.nologin, e.resp]).toEqual([true, true, ""])
  })

  it("real_*, ports, secured=tls, forward_fields, escaped values", () => {
    const a = auth(
      decodeClientLine(
        "AUTH\t4294967295\tplain\tservice=pop3\tsecured=tls\tno-penalty\tlip=10.0.0.1\tlport=110\treal_lip=10.9.9.9\treal_rport=5\trport=99999\tlocal_name=mail.example.org\tclient_id=a\x01tb\tcert_username=c\tforward_fields=k1=v1\x01tk2=v\x01\x01t2"
      )
    )
    expect(a.id).toBe(4294967295)
    expect(a.mech).toBe("PLAIN")
    expect(a.securedTls).toBe(true)
    expect(a.noPenalty).toBe(true)
    expect([a.realLip, a.realLport, a.realRport, a.rport]).toEqual(["10.9.9.9", 110, 5, undefined])
    expect(a.localName).toBe("mail.example.org")
    expect(a.clientId).toBe("a\tb")
    expect(a.certUsername).toBe("c")
    expect(a.forwardFields).toEqual([{ key: "k1", value: "v1" }, { key: "k2", value: "v\t2" }])
  })

  it("VERSION, CPID, CANCEL", () => {
    expect(decodeClientLine("VERSION\t1\t2")).toEqual({ _tag: "Version", major: 1, minor: 2 })
    expect(decodeClientLine("VERSION\t1\t4")).toEqual({ _tag: "Version", major: 1, minor: 4 })
    expect(decodeClientLine("CPID\t20788")).toEqual({ _tag: "Cpid", pid: 20788 })
    expect(decodeClientLine("CANCEL\t3")).toEqual({ _tag: "Cancel", id: 3 })
    expect(decodeClientLine("CONT\t1\t")).toEqual({ _tag: "Cont", id: 1, data: "" })
  })
})

describe("decodeClientLine: invalid lines", () => {
  const cases: Array<[string, string]> = [
    ["AUTH\t0\tPLAIN\tservice=imap", "AUTH: bad request id"],
    ["AUTH\tx\tPLAIN\tservice=imap", "AUTH: bad request id"],
    ["AUTH\t-1\tPLAIN\tservice=imap", "AUTH: bad request id"],
    ["AUTH\t4294967296\tPLAIN\tservice=imap", "AUTH: bad request id"],
    ["AUTH\t 1\tPLAIN\tservice=imap", "AUTH: bad request id"],
    ["AUTH\t1", "AUTH: missing mechanism"],
    ["AUTH\t1\t\tservice=imap", "AUTH: missing mechanism"],
    ["AUTH\t1\tPLAIN", "AUTH: missing service"],
    ["AUTH\t1\tPLAIN\tlip=1.2.3.4\tresp=AA==", "AUTH: missing service"],
    ["AUTH\t1\tPLAIN\tservice=", "AUTH: missing service"],
    ["AUTH\t1\tPLAIN\tservice=imap\tresp=AA==\tsecured", "AUTH: parameters after 'resp'"],
    ["AUTH\t1\tPLAIN\tservice=imap\tresp=AA==\t", "AUTH: parameters after 'resp'"],
    ["VERSION\t1", "VERSION: bad version numbers"],
    ["VERSION\tone\t2", "VERSION: bad version numbers"],
    ["CPID\t0", "CPID: client said its PID is 0"],
    ["CPID\t", "CPID: bad pid"],
    ["CONT\t0\tAA==", "CONT: bad request id"],
    ["CONT\t1", "CONT: missing data"],
    ["CANCEL\t99999999999", "CANCEL: bad request id"],
    ["HELLO\t1", 'unknown command "HELLO"'],
    ["", 'unknown command ""'],
    ["auth\t1\tPLAIN\tservice=imap", 'unknown command "auth"']
  ]
  for (const [line, reason] of cases) {
    it(JSON.stringify(line), () => {
      expect(decodeClientLine(line)).toEqual({ _tag: "Invalid", reason })
    })
  }

  it("lines over 16384 bytes (counted in UTF-8)", () => {
    const base = "AUTH\t1\tPLAIN\tservice=imap\tsession="
    expect(decodeClientLine(base + "x".repeat(AUTH_CLIENT_MAX_LINE - base.length))._tag).toBe("Auth")
    expect(decodeClientLine(base + "x".repeat(AUTH_CLIENT_MAX_LINE - base.length + 1))).toEqual({
      _tag: "Invalid",
      reason: "line longer than 16384 bytes"
    })
    // 6000 × "ö" = 12000 bytes + prefix: fits; 8200 × "ö" = 16400 bytes: too long
    expect(decodeClientLine(base + "ö".repeat(6000))._tag).toBe("Auth")
    expect(decodeClientLine(base + "ö".repeat(8200))._tag).toBe("Invalid")
  })

  it("a bare 'resp' token is an ordinary parameter", () => {
    const a = auth(decodeClientLine("AUTH\t1\tPLAIN\tservice=imap\tresp\tsecured"))
    expect(a.resp).toBeUndefined()
    expect(a.params).toContainEqual({ key: "resp", value: undefined })
  })
})

describe("encoders", () => {
  it("OK renders proxy and nologin bare and escapes values", () => {
    expect(
      encodeOk(1, [["user", "alice"], ["proxy", undefined], ["host", "127.0.0.2"], ["port", "25143"], ["pass", "secret"]])
    ).toBe("OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret\n")
    expect(encodeOk(2, [["user", "bob"], ["proxy", "y"], ["nologin", "yes"], ["reason", "go away"]])).toBe(
      "OK\t2\tuser=bob\tproxy\tnologin\treason=go away\n"
    )
    expect(encodeOk(3, [["user", "a\tb\nc"], ["pass", "p\x01w\r"]])).toBe("OK\t3\tuser=a\x01tb\x01nc\tpass=p\x011w\x01r\n")
    expect(encodeOk(4, [["user", "mallory"]])).toBe("OK\t4\tuser=mallory\n")
  })

  it("OK must start with user=", () => {
    expect(() => encodeOk(1, [])).toThrow(RangeError)
    expect(() => encodeOk(1, [["proxy", undefined], ["user", "a"]])).toThrow(RangeError)
    expect(() => encodeOk(1, [["user", undefined]])).toThrow(RangeError)
    expect(() => encodeOk(0, [["user", "a"]])).toThrow(RangeError)
    expect(() => encodeOk(1, [["user", "a"], ["x=y", "z"]])).toThrow(RangeError)
  })

  it("FAIL, CONT, CANCELLED", () => {
    expect(encodeFail(1, { user: "mallory" })).toBe("FAIL\t1\tuser=mallory\n")
    expect(encodeFail(1, { user: "broken", code: "temp_fail" })).toBe("FAIL\t1\tuser=broken\tcode=temp_fail\n")
    expect(encodeFail(1)).toBe("FAIL\t1\n")
    expect(encodeFail(9, { code: "authz_fail", reason: "no\tway", fields: [["nodelay", undefined], ["hostip", "127.0.0.2"]] })).toBe(
      "FAIL\t9\tcode=authz_fail\treason=no\x01tway\tnodelay\thostip=127.0.0.2\n"
    )
    expect(encodeCont(1, "")).toBe("CONT\t1\t\n")
    expect(encodeCont(1, "VXNlcm5hbWU6")).toBe("CONT\t1\tVXNlcm5hbWU6\n")
    expect(() => encodeCont(1, "not base64!")).toThrow(RangeError)
    expect(encodeCancelled(12)).toBe("CANCELLED\t12\n")
    expect(() => encodeCancelled(4294967296)).toThrow(RangeError)
  })
})

describe("AuthClientSession", () => {
  it("2.3.19 SASL-IR flow end to end", () => {
    const s = readySession(2)
    expect(s.clientMinor).toBe(2)
    expect(s.clientPid).toBe(4242)
    const req = started(
      s.handleLine(
        "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=GhpGcWphVJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37204\tresp=AGFsaWNlAHNlY3JldA=="
      )
    )
    const mech = createMechanism(req.mech)!
    const step = mech.start(req.resp)
    expect(step).toEqual({ _tag: "Credentials", authzid: "", authcid: "alice", password: "secret" })
    expect(s.has(1)).toBe(true)
    expect(s.finish(1)).toBe(true)
    expect(s.has(1)).toBe(false)
    expect(encodeOk(1, [["user", "alice"], ["proxy", undefined], ["host", "127.0.0.2"], ["port", "25143"], ["pass", "secret"]])).toBe(
      "OK\t1\tuser=alice\tproxy\thost=127.0.0.2\tport=25143\tpass=secret\n"
    )
  })

  it("2.3.19 PLAIN without SASL-IR: empty CONT then client CONT", () => {
    const s = readySession(2)
    const req = started(s.handleLine("AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=ot2HcWphaJF/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=24143\trport=37224"))
    const mech = createMechanism(req.mech)!
    const step = mech.start(req.resp)
    expect(step).toEqual({ _tag: "Challenge", challenge: "" })
    expect(s.cont(1, "")).toBe("CONT\t1\t\n")
    expect(s.isAwaitingContinuation(1)).toBe(true)
    expect(s.handleLine("CONT\t1\tAGFsaWNlAHNlY3JldA==")).toEqual({ _tag: "Continue", id: 1, data: "AGFsaWNlAHNlY3JldA==" })
    expect(s.isAwaitingContinuation(1)).toBe(false)
    expect(mech.continue("AGFsaWNlAHNlY3JldA==")).toEqual({ _tag: "Credentials", authzid: "", authcid: "alice", password: "secret" })
    expect(s.finish(1)).toBe(true)
  })

  it("2.4.1 LOGIN flow reproduces the captured CONT lines", () => {
    const s = readySession(3)
    const req = started(s.handleLine("AUTH\t1\tLOGIN\tprotocol=imap\tfinal-resp-ok\tsecured\tsession=EE7+gGphAJR/AAAB"))
    const mech = new LoginMechanism()
    const out: Array<string> = []
    let step = mech.start(req.resp)
    if (step._tag !== "Challenge") throw new Error("expected challenge")
    out.push(s.cont(1, step.challenge)!)
    const c1 = s.handleLine("CONT\t1\tbWFsbG9yeQ==")
    if (c1._tag !== "Continue") throw new Error(JSON.stringify(c1))
    step = mech.continue(c1.data)
    if (step._tag !== "Challenge") throw new Error("expected challenge")
    out.push(s.cont(1, step.challenge)!)
    const c2 = s.handleLine("CONT\t1\tcGFzcw==")
    if (c2._tag !== "Continue") throw new Error(JSON.stringify(c2))
    expect(mech.continue(c2.data)).toEqual({ _tag: "Credentials", authzid: "", authcid: "mallory", password: "pass" })
    expect(s.finish(1)).toBe(true)
    out.push(encodeOk(1, [["user", "mallory"]]))
    expect(out.join("")).toBe("CONT\t1\tVXNlcm5hbWU6\nCONT\t1\tUGFzc3dvcmQ6\nOK\t1\tuser=mallory\n")
  })

  it("Exim sends VERSION 1.0, CPID and AUTH at once; empty resp= means no initial response below 1.2", () => {
    const s = new AuthClientSession()
    const ds = ["VERSION\t1\t0", "CPID\t999", "AUTH\t1\tPLAIN\tservice=smtp\tsecured\trip=198.51.100.7\tlip=192.0.2.1\tnologin\tresp="].map(
      (l) => s.handleLine(l)
    )
    expect(ds[0]).toEqual({ _tag: "Ignore" })
    expect(ds[1]).toEqual({ _tag: "Ignore" })
    expect(started(ds[2]!).resp).toBeUndefined()
  })

  it("an empty resp= is an empty initial response from 1.2 on", () => {
    expect(started(readySession(1).handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp=")).resp).toBeUndefined()
    expect(started(readySession(2).handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp=")).resp).toBe("")
    expect(started(readySession(2).handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp==")).resp).toBe("=")
  })

  it("VERSION must come first, with major 1", () => {
    const s1 = new AuthClientSession()
    expect(s1.handleLine("CPID\t1")).toEqual({ _tag: "Disconnect", reason: "first line must be VERSION" })
    expect(s1.closed).toBe(true)
    expect(s1.handleLine("VERSION\t1\t2")._tag).toBe("Disconnect")
    const s2 = new AuthClientSession()
    expect(s2.handleLine("VERSION\t2\t0")).toEqual({ _tag: "Disconnect", reason: "incompatible major version 2" })
    const s3 = new AuthClientSession()
    expect(s3.handleLine("AUTH\t1\tPLAIN\tservice=imap")._tag).toBe("Disconnect")
    const s4 = new AuthClientSession()
    expect(s4.handleLine("garbage")._tag).toBe("Disconnect")
  })

  it("CPID is required before AUTH and must not be 0", () => {
    const s1 = new AuthClientSession()
    s1.handleLine("VERSION\t1\t2")
    expect(s1.handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp=AGFsaWNlAHNlY3JldA==")).toEqual({
      _tag: "Disconnect",
      reason: "unknown handshake command AUTH"
    })
    const s2 = new AuthClientSession()
    s2.handleLine("VERSION\t1\t2")
    expect(s2.handleLine("CPID\t0")).toEqual({ _tag: "Disconnect", reason: "CPID: client said its PID is 0" })
    const s3 = new AuthClientSession()
    s3.handleLine("VERSION\t1\t2")
    expect(s3.handleLine("VERSION\t1\t2")._tag).toBe("Disconnect")
  })

  it("VERSION or CPID after the handshake disconnects", () => {
    expect(readySession().handleLine("CPID\t5")._tag).toBe("Disconnect")
    expect(readySession().handleLine("VERSION\t1\t2")._tag).toBe("Disconnect")
  })

  it("a duplicate in-flight id disconnects; a finished id may be reused", () => {
    const s = readySession()
    started(s.handleLine("AUTH\t5\tPLAIN\tservice=imap"))
    expect(s.handleLine("AUTH\t5\tPLAIN\tservice=imap")).toEqual({ _tag: "Disconnect", reason: "duplicate request id 5" })
    expect(s.pendingCount).toBe(0)
    const t = readySession()
    started(t.handleLine("AUTH\t5\tPLAIN\tservice=imap"))
    expect(t.finish(5)).toBe(true)
    expect(t.finish(5)).toBe(false)
    expect(started(t.handleLine("AUTH\t5\tPLAIN\tservice=imap")).id).toBe(5)
  })

  it("parameters after resp= disconnect", () => {
    expect(readySession().handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp=AA==\tsecured")).toEqual({
      _tag: "Disconnect",
      reason: "AUTH: parameters after 'resp'"
    })
  })

  it("bad base64 in resp= fails the request without registering it", () => {
    const s = readySession()
    expect(s.handleLine("AUTH\t1\tPLAIN\tservice=imap\tresp=AGFs!WNl")).toEqual({
      _tag: "Reply",
      line: "FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in initial response\n"
    })
    expect(s.has(1)).toBe(false)
    expect(s.ready).toBe(true)
  })

  it("CONT without a server CONT fails the request", () => {
    const s = readySession()
    started(s.handleLine("AUTH\t3\tPLAIN\tservice=imap"))
    expect(s.handleLine("CONT\t3\tAGFsaWNlAHNlY3JldA==")).toEqual({
      _tag: "Abort",
      id: 3,
      line: "FAIL\t3\treason=Unexpected continuation\n"
    })
    expect(s.has(3)).toBe(false)
    expect(s.finish(3)).toBe(false)
  })

  it("CONT is accepted only once per server CONT", () => {
    const s = readySession()
    started(s.handleLine("AUTH\t3\tLOGIN\tservice=imap"))
    expect(s.markAwaitingContinuation(3)).toBe(true)
    expect(s.handleLine("CONT\t3\tbWFsbG9yeQ==")._tag).toBe("Continue")
    expect(s.handleLine("CONT\t3\tcGFzcw==")).toEqual({ _tag: "Abort", id: 3, line: "FAIL\t3\treason=Unexpected continuation\n" })
  })

  it("CONT for an unknown id answers 'timed out'", () => {
    expect(readySession().handleLine("CONT\t7\tAA==")).toEqual({ _tag: "Reply", line: "FAIL\t7\treason=Authentication request timed out\n" })
  })

  it("bad base64 in CONT fails the request", () => {
    const s = readySession()
    started(s.handleLine("AUTH\t2\tPLAIN\tservice=imap"))
    s.cont(2, "")
    expect(s.handleLine("CONT\t2\tAGFsaWNlAHNlY3JldA")).toEqual({
      _tag: "Abort",
      id: 2,
      line: "FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in continued response\n"
    })
    expect(s.has(2)).toBe(false)
  })

  it("CANCEL is silent below 1.4", () => {
    for (const minor of [0, 1, 2, 3]) {
      const s = readySession(minor)
      started(s.handleLine("AUTH\t1\tPLAIN\tservice=imap"))
      expect(s.handleLine("CANCEL\t1")).toEqual({ _tag: "Abort", id: 1, line: undefined })
      expect(s.finish(1)).toBe(false)
      expect(s.cont(1, "")).toBeUndefined()
    }
  })

  it("CANCEL is answered with CANCELLED from 1.4 on", () => {
    for (const minor of [4, 5]) {
      const s = readySession(minor)
      started(s.handleLine("AUTH\t1\tPLAIN\tservice=imap"))
      expect(s.handleLine("CANCEL\t1")).toEqual({ _tag: "Abort", id: 1, line: "CANCELLED\t1\n" })
      expect(s.has(1)).toBe(false)
    }
  })

  it("CANCEL of an unknown id is ignored", () => {
    expect(readySession(4).handleLine("CANCEL\t9")).toEqual({ _tag: "Ignore" })
  })

  it("an unannounced mechanism disconnects when the session knows the list", () => {
    const s = readySession(2, ["plain", "LOGIN"])
    expect(started(s.handleLine("AUTH\t1\tplain\tservice=imap")).mech).toBe("PLAIN")
    expect(s.handleLine("AUTH\t2\tCRAM-MD5\tservice=imap")).toEqual({ _tag: "Disconnect", reason: "unsupported mechanism CRAM-MD5" })
    expect(s.has(1)).toBe(false)
  })

  it("invalid lines after the handshake disconnect", () => {
    expect(readySession().handleLine("AUTH\t1\tPLAIN")).toEqual({ _tag: "Disconnect", reason: "AUTH: missing service" })
    expect(readySession().handleLine("NOOP")).toEqual({ _tag: "Disconnect", reason: 'unknown command "NOOP"' })
    expect(readySession().handleLine("AUTH\t1\tPLAIN\tservice=imap\tsession=" + "x".repeat(AUTH_CLIENT_MAX_LINE))._tag).toBe(
      "Disconnect"
    )
  })

  it("several requests in flight on one connection are independent", () => {
    const s = readySession()
    started(s.handleLine("AUTH\t1\tPLAIN\tservice=imap"))
    started(s.handleLine("AUTH\t2\tLOGIN\tservice=imap"))
    s.cont(2, "VXNlcm5hbWU6")
    expect(s.pendingCount).toBe(2)
    expect(s.handleLine("CONT\t2\tbWFsbG9yeQ==")._tag).toBe("Continue")
    expect(s.handleLine("CANCEL\t1")).toEqual({ _tag: "Abort", id: 1, line: undefined })
    expect(s.has(2)).toBe(true)
    expect(s.pendingCount).toBe(1)
  })
})
