// Issue 3, relay mode (the Director's wiring), one suite for Dovecot 2.3.19 and 2.4.1
// (auth-relay-23/-24.test.ts run it): Dovecot's own passdb (passwd-file, with proxy set by
// default_fields on 2.3 / fields { } on 2.4) authenticates; the login processes talk to
// doveroute's login relay (config/dovecot-<series>/95-doveroute-login-relay.conf: 2.3's
// imap-login/pop3-login sockets, 2.4's login_socket_path) and LMTP to its userdb relay
// (95-doveroute-userdb-relay.conf); doveroute relays to Dovecot's login/login and auth-master and
// adds the mapped backend. Two real backends on 127.0.0.2 / 127.0.0.3; which one served a login is
// read from its log (real_lip). On 2.4 it fails (does not skip) when the chroot is missing.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import path from "node:path"
import {
  doveadmFields, freePort, imapLogin, mappingRows, Pop3Client, settle, startDaemon,
  stopDovecots, usersFileContent
} from "@doveroute/testkit"
import type { Backend, Dovecot, DovecotVersion, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import {
  DAEMON_ENV, expectFirstLoginMapped, expectLmtpDelivered, expectMappedLogins, grepLines, seedStore, snippet
} from "./auth-fixtures.js"

const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }

/** What 2.3.19 and 2.4.1 log or answer differently. */
const QUIRKS = {
  "2.3": {
    proxyStarted: /proxy\(alice,127\.0\.0\.2:\d+\): Started proxying/,
    masterUser: /master in: USER\t\d+\tbob\tservice=lmtp/,
    masterLip: /\tlip=127\.0\.0\.3\t/
  },
  "2.4": {
    // 2.4 logs the host name with the IP: proxy(alice,backend1.test[127.0.0.2]:port)
    proxyStarted: /proxy\(alice,backend1\.test\[127\.0\.0\.2\]:\d+\): Started proxying/,
    masterUser: /master in: USER\s+\d+\s+bob\s+(service|protocol)=lmtp/,
    masterLip: /\slip=127\.0\.0\.3\s/
  }
} as const

/** The relay-mode suite on one Dovecot version. */
export const authRelaySuite = (v: DovecotVersion) => describe(`login relay and userdb relay on real Dovecot ${v.release}`, () => {
  const quirks = QUIRKS[v.series]
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let pop3Port: number
  let lmtpPort: number
  let db: string
  let loginSock: string
  let userdbSock: string

  beforeAll(async () => {
    tmp = v.makeTmp()
    db = tmp.hostPath(tmp.join("routes.db"))
    imapPort = await freePort()
    pop3Port = await freePort()
    lmtpPort = await freePort()
    const dir = tmp.join("proxy")
    const usersFile = path.join(dir, "users")
    const [be] = await Promise.all([v.startBackend(tmp, { users: USERS }), seedStore(db)])
    backend = be
    proxy = await v.startDovecot({
      dir,
      files: { [usersFile]: usersFileContent(USERS) },
      config: v.proxyConfig(
        { dir, imapPort, pop3Port, lmtpPort },
        snippet(v.series, "95-doveroute-login-relay.conf"),
        snippet(v.series, "95-doveroute-userdb-relay.conf"),
        v.passwdFilePassdb(usersFile, { proxy: "y" })
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }, { host: "127.0.0.1", port: pop3Port }, { host: "127.0.0.1", port: lmtpPort }]
    })
    // the relay sockets live in Dovecot's base_dir: start doveroute after Dovecot
    const run = proxy.hostPaths.baseDir // host path (doveroute runs on the host)
    loginSock = path.join(run, "login", "doveroute")
    userdbSock = path.join(run, "doveroute-userdb")
    daemon = await startDaemon({
      args: [
        "--store", `sqlite:${db}`, "--socket-mode", "0666", "--log-level", "debug",
        "--login-relay-socket", loginSock, "--dovecot-login-socket", path.join(run, "login", "login"),
        "--userdb-relay-socket", userdbSock, "--dovecot-userdb-socket", path.join(run, "auth-master"),
        "--port", `imap=${backend.imapPort}`, "--port", `pop3=${backend.pop3Port}`, "--port", `lmtp=${backend.lmtpPort}`
      ],
      env: { ...DAEMON_ENV },
      waitFor: [loginSock, userdbSock]
    })
  })

  afterAll(async () => {
    const code = await daemon?.stop()
    await stopDovecots([proxy, backend?.dovecot])
    await tmp?.cleanup()
    expect(code).toBe(0)
  })

  it("IMAP LOGIN checked by Dovecot's passwd-file lands on the mapped backend: alice 127.0.0.2, bob 127.0.0.3", async () => {
    await expectMappedLogins(imapPort, backend)
    expect(proxy.log()).toMatch(quirks.proxyStarted)
  })

  it("POP3 through the relay: bob lands on 127.0.0.3 (pop3 port added by the relay)", async () => {
    const c = await Pop3Client.connect("127.0.0.1", pop3Port)
    const r = await c.login("bob", "secret")
    expect(r.ok, c.transcript()).toBe(true)
    expect((await c.stat()).reply.ok, c.transcript()).toBe(true)
    await c.quit()
    await settle(() => backend.servedBy("bob", "pop3") === "127.0.0.3") // the backend logs the login a moment later
    expect(backend.servedBy("bob", "pop3")).toBe("127.0.0.3")
  })

  it("a wrong password fails in Dovecot's passdb without any route lookup; the right one then routes", async () => {
    const rowsBefore = await mappingRows(db)
    const bad = await imapLogin("127.0.0.1", imapPort, "carol", "wrong")
    expect(bad.login.status, bad.transcript).toBe("NO")
    expect(bad.login.text).not.toMatch(/UNAVAILABLE/)
    expect(await mappingRows(db)).toEqual(rowsBefore) // no row written for carol
    expect(daemon.logs()).not.toMatch(/user=carol\b/) // and no routing request at all
    expect(backend.logins("carol")).toHaveLength(0)
    await expectFirstLoginMapped(imapPort, backend, db, "carol")
    expect(grepLines(daemon.logs(), /message=routed/).join("\n")).toMatch(/user=carol\b/)
  })

  it("LMTP through the userdb relay: a message for bob is delivered by his backend 127.0.0.3 into his maildir", async () => {
    expect(backend.mailboxFiles("bob")).toEqual([])
    await expectLmtpDelivered(lmtpPort, backend, "bob", "relay test")
    // the proxy's LMTP connected to bob's backend address and the backend's lmtp port
    // the proxy sent it to bob's backend, and the backend saw the connection arrive on 127.0.0.3
    expect(proxy.log()).toMatch(new RegExp(`Sent message to <bob> at 127\\.0\\.0\\.3:${backend.lmtpPort}: 250`))
    expect(grepLines(backend.log(), quirks.masterUser).join("\n")).toMatch(quirks.masterLip)
  })

  it("doveadm through the relays: auth test -a <login relay> and auth lookup -a <userdb relay> show the route", async () => {
    const inner = proxy.paths.baseDir // doveadm's own path of the sockets (2.4: in the chroot)
    const t = await proxy.doveadm(["auth", "test", "-a", path.join(inner, "login", "doveroute"), "alice", "secret"])
    expect(t.code, t.stdout + t.stderr).toBe(0)
    expect(doveadmFields(t.stdout)).toEqual(expect.arrayContaining(["user=alice", "host=backend1.test", "hostip=127.0.0.2", "pass=secret"]))
    // 2.3.19 prints a bare `proxy`; 2.4.1 may print it with a value
    if (v.series === "2.3") expect(doveadmFields(t.stdout)).toContain("proxy")
    else expect(doveadmFields(t.stdout).some((f) => f === "proxy" || f.startsWith("proxy="))).toBe(true)
    const l = await proxy.doveadm(["auth", "lookup", "-a", path.join(inner, "doveroute-userdb"), "bob"])
    expect(l.code, l.stdout + l.stderr).toBe(0)
    expect(doveadmFields(l.stdout)).toEqual(expect.arrayContaining(["user=bob", "host=127.0.0.3"]))
  })
})
