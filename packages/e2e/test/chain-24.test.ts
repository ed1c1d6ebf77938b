// Issue 5, the documented 2.4 chain on real Dovecot 2.4.1 (chroot): an authenticating passdb
// (passwd-file standing in for PAM, `result_success = continue-ok`) and then lua/http-route.lua
// asking doveroute's HTTP endpoint (`skip = unauthenticated`, `noauthenticate`, `return-fail`),
// as shipped in config/dovecot-2.4/95-doveroute-http-chain.conf. Real IMAP logins through the
// proxy land on the mapped one of two real 2.4.1 backends; wrong passwords write no row.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { copyFileSync, readFileSync } from "node:fs"
import path from "node:path"
import {
  doveadmFields,
  freePort,
  imapLogin,
  makeChrootTempDir,
  mappedBackend,
  mappingRows,
  proxyConfig24,
  REPO_ROOT,
  requireDovecot24,
  sqlite,
  startBackend24,
  startDaemon,
  startDovecot24,
  stopDovecots,
  usersFileContent,
  type Backend,
  type ChrootTempDir,
  type Dovecot,
  type RunningDaemon
} from "@doveroute/testkit"
import { IP_OF, seedStore } from "./auth-fixtures.js"

/** The proxy's password file: the backends know the same users and passwords (they check again). */
const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }

describe("2.4.1 chain: passwd-file (continue-ok) → lua/http-route.lua → doveroute HTTP endpoint", () => {
  let tmp: ChrootTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let db: string

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    db = tmp.hostPath(tmp.join("routes.db"))
    const httpPort = await freePort()
    imapPort = await freePort()
    const [be] = await Promise.all([startBackend24(tmp, { users: USERS }), seedStore(db)])
    backend = be
    daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--http-listen", `127.0.0.1:${httpPort}`, "--extra-field", `port=${backend.imapPort}`, "--log-level", "debug"],
      waitForTcp: [{ host: "127.0.0.1", port: httpPort }]
    })
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const lua = tmp.join("http-route.lua")
    copyFileSync(path.join(REPO_ROOT, "lua", "http-route.lua"), tmp.hostPath(lua))
    // the shipped chain, with passwd-file standing in for PAM and this run's paths and port
    const chain = readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-http-chain.conf"), "utf8")
      .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
      .replaceAll("/etc/dovecot/http-route.lua", lua)
      .replaceAll("http://127.0.0.1:20180/route", `http://127.0.0.1:${httpPort}/route`)
    expect(chain).toContain("passwd_file_path")
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort }, chain),
      files: { [users]: usersFileContent(USERS) },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })

  afterAll(async () => {
    const [code] = await Promise.all([daemon?.stop(), stopDovecots([proxy, backend?.dovecot])])
    await tmp?.cleanup()
    expect(code).toBe(0)
  })

  it("the right password: alice and bob land on their mapped backends, a new user gets one row and lands on it", async () => {
    for (const [user, ip] of [["alice", "127.0.0.2"], ["bob", "127.0.0.3"]] as const) {
      const r = await imapLogin("127.0.0.1", imapPort, user, "secret", { select: true })
      expect(r.login.status, r.transcript).toBe("OK")
      expect(r.select?.status, r.transcript).toBe("OK")
      expect(backend.servedBy(user, "imap")).toBe(ip)
    }
    expect(await mappedBackend(db, "carol")).toBeUndefined()
    const c = await imapLogin("127.0.0.1", imapPort, "carol", "secret")
    expect(c.login.status, c.transcript).toBe("OK")
    const id = await mappedBackend(db, "carol")
    expect(id).toBeDefined()
    expect(backend.servedBy("carol", "imap")).toBe(IP_OF[id!])
    // host name and hostip, as the reply carried both
    expect(proxy.log()).toMatch(/proxy\(alice,backend1\.test\[127\.0\.0\.2\]:\d+\): Started proxying/)
  })

  it("doveadm auth test: the routing fields, no noauthenticate; noauthenticate in the last passdb works on 2.4", async () => {
    const r = await proxy.doveadm(["auth", "test", "alice", "secret"])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(doveadmFields(r.stdout).sort()).toEqual(
      ["user=alice", "proxy_maybe=y", "host=backend1.test", "hostip=127.0.0.2", `port=${backend.imapPort}`].sort()
    )
    expect(proxy.log()).toMatch(/Not performing authentication \(noauthenticate set\)|noauthenticate/)
  })

  it("a wrong password fails as a password failure; doveroute is not asked and writes no row", async () => {
    const before = await mappingRows(db)
    const r = await imapLogin("127.0.0.1", imapPort, "dave", "wrong")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(r.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
    const t = await proxy.doveadm(["auth", "test", "dave", "wrong"])
    expect(t.code).toBe(77)
    expect(t.stdout).not.toMatch(/code=temp_fail/)
    const unknown = await imapLogin("127.0.0.1", imapPort, "zed", "secret")
    expect(unknown.login.status, unknown.transcript).toBe("NO")
    expect(await mappingRows(db)).toEqual(before)
    expect(await mappedBackend(db, "dave")).toBeUndefined()
    expect(daemon.logs()).toMatch(/user=carol\b/) // routed users do show up in its debug log
    expect(daemon.logs()).not.toMatch(/user=(dave|zed)\b/)
    expect(backend.logins("dave")).toHaveLength(0)
  })

  it("a routing failure after the right password is a temporary failure, never an unrouted login", async () => {
    await sqlite(db, "UPDATE backends SET state = 1;")
    try {
      const r = await imapLogin("127.0.0.1", imapPort, "dave", "secret")
      expect(r.login.status, r.transcript).toBe("NO")
      expect(r.login.text).toMatch(/UNAVAILABLE|Temporary/i)
      expect(await mappedBackend(db, "dave")).toBeUndefined()
      expect(backend.logins("dave")).toHaveLength(0)
      const t = await proxy.doveadm(["auth", "test", "dave", "secret"])
      expect(t.code).toBe(75) // internal auth failure
    } finally {
      await sqlite(db, "UPDATE backends SET state = 0;")
    }
    const ok = await imapLogin("127.0.0.1", imapPort, "dave", "secret")
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy("dave", "imap")).toBe(IP_OF[(await mappedBackend(db, "dave"))!])
  })
})
