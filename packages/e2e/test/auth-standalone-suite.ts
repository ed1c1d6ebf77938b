// Issue 3, standalone mode, one suite for Dovecot 2.3.19 and 2.4.1 (auth-standalone-23/-24.test.ts
// run it): the login processes point at doveroute's auth-client socket
// (config/dovecot-<series>/95-doveroute-auth.conf), doveroute checks the master password and
// answers "proxy to <mapped backend>"; two real backends on 127.0.0.2 / 127.0.0.3. Which backend
// served a login is read from the backend's own log (real_lip). On 2.4 it fails (does not skip)
// when the chroot is missing.
// Issue 11: the socket as shipped (config/modes/auth.json): 0660, group dovenull (on 2.4 the
// chroot's dovenull) — the login processes get in, other local users (nobody) do not.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  doveadmFields, freePort, ImapClient, imapLogin, mappedBackend, Pop3Client, settle, startDaemon, teardown
} from "@doveroute/testkit"
import type { Backend, Dovecot, DovecotVersion, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import { statSync } from "node:fs"
import { DAEMON_ENV, expectFirstLoginMapped, expectMappedLogins, seedStore, snippet } from "./auth-fixtures.js"
import { talkAs } from "./systemd-support.js"

const MASTER = "secret" // the backends' users all have this password too

/**
 * doveroute's `auth.group` for the login processes' group: on 2.3 the name as shipped
 * (config/modes/auth.json); on 2.4 the chroot's gid, which the host may not know by that name.
 */
const authGroup = (v: DovecotVersion, gid: number): string => (v.series === "2.3" ? "dovenull" : String(gid))

/** The standalone-mode suite on one Dovecot version. */
export const authStandaloneSuite = (v: DovecotVersion) => describe(`standalone auth socket on real Dovecot ${v.release}`, () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let pop3Port: number
  let db: string
  let sock: string // Dovecot's path (2.4: in the chroot; what Dovecot and doveadm see)
  let hostSock: string // the same socket on the host (where doveroute listens)
  let dovenullGid: number // the login processes' group (2.4: the chroot's own /etc/group)

  beforeAll(async () => {
    tmp = v.makeTmp()
    dovenullGid = await v.gid("dovenull")
    db = tmp.hostPath(tmp.join("routes.db"))
    sock = tmp.join("auth.sock")
    hostSock = tmp.hostPath(sock)
    imapPort = await freePort()
    pop3Port = await freePort()
    const [be] = await Promise.all([v.startBackend(tmp), seedStore(db)])
    backend = be
    daemon = await startDaemon({
      args: [
        "--store", `sqlite:${db}`, "--auth-socket", hostSock, "--socket-mode", "0660",
        "--port", String(backend.imapPort), "--port", `pop3=${backend.pop3Port}`
      ],
      env: { ...DAEMON_ENV, DOVEROUTE_AUTH_PASSWORD: MASTER, DOVEROUTE_AUTH_GROUP: authGroup(v, dovenullGid) },
      waitFor: [hostSock]
    })
    const dir = tmp.join("proxy")
    proxy = await v.startDovecot({
      dir,
      config: v.proxyConfig(
        { dir, imapPort, pop3Port },
        snippet(v.series, "95-doveroute-auth.conf", sock),
        v.staticPassdb("internal-auth-should-never-be-used")
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }, { host: "127.0.0.1", port: pop3Port }]
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon], [proxy, backend?.dovecot], tmp)).toEqual([0])
  })

  it("the socket is 0660, group dovenull (config/modes/auth.json): the login processes get in (the logins below); nobody gets EACCES", async () => {
    const st = statSync(hostSock)
    expect([(st.mode & 0o777).toString(8), st.gid]).toEqual(["660", dovenullGid])
    expect(await talkAs("nobody", hostSock, undefined)).toBe("EACCES")
  })

  it("IMAP LOGIN: alice lands on 127.0.0.2 and bob on 127.0.0.3, their mapped backends", async () => {
    await expectMappedLogins(imapPort, backend, MASTER)
    await settle(() => /proxy\(bob,127\.0\.0\.3:\d+\): Started proxying/.test(proxy.log()))
    expect(proxy.log()).toMatch(/proxy\(alice,127\.0\.0\.2:\d+\): Started proxying/)
    expect(proxy.log()).toMatch(/proxy\(bob,127\.0\.0\.3:\d+\): Started proxying/)
  })

  it("AUTHENTICATE PLAIN without SASL-IR (a CONT round trip) reaches the mapped backend", async () => {
    const c = await ImapClient.connect("127.0.0.1", imapPort)
    const r = await c.authenticatePlain("bob", MASTER, { saslIr: false })
    expect(r.status, c.transcript()).toBe("OK")
    await c.logout()
    expect(backend.logins("bob", "imap").at(-1)?.backendIp).toBe("127.0.0.3")
  })

  it("POP3 USER/PASS: bob lands on 127.0.0.3, alice on 127.0.0.2 (pop3 port from --port pop3=…)", async () => {
    for (const [user, ip] of [["bob", "127.0.0.3"], ["alice", "127.0.0.2"]] as const) {
      const c = await Pop3Client.connect("127.0.0.1", pop3Port)
      const r = await c.login(user, MASTER)
      expect(r.ok, c.transcript()).toBe(true)
      expect((await c.stat()).reply.ok, c.transcript()).toBe(true)
      await c.quit()
      await settle(() => backend.servedBy(user, "pop3") === ip) // the backend logs the login a moment later
      expect(backend.servedBy(user, "pop3")).toBe(ip)
    }
  })

  it("a new user gets one row on the first login and lands on that backend", async () => {
    expect(await mappedBackend(db, "carol")).toBeUndefined()
    await expectFirstLoginMapped(imapPort, backend, db, "carol", MASTER)
  })

  it("doveadm auth test -a <doveroute socket> prints user, bare proxy, IP host, port and pass", async () => {
    const r = await proxy.doveadm(["auth", "test", "-a", sock, "alice", MASTER])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/passdb: alice auth succeeded/)
    expect(doveadmFields(r.stdout)).toEqual(["user=alice", "proxy", "host=127.0.0.2", `port=${backend.imapPort}`, `pass=${MASTER}`])
    const pop = await proxy.doveadm(["auth", "test", "-a", sock, "-x", "service=pop3", "bob", MASTER])
    expect(doveadmFields(pop.stdout)).toEqual(["user=bob", "proxy", "host=127.0.0.3", `port=${backend.pop3Port}`, `pass=${MASTER}`])
  })

  it("a wrong master password fails: IMAP NO, doveadm rc 77, nothing reaches a backend, no row written", async () => {
    const before = backend.logins("dave").length
    const r = await imapLogin("127.0.0.1", imapPort, "dave", "wrong")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(r.login.text).not.toMatch(/UNAVAILABLE/) // a password failure, not a temporary one
    const t = await proxy.doveadm(["auth", "test", "-a", sock, "dave", "wrong"])
    expect(t.code, t.stdout + t.stderr).toBe(77)
    expect(t.stdout).toMatch(/auth failed/)
    expect(backend.logins("dave")).toHaveLength(before)
    expect(await mappedBackend(db, "dave")).toBeUndefined()
    expect(daemon.logs()).not.toContain("wrong") // typed passwords never logged
  })
})
