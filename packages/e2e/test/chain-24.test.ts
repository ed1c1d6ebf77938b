// Issue 5, the documented 2.4 chain on real Dovecot 2.4.1 (chroot): an authenticating passdb
// (passwd-file standing in for PAM, `result_success = continue-ok`) and then lua/http-route.lua
// asking doveroute's HTTP endpoint (`skip = unauthenticated`, `noauthenticate`, `return-fail`),
// as shipped in config/dovecot-2.4/95-doveroute-http-chain.conf. Real IMAP logins through the
// proxy land on the mapped one of two real 2.4.1 backends; wrong passwords write no row.
// Issue 11: the shipped chain reaches the endpoint over a UNIX socket (group dovecot, 0660) through
// 2.4.1's HTTP client (`proxy_socket_path`); the loopback TCP route works only with the shared
// token (token_file); a master password configured as an extra field never reaches Dovecot over
// HTTP; a real unprivileged user (nobody) gets neither a route nor a secret and writes no row.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chmodSync, chownSync, writeFileSync } from "node:fs"
import {
  doveadmFields, freePort, imapLogin, mappedBackend, mappingRows, runCommand, startDaemon, teardown, usersFileContent, v24
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import { expectFirstLoginMapped, expectMappedLogins, installLua, IP_OF, seedStore, expectRefusedBeforeRouting, expectTempFailWhileDown } from "./auth-fixtures.js"

/** The proxy's password file: the backends know the same users and passwords (they check again). */
const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }

/** A master password configured as an extra field: it must never go over HTTP. */
const MASTER = "Master-Pw-7c41e9"
/** The shared token of the TCP route. */
const TOKEN = "tok-5e0f2b8a9d314c6e"
/** A temp dir in the chroot, the seeded store and the two backends. */
const startRig = async () => {
  const tmp = v24.makeTmp()
  const db = tmp.hostPath(tmp.join("routes.db"))
  const [backend] = await Promise.all([v24.startBackend(tmp, { users: USERS }), seedStore(db)])
  return { tmp, db, backend }
}

/**
 * The proxy on `imapPort` running the shipped 2.4 chain with passwd-file standing in for PAM and
 * lua/http-route.lua installed in the temp dir; `edit` adapts the chain to the run (and checks it).
 */
const startChainProxy = (tmp: VersionTempDir, imapPort: number, edit: (chain: string) => string): Promise<Dovecot> => {
  const dir = tmp.join("proxy")
  const users = tmp.join("proxy-users")
  const chain = edit(v24.shipped("95-doveroute-http-chain.conf")
    .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
    .replaceAll("/etc/dovecot/http-route.lua", installLua(tmp, "http-route.lua")))
  return v24.startDovecot({
    dir,
    config: v24.proxyConfig({ dir, imapPort }, chain),
    files: { [users]: usersFileContent(USERS) },
    tcp: [{ host: "127.0.0.1", port: imapPort }]
  })
}

/**
 * GET `target` (a TCP URL, or a path on `socketPath`) as the real user `user` (runuser + node):
 * `"<status> <body>"` or `"ERR <code>"`.
 */
export const getAs = async (user: string, target: string, o: { readonly socketPath?: string; readonly token?: string } = {}): Promise<string> => {
  const script = `const http=require("http");const o=${JSON.stringify(o.socketPath ? { socketPath: o.socketPath, path: target } : {})};` +
    `const h=${JSON.stringify(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {})};` +
    `const req=o.socketPath?http.request({...o,headers:h}):http.request(${JSON.stringify(target)},{headers:h});` +
    `req.on("response",(r)=>{let b="";r.on("data",(d)=>b+=d);r.on("end",()=>{console.log(r.statusCode+" "+b.trim());process.exit(0)})});` +
    `req.on("error",(e)=>{console.log("ERR "+e.code);process.exit(0)});req.end()`
  const r = await runCommand("runuser", ["-u", user, "--", process.execPath, "-e", script], { timeoutMs: 15_000 })
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim()
}

describe("2.4.1 chain: passwd-file (continue-ok) → lua/http-route.lua → doveroute HTTP endpoint", () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let db: string
  let sock: string
  let dovecotGid: number // the chroot's dovecot group (its auth process connects to the socket)

  beforeAll(async () => {
    ;({ tmp, db, backend } = await startRig())
    dovecotGid = await v24.gid("dovecot")
    sock = tmp.join("http.sock")
    imapPort = await freePort()
    // the endpoint on a UNIX socket for the chroot's dovecot group, as the shipped chain expects
    const config = tmp.hostPath(tmp.join("doveroute.json"))
    writeFileSync(config, JSON.stringify({ http: { listen: tmp.hostPath(sock), group: String(dovecotGid), mode: "0660" } }), { mode: 0o600 })
    daemon = await startDaemon({
      args: ["--config", config, "--store", `sqlite:${db}`, "--log-level", "debug"],
      env: { DOVEROUTE_EXTRA_FIELDS: `port=${backend.imapPort},password=${MASTER}` },
      waitFor: [tmp.hostPath(sock)]
    })
    // the shipped chain with this run's socket path
    proxy = await startChainProxy(tmp, imapPort, (chain) => {
      const edited = chain.replaceAll("/run/doveroute/http.sock", sock)
      expect(edited).toContain("passwd_file_path")
      expect(edited).toContain(`socket_path = ${sock}`)
      return edited
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon], [proxy, backend?.dovecot], tmp)).toEqual([0])
  })

  it("the socket is 0660 for the dovecot group; a local user (nobody) cannot connect, gets no route and writes no row", async () => {
    const host = tmp.hostPath(sock)
    const r = await runCommand("stat", ["-c", "%a %g", host])
    expect(r.stdout.trim()).toBe(`660 ${dovecotGid}`)
    const before = await mappingRows(db)
    expect(await getAs("nobody", "/route?user=mallory&protocol=imap", { socketPath: host })).toBe("ERR EACCES")
    expect(await getAs("nobody", "http://localhost/route?user=alice", { socketPath: host })).toBe("ERR EACCES")
    expect(await mappingRows(db)).toEqual(before)
    expect(await mappedBackend(db, "mallory")).toBeUndefined()
  })

  it("the right password: alice and bob land on their mapped backends, a new user gets one row and lands on it", async () => {
    await expectMappedLogins(imapPort, backend)
    expect(await mappedBackend(db, "carol")).toBeUndefined()
    await expectFirstLoginMapped(imapPort, backend, db, "carol")
    // host name and hostip, as the reply carried both
    expect(proxy.log()).toMatch(/proxy\(alice,backend1\.test\[127\.0\.0\.2\]:\d+\): Started proxying/)
  })

  it("doveadm auth test: the routing fields, no noauthenticate; noauthenticate in the last passdb works on 2.4", async () => {
    const r = await proxy.doveadm(["auth", "test", "alice", "secret"])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(doveadmFields(r.stdout).sort()).toEqual(
      ["user=alice", "proxy_maybe=y", "host=backend1.test", "hostip=127.0.0.2", `port=${backend.imapPort}`].sort()
    )
    // the master password configured as an extra field never went over HTTP
    expect(r.stdout + proxy.log() + daemon.logs()).not.toContain(MASTER)
    expect(daemon.logs()).toMatch(/secret extra fields are not sent over HTTP/)
    expect(proxy.log()).toMatch(/Not performing authentication \(noauthenticate set\)|noauthenticate/)
  })

  it("a wrong password fails as a password failure; doveroute is not asked and writes no row", async () => {
    await expectRefusedBeforeRouting({ imapPort, db, daemon, backend }, async () => {
      const t = await proxy.doveadm(["auth", "test", "dave", "wrong"])
      expect(t.code).toBe(77)
      expect(t.stdout).not.toMatch(/code=temp_fail/)
    })
  })

  it("a routing failure after the right password is a temporary failure, never an unrouted login", async () => {
    await expectTempFailWhileDown({ imapPort, db, backend }, async () => {
      const t = await proxy.doveadm(["auth", "test", "dave", "secret"])
      expect(t.code).toBe(75) // internal auth failure
    })
    const ok = await imapLogin("127.0.0.1", imapPort, "dave", "secret")
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy("dave", "imap")).toBe(IP_OF[(await mappedBackend(db, "dave"))!])
  })
})

describe("2.4.1 chain over loopback TCP: only with the shared token (issue 11)", () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let httpPort: number
  let db: string

  beforeAll(async () => {
    ;({ tmp, db, backend } = await startRig())
    httpPort = await freePort()
    imapPort = await freePort()
    // doveroute reads the token from a 0600 file; Dovecot's auth process (user dovecot) from a
    // root:dovecot 0640 copy
    const daemonToken = tmp.hostPath(tmp.join("daemon.token"))
    writeFileSync(daemonToken, TOKEN + "\n", { mode: 0o600 })
    const luaToken = tmp.join("dovecot.token")
    writeFileSync(tmp.hostPath(luaToken), TOKEN + "\n")
    chownSync(tmp.hostPath(luaToken), 0, await v24.gid("dovecot"))
    chmodSync(tmp.hostPath(luaToken), 0o640)
    daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--http-listen", `127.0.0.1:${httpPort}`, "--log-level", "debug"],
      env: { DOVEROUTE_HTTP_TOKEN_FILE: daemonToken, DOVEROUTE_EXTRA_FIELDS: `port=${backend.imapPort},password=${MASTER}` },
      waitForTcp: [{ host: "127.0.0.1", port: httpPort }]
    })
    // the TCP variant the shipped chain describes: route_url on loopback, token_file for socket_path
    proxy = await startChainProxy(tmp, imapPort, (chain) => {
      const edited = chain
        .replace("socket_path = /run/doveroute/http.sock", `token_file = ${luaToken}`)
        .replace("route_url = http://localhost/route", `route_url = http://127.0.0.1:${httpPort}/route`)
        // the password Dovecot logs in to the backend with, from Dovecot's own config (here the
        // users' password, so the backends accept it)
        .replace("    noauthenticate = yes\n", "    noauthenticate = yes\n    pass = secret\n")
      expect(edited).toContain(`token_file = ${luaToken}`)
      expect(edited).toContain("pass = secret")
      return edited
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon], [proxy, backend?.dovecot], tmp)).toEqual([0])
  })

  it("Dovecot sends the token: a first login gets one row and lands on it; no password field over HTTP", async () => {
    await expectFirstLoginMapped(imapPort, backend, db, "carol", "secret", { select: true })
    const t = await proxy.doveadm(["auth", "test", "alice", "secret"])
    expect(t.code, t.stdout + t.stderr).toBe(0)
    expect(doveadmFields(t.stdout)).toContain("host=backend1.test")
    // a password field comes from the passdb's fields { } block, never over HTTP
    expect(doveadmFields(t.stdout)).toContain("pass=secret")
    expect(doveadmFields(t.stdout).some((f) => f.startsWith("password="))).toBe(false)
    expect(t.stdout + proxy.log() + daemon.logs()).not.toContain(MASTER)
    expect(proxy.log() + daemon.logs()).not.toContain(TOKEN)
  })

  it("a local user (nobody) without the token: 401, with a wrong one: 403; no route, no secret, no row", async () => {
    const before = await mappingRows(db)
    const url = (u: string) => `http://127.0.0.1:${httpPort}/route?user=${u}&protocol=imap`
    const none = await getAs("nobody", url("mallory"))
    expect(none).toMatch(/^401 /)
    const wrong = await getAs("nobody", url("mallory2"), { token: TOKEN.slice(0, -1) + "x" })
    expect(wrong).toMatch(/^403 /)
    const known = await getAs("nobody", url("alice"))
    expect(known).toMatch(/^401 /)
    for (const reply of [none, wrong, known]) {
      expect(reply).not.toMatch(/host=|backend1|127\.0\.0\.[23]/)
      expect(reply).not.toContain(MASTER)
    }
    expect(await mappingRows(db)).toEqual(before)
    expect(await mappedBackend(db, "mallory")).toBeUndefined()
    expect(await mappedBackend(db, "mallory2")).toBeUndefined()
    // the right token (what Dovecot holds) gets the routing fields and still no password
    const ok = await getAs("nobody", url("alice"), { token: TOKEN })
    expect(ok).toMatch(/^200 proxy_maybe=y\thost=backend1\.test\thostip=127\.0\.0\.2\tport=\d+$/)
    expect(ok).not.toContain(MASTER)
    expect(daemon.logs()).toMatch(/request without the token refused/)
    expect(daemon.logs()).toMatch(/wrong token refused/)
  })
})
