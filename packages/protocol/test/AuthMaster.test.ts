import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { AuthMasterCodec } from "@doveroute/testkit"
import { allowedOnUserdbSocket, userdbRefusal } from "../src/AuthMaster.js"

const {
  decodeReply,
  decodeRequest,
  encodeClientVersion,
  encodeFail,
  encodeHandshake,
  encodeLookupRequest,
  encodeNotFound,
  encodePassReply,
  encodeUserReply
} = AuthMasterCodec
type Field = AuthMasterCodec.Field

describe("decodeRequest: captured lines", () => {
  // 2.3.19 names the service `service=`, 2.4.1 `protocol=`
  it.each([
    ["2.3.19 doveadm auth lookup", "PASS\t1\talice\tservice=doveadm\tdebug", "alice", "service"],
    ["2.4.1 doveadm auth lookup (protocol=)", "PASS\t1\tcarol\tprotocol=doveadm\tdebug", "carol", "protocol"]
  ])("%s", (_name, line, user, key) => {
    expect(decodeRequest(line)).toEqual({
      _tag: "Pass",
      id: 1,
      user,
      service: "doveadm",
      params: [{ key, value: "doveadm" }, { key: "debug", value: undefined }]
    })
  })

  it("2.4.1 LMTP proxy PASS lines", () => {
    expect(decodeRequest("VERSION\t1\t3")).toEqual({ _tag: "Version", major: 1, minor: 3 })
    const p = decodeRequest("PASS\t1\terin@example.org\tprotocol=lmtp\tlip=127.0.0.1\tlport=20125\trip=127.0.0.1\trport=49412")
    expect(p).toEqual({
      _tag: "Pass",
      id: 1,
      user: "erin@example.org",
      service: "lmtp",
      params: [
        { key: "protocol", value: "lmtp" },
        { key: "lip", value: "127.0.0.1" },
        { key: "lport", value: "20125" },
        { key: "rip", value: "127.0.0.1" },
        { key: "rport", value: "49412" }
      ]
    })
    const q = decodeRequest("PASS\t2\tdave\tprotocol=lmtp\tlip=127.0.0.1\tlport=20125\trip=127.0.0.1\trport=49412")
    expect(q._tag === "Pass" && [q.id, q.user]).toEqual([2, "dave"])
  })

  it("2.4.1 post-login REQUEST", () => {
    expect(decodeRequest("REQUEST\t1644167169\t328\t1\t669513f30ad082a7f790a4322d8b6352\tsession_pid=331\trequest_auth_token")).toEqual({
      _tag: "Request",
      id: 1644167169,
      clientPid: 328,
      clientRequestId: 1,
      cookie: "669513f30ad082a7f790a4322d8b6352",
      sessionPid: 331,
      requestAuthToken: true,
      params: [{ key: "session_pid", value: "331" }, { key: "request_auth_token", value: undefined }]
    })
  })

  it("USER, LIST, CACHE-FLUSH, CPID", () => {
    expect(decodeRequest("USER\t3\tjörg\tservice=imap")).toEqual({
      _tag: "User",
      id: 3,
      user: "jörg",
      service: "imap",
      params: [{ key: "service", value: "imap" }]
    })
    expect(decodeRequest("LIST\t4\tuser=a*\tservice=doveadm")).toEqual({
      _tag: "List",
      id: 4,
      userMask: "a*",
      params: [{ key: "user", value: "a*" }, { key: "service", value: "doveadm" }]
    })
    expect(decodeRequest("LIST\t5")).toEqual({ _tag: "List", id: 5, userMask: undefined, params: [] })
    expect(decodeRequest("CACHE-FLUSH\t6\talice\tbob")).toEqual({ _tag: "CacheFlush", id: 6, users: ["alice", "bob"] })
    expect(decodeRequest("CACHE-FLUSH\t7")).toEqual({ _tag: "CacheFlush", id: 7, users: [] })
    expect(decodeRequest("CPID\t4030")).toEqual({ _tag: "Cpid", pid: 4030 })
  })

  it("ids may be 0 on this protocol; escaped user names are unescaped", () => {
    const r = decodeRequest("PASS\t0\ta\x01tb\tservice=lmtp")
    expect(r._tag === "Pass" && [r.id, r.user]).toEqual([0, "a\tb"])
  })

  it("invalid requests", () => {
    const cases: Array<[string, string]> = [
      ["PASS\t1\talice", "PASS: request without service"],
      ["USER\t1\talice\tlip=1.2.3.4", "USER: request without service"],
      ["PASS\t1\talice\tservice=", "PASS: request without service"],
      ["PASS\t1", "PASS: missing user"],
      ["PASS\t1\t\tservice=imap", "PASS: missing user"],
      ["PASS\tx\talice\tservice=imap", "PASS: bad request id"],
      ["PASS\t4294967296\talice\tservice=imap", "PASS: bad request id"],
      ["LIST", "LIST: bad request id"],
      ["REQUEST\t1\t2\t3", "REQUEST: bad cookie"],
      ["REQUEST\t1\t2\t3\tnot-hex", "REQUEST: bad cookie"],
      ["REQUEST\t1\tx\t3\tab", "REQUEST: bad numbers"],
      ["CACHE-FLUSH", "CACHE-FLUSH: bad request id"],
      ["VERSION\t1", "VERSION: bad version numbers"],
      ["CPID", "CPID: bad pid"],
      ["AUTH\t1\tPLAIN\tservice=imap", 'unknown command "AUTH"'],
      ["", 'unknown command ""']
    ]
    for (const [line, reason] of cases) expect(decodeRequest(line), line).toEqual({ _tag: "Invalid", reason })
    expect(decodeRequest("PASS\t1\talice\tservice=imap\tx=" + "y".repeat(9000))).toEqual({ _tag: "Invalid", reason: "line longer than 8192 bytes" })
  })

  it("auth-userdb accepts only USER, PASS, LIST (and VERSION): the userdb relay's filter", () => {
    const allowed = ["VERSION\t1\t0", "PASS\t1\ta\tservice=lmtp", "USER\t1\ta\tservice=lmtp", "LIST\t1", "LIST"]
    expect(allowed.map((l) => userdbRefusal(Buffer.from(l)))).toEqual([undefined, undefined, undefined, undefined, undefined])
    expect(allowed.map((l) => allowedOnUserdbSocket(l.split("\t")[0]!))).toEqual([true, true, true, true, true])
    const refused = ["REQUEST\t1\t2\t3\tab", "CACHE-FLUSH\t1", "CPID\t5", "junk", "", "pass\t1", "PASSWORD_IS_NOT_A_COMMAND\t1"]
    expect(refused.map((l) => userdbRefusal(Buffer.from(l)))).toEqual([
      'command "REQUEST" is not served on auth-userdb',
      'command "CACHE-FLUSH" is not served on auth-userdb',
      'command "CPID" is not served on auth-userdb',
      'command "junk" is not served on auth-userdb',
      'command "" is not served on auth-userdb',
      'command "pass" is not served on auth-userdb',
      'command "PASSWORD_IS_NOT_A_CO" is not served on auth-userdb'
    ])
  })
})

describe("decodeReply: captured lines", () => {
  it("handshake", () => {
    expect(decodeReply("VERSION\t1\t3")).toEqual({ _tag: "Version", major: 1, minor: 3 })
    expect(decodeReply("SPID\t3934")).toEqual({ _tag: "Spid", pid: 3934 })
  })

  it("PASS replies captured from 2.3.19 / 2.4.1 (docs/protocols.md §5.2)", () => {
    expect(decodeReply("PASS\t1\tuser=alice\thostip=127.0.0.2\thost=backend1.test\tproxy")).toEqual({
      _tag: "Pass",
      id: 1,
      user: "alice",
      fields: [
        { key: "user", value: "alice" },
        { key: "hostip", value: "127.0.0.2" },
        { key: "host", value: "backend1.test" },
        { key: "proxy", value: undefined }
      ]
    })
    expect(decodeReply("PASS\t1\tuser=carol\tport=20144\thostip=127.0.0.1\thost=localhost\tproxy=yes")).toEqual({
      _tag: "Pass",
      id: 1,
      user: "carol",
      fields: [
        { key: "user", value: "carol" },
        { key: "port", value: "20144" },
        { key: "hostip", value: "127.0.0.1" },
        { key: "host", value: "localhost" },
        { key: "proxy", value: "yes" }
      ]
    })
    const lmtp = decodeReply("PASS\t1\tuser=erin@example.org\tproxy=y\tlip=127.0.0.1\tlport=20125")
    expect(lmtp._tag === "Pass" && [lmtp.id, lmtp.user, lmtp.fields.length]).toEqual([1, "erin@example.org", 4])
    expect(decodeReply("PASS\t1\tuser=alice\tproxy=y\thost=127.0.0.2\tport=25143")._tag).toBe("Pass")
  })

  it("USER, NOTFOUND, FAIL, LIST, DONE, OK", () => {
    expect(decodeReply("USER\t1644167169\talice\tuid=5000\tgid=5000\thome=/home/alice\tauth_mech=PLAIN\tauth_token=abc")).toEqual({
      _tag: "User",
      id: 1644167169,
      user: "alice",
      fields: [
        { key: "uid", value: "5000" },
        { key: "gid", value: "5000" },
        { key: "home", value: "/home/alice" },
        { key: "auth_mech", value: "PLAIN" },
        { key: "auth_token", value: "abc" }
      ]
    })
    expect(decodeReply("NOTFOUND\t2")).toEqual({ _tag: "NotFound", id: 2 })
    expect(decodeReply("FAIL\t3")).toEqual({ _tag: "Fail", id: 3, reason: undefined, fields: [] })
    expect(decodeReply("FAIL\t1\treason=Configured passdbs don't support credentials lookups")).toEqual({
      _tag: "Fail",
      id: 1,
      reason: "Configured passdbs don't support credentials lookups",
      fields: [{ key: "reason", value: "Configured passdbs don't support credentials lookups" }]
    })
    expect(decodeReply("LIST\t4\tbob")).toEqual({ _tag: "List", id: 4, user: "bob" })
    expect(decodeReply("DONE\t4\t")).toEqual({ _tag: "Done", id: 4, failed: false })
    expect(decodeReply("DONE\t4\tfail")).toEqual({ _tag: "Done", id: 4, failed: true })
    expect(decodeReply("OK\t5\t12")).toEqual({ _tag: "Ok", id: 5, count: 12 })
  })

  it("invalid replies", () => {
    expect(decodeReply("CUID\t2")).toEqual({ _tag: "Invalid", reason: 'unknown reply "CUID"' })
    expect(decodeReply("PASS\tx\tuser=a")).toEqual({ _tag: "Invalid", reason: "PASS: bad id" })
    expect(decodeReply("USER\t1")).toEqual({ _tag: "Invalid", reason: "USER: missing user" })
    expect(decodeReply("OK\t1")).toEqual({ _tag: "Invalid", reason: "OK: bad numbers" })
    expect(decodeReply("SPID")).toEqual({ _tag: "Invalid", reason: "SPID: bad pid" })
  })
})

describe("encoders", () => {
  it("server handshake, 2.3 and 2.4 forms", () => {
    expect(encodeHandshake(3934)).toBe("VERSION\t1\t1\nSPID\t3934\n")
    expect(encodeHandshake(3934, 3)).toBe("VERSION\t1\t3\nSPID\t3934\n")
    expect(() => encodeHandshake(-1)).toThrow(RangeError)
  })

  it("PASS reply keeps values (not booleanised) and must start with user=", () => {
    expect(encodePassReply(1, [["user", "alice"], ["proxy", "y"], ["host", "127.0.0.2"], ["port", "25143"]])).toBe(
      "PASS\t1\tuser=alice\tproxy=y\thost=127.0.0.2\tport=25143\n"
    )
    expect(encodePassReply(1, [["user", "alice"], ["hostip", "127.0.0.2"], ["host", "backend1.test"], ["proxy", undefined]])).toBe(
      "PASS\t1\tuser=alice\thostip=127.0.0.2\thost=backend1.test\tproxy\n"
    )
    expect(encodePassReply(0, [["user", "a\tb"]])).toBe("PASS\t0\tuser=a\x01tb\n")
    expect(() => encodePassReply(1, [["proxy", undefined]])).toThrow(RangeError)
    expect(() => encodePassReply(1, [])).toThrow(RangeError)
    expect(() => encodePassReply(-1, [["user", "a"]])).toThrow(RangeError)
  })

  it("USER, NOTFOUND, FAIL, client lines", () => {
    expect(encodeUserReply(7, "alice", [["uid", "5000"], ["home", "/home/a\tb"]])).toBe("USER\t7\talice\tuid=5000\thome=/home/a\x01tb\n")
    expect(encodeNotFound(2)).toBe("NOTFOUND\t2\n")
    expect(encodeFail(3)).toBe("FAIL\t3\n")
    expect(encodeFail(3, "temporary\tfailure")).toBe("FAIL\t3\treason=temporary\x01tfailure\n")
    expect(encodeClientVersion()).toBe("VERSION\t1\t0\n")
    expect(encodeClientVersion(3)).toBe("VERSION\t1\t3\n")
    expect(encodeLookupRequest("PASS", 1, "erin@example.org", [["protocol", "lmtp"], ["lip", "127.0.0.1"]])).toBe(
      "PASS\t1\terin@example.org\tprotocol=lmtp\tlip=127.0.0.1\n"
    )
  })

  it("PASS reply round trip (property)", () => {
    const key = fc.stringMatching(/^[a-z_]{1,12}$/)
    const value = fc.option(fc.string({ unit: "binary", maxLength: 30 }), { nil: undefined })
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.string({ unit: "binary", maxLength: 30 }), fc.array(fc.tuple(key, value), { maxLength: 8 }), (id, user, rest) => {
        const fields: Array<Field> = [["user", user], ...rest]
        const line = encodePassReply(id, fields)
        expect(line.endsWith("\n")).toBe(true)
        expect(line.slice(0, -1).includes("\n")).toBe(false)
        expect(decodeReply(line.slice(0, -1))).toEqual({
          _tag: "Pass",
          id,
          user,
          fields: fields.map(([k, v]) => ({ key: k, value: v }))
        })
      }),
      { numRuns: 3000 }
    )
  })

  it("lookup request round trip (property)", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
        fc.constantFrom("lmtp", "doveadm", "imap"),
        (id, user, svc) => {
          const line = encodeLookupRequest("USER", id, user, [["service", svc]]).slice(0, -1)
          expect(decodeRequest(line)).toEqual({ _tag: "User", id, user, service: svc, params: [{ key: "service", value: svc }] })
        }
      ),
      { numRuns: 2000 }
    )
  })
})
