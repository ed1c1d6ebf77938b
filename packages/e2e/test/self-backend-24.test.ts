// Issue 11 on real Dovecot 2.4.1 (chroot): a proxy whose OWN address is a backend never lets a
// login in without a password check. Same layout as self-backend-23: the proxy on 127.0.0.1:P, a
// real backend on 127.0.0.2:P, the store's backends `127.0.0.1` (the proxy by IP), `self.test`
// with hostip 127.0.0.1 (the proxy by name) and `127.0.0.2`. 2.4 has no passdb dict; doveroute
// answers lua/http-route.lua over HTTP:
// - lua/http-route.lua as the only passdb, doveroute on the shipped config/doveroute.json (proxy +
//   nopassword) plus an HTTP listener: the backend checks the password; a backend that is the
//   proxy itself is refused by Dovecot as a loop (2.4.1 compares hostip too), whatever the password;
// - the shipped config/dovecot-2.4/95-doveroute-http-chain.conf (passwd-file standing in for
//   PAM; doveroute with the default proxy_maybe, no nopassword): a wrong password never reaches
//   doveroute; the right one logs a user whose backend is the proxy in locally, with a userdb;
// - the standalone auth socket in nopassword mode: a user whose backend is the proxy gets temp_fail;
// and why the daemon refuses nopassword with proxy_maybe, on Dovecot alone: any password logs in.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  DOVECOT24_ROOT,
  freePort,
  imapLogin,
  makeChrootTempDir,
  mappedBackend,
  proxyConfig24,
  REPO_ROOT,
  requireDovecot24,
  runCli,
  seedSqliteStore,
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

const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }
const WRONG = "NOT-THE-PASSWORD"

const seed = (file: string) =>
  seedSqliteStore(file, {
    backends: [{ hostname: "127.0.0.1" }, { hostname: "self.test", hostip: "127.0.0.1" }, { hostname: "127.0.0.2" }],
    mappings: { alice: 1, carol: 2, bob: 3 }
  })

/** The chroot's `dovecot` group (its own /etc/group): the HTTP endpoint's socket group, as shipped. */
const CHROOT_DOVECOT_GID = String(
  readFileSync(path.join(DOVECOT24_ROOT, "etc", "group"), "utf8").split("\n").find((l) => l.startsWith("dovecot:"))?.split(":")[2]
)

/** Logins the proxy served itself (`Logged in: user=<u>`; proxied ones log "proxy(u,…)" instead). */
const localLogins = (log: string, user: string) => log.split("\n").filter((l) => l.includes(`Logged in: user=<${user}>`))

/** The shipped lua/http-route.lua copied into the chroot; its in-chroot path. */
const installRouteLua = (tmp: ChrootTempDir): string => {
  const lua = tmp.join("http-route.lua")
  copyFileSync(path.join(REPO_ROOT, "lua", "http-route.lua"), tmp.hostPath(lua))
  return lua
}

describe("2.4.1, http-route.lua as the only passdb, doveroute on the shipped config (proxy + nopassword): the proxy's own address is a backend", () => {
  let tmp: ChrootTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    port = await freePort("127.0.0.1", ["127.0.0.2"])
    const httpSock = tmp.join("http.sock")
    const db = tmp.hostPath(tmp.join("routes.db"))
    const [be] = await Promise.all([startBackend24(tmp, { users: USERS, listen: ["127.0.0.2"], imapPort: port }), seed(db)])
    backend = be
    // the shipped config with this run's store, sockets and backend port, plus the HTTP endpoint
    const shipped = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8")) as Record<string, unknown>
    const sock = tmp.hostPath(tmp.join("dict.sock"))
    const configFile = tmp.hostPath(tmp.join("doveroute.json"))
    writeFileSync(configFile, JSON.stringify({
      ...shipped,
      store: `sqlite:${db}`,
      dict: { ...(shipped["dict"] as object), socket: sock },
      // the endpoint as shipped (config/modes/http.json): a UNIX socket, 0660, group dovecot
      http: { listen: tmp.hostPath(httpSock), mode: "0660", group: CHROOT_DOVECOT_GID },
      extra_fields: [...(shipped["extra_fields"] as Array<string>), `port=${port}`]
    }))
    daemon = await startDaemon({ args: ["--config", configFile], waitFor: [sock, tmp.hostPath(httpSock)] })
    const dir = tmp.join("proxy")
    const lua = installRouteLua(tmp)
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort: port },
        `passdb route {\n  driver = lua\n  lua_file = ${lua}\n  lua_settings {\n    socket_path = ${httpSock}\n    route_url = http://localhost/route\n  }\n}`),
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    const [code] = await Promise.all([daemon?.stop(), stopDovecots([proxy, backend?.dovecot])])
    await tmp?.cleanup()
    expect(code).toBe(0)
  })

  it("backend = the proxy by IP or by host name + hostip: NO for a wrong and for the right password; Dovecot refuses the loop, no local login", async () => {
    for (const user of ["alice", "carol"]) {
      for (const pass of [WRONG, "secret"]) {
        const r = await imapLogin("127.0.0.1", port, user, pass)
        expect(r.login.status, r.transcript).toBe("NO")
      }
      expect(proxy.log()).toMatch(new RegExp(`proxy\\(${user}\\)?.*Proxying loops to itself|proxy\\(${user},[^)]*\\): Proxying loops to itself`))
      expect(localLogins(proxy.log(), user)).toEqual([])
      expect(backend.logins(user)).toHaveLength(0)
    }
  })

  it("a user on another backend: the backend refuses a wrong password and accepts the right one", async () => {
    const bad = await imapLogin("127.0.0.1", port, "bob", WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    expect(backend.logins("bob")).toHaveLength(0)
    const ok = await imapLogin("127.0.0.1", port, "bob", "secret", { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(ok.select?.status, ok.transcript).toBe("OK")
    expect(backend.servedBy("bob", "imap")).toBe("127.0.0.2")
    expect(localLogins(proxy.log(), "bob")).toEqual([])
  })

  it("the HTTP endpoint with nopassword and proxy_flag proxy_maybe does not start", async () => {
    const r = await runCli(["serve", "--http-listen", "/nonexistent/http.sock", "--store", "sqlite:/nonexistent/never.db", "--extra-field", "nopassword"])
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stderr).toMatch(/extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks/)
  })
})

describe("2.4.1, shipped chain (passwd-file first, then http-route.lua, proxy_maybe): the proxy's own address is a backend", () => {
  let tmp: ChrootTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number
  let db: string

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    port = await freePort("127.0.0.1", ["127.0.0.2"])
    const httpSock = tmp.join("http.sock")
    db = tmp.hostPath(tmp.join("routes.db"))
    const [be] = await Promise.all([startBackend24(tmp, { users: USERS, listen: ["127.0.0.2"], imapPort: port }), seed(db)])
    backend = be
    daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--http-listen", tmp.hostPath(httpSock), "--extra-field", `port=${port}`, "--log-level", "debug"],
      env: { DOVEROUTE_HTTP_GROUP: CHROOT_DOVECOT_GID },
      waitFor: [tmp.hostPath(httpSock)]
    })
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const lua = installRouteLua(tmp)
    const chain = readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-http-chain.conf"), "utf8")
      .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
      .replaceAll("/etc/dovecot/http-route.lua", lua)
      .replaceAll("socket_path = /run/doveroute/http.sock", `socket_path = ${httpSock}`)
    expect(chain).toContain("passwd_file_path")
    expect(chain).toContain(`socket_path = ${httpSock}`)
    // local logins: a static userdb, mail as vmail under dir/home
    const home = tmp.join("proxy-home")
    mkdirSync(tmp.hostPath(home), { recursive: true })
    chmodSync(tmp.hostPath(home), 0o1777)
    const local = `mail_driver = maildir\nmail_home = ${home}/%{user}\nmail_path = ~/Maildir\nmail_uid = vmail\nmail_gid = vmail\nfirst_valid_uid = 5000\n` +
      `userdb static {\n  fields {\n    uid = vmail\n    gid = vmail\n    home = ${home}/%{user}\n  }\n}`
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort: port, extra: local }, chain),
      files: { [users]: usersFileContent(USERS) },
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    const [code] = await Promise.all([daemon?.stop(), stopDovecots([proxy, backend?.dovecot])])
    await tmp?.cleanup()
    expect(code).toBe(0)
  })

  it("backend = the proxy: a wrong password gets NO and never reaches doveroute", async () => {
    for (const user of ["alice", "carol"]) {
      const r = await imapLogin("127.0.0.1", port, user, WRONG)
      expect(r.login.status, r.transcript).toBe("NO")
      expect(r.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
      expect(localLogins(proxy.log(), user)).toEqual([])
    }
    expect(daemon.logs()).not.toMatch(/user=(alice|carol)\b/)
  })

  it("backend = the proxy by IP or by name: the right password logs in locally (proxy_maybe), userdb and mailbox work", async () => {
    for (const user of ["alice", "carol"]) {
      const r = await imapLogin("127.0.0.1", port, user, "secret", { select: true })
      expect(r.login.status, r.transcript).toBe("OK")
      expect(r.select?.status, r.transcript).toBe("OK")
      expect(localLogins(proxy.log(), user)).toHaveLength(1)
      expect(backend.logins(user)).toHaveLength(0)
    }
  })

  it("a user on another backend is proxied after the proxy checked the password; an unknown user gets NO", async () => {
    const bad = await imapLogin("127.0.0.1", port, "bob", WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    const ok = await imapLogin("127.0.0.1", port, "bob", "secret", { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy("bob", "imap")).toBe("127.0.0.2")
    expect(localLogins(proxy.log(), "bob")).toEqual([])
    const zed = await imapLogin("127.0.0.1", port, "zed", "secret")
    expect(zed.login.status, zed.transcript).toBe("NO")
    expect(await mappedBackend(db, "zed")).toBeUndefined()
  })
})

describe("2.4.1, standalone auth socket (shipped 95-doveroute-auth.conf, auth_mode nopassword, proxy_maybe): the proxy's own address is a backend", () => {
  let tmp: ChrootTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    port = await freePort("127.0.0.1", ["127.0.0.2"])
    const db = tmp.hostPath(tmp.join("routes.db"))
    const sock = tmp.join("auth.sock")
    const [be] = await Promise.all([startBackend24(tmp, { users: USERS, listen: ["127.0.0.2"], imapPort: port }), seed(db)])
    backend = be
    daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--auth-socket", tmp.hostPath(sock), "--socket-mode", "0666", "--port", String(port)],
      env: { DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" },
      waitFor: [tmp.hostPath(sock)]
    })
    const dir = tmp.join("proxy")
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort: port },
        readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-auth.conf"), "utf8").replaceAll("/run/doveroute/auth.sock", sock),
        "passdb static {\n  password = internal-auth-should-never-be-used\n}"),
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    const [code] = await Promise.all([daemon?.stop(), stopDovecots([proxy, backend?.dovecot])])
    await tmp?.cleanup()
    expect(code).toBe(0)
  })

  it("backend = the proxy by IP or by name: a temporary failure for any password, never a login", async () => {
    for (const user of ["alice", "carol"]) {
      for (const pass of [WRONG, "secret"]) {
        const r = await imapLogin("127.0.0.1", port, user, pass)
        expect(r.login.status, r.transcript).toBe("NO")
        expect(r.login.text).toMatch(/UNAVAILABLE|Temporary/i)
      }
      expect(localLogins(proxy.log(), user)).toEqual([])
      expect(backend.logins(user)).toHaveLength(0)
    }
    expect(daemon.logs()).toMatch(/standalone auth socket cannot serve local logins/)
  })

  it("a user on another backend is proxied and the backend checks the password", async () => {
    const bad = await imapLogin("127.0.0.1", port, "bob", WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    const ok = await imapLogin("127.0.0.1", port, "bob", "secret", { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy("bob", "imap")).toBe("127.0.0.2")
  })
})

describe("2.4.1 itself: why doveroute refuses nopassword with proxy_maybe", () => {
  it("a passdb answering nopassword + proxy_maybe with the proxy's own address logs ANY password in locally", async () => {
    requireDovecot24()
    const tmp = makeChrootTempDir()
    let proxy: Dovecot | undefined
    try {
      const port = await freePort()
      const dir = tmp.join("proxy")
      const home = tmp.join("proxy-home")
      mkdirSync(tmp.hostPath(home), { recursive: true })
      chmodSync(tmp.hostPath(home), 0o1777)
      const local = `mail_driver = maildir\nmail_home = ${home}/%{user}\nmail_path = ~/Maildir\nmail_uid = vmail\nmail_gid = vmail\nfirst_valid_uid = 5000\n` +
        `userdb static {\n  fields {\n    uid = vmail\n    gid = vmail\n    home = ${home}/%{user}\n  }\n}`
      proxy = await startDovecot24({
        dir,
        // what a router's reply with nopassword and proxy_maybe amounts to, without doveroute
        config: proxyConfig24({ dir, imapPort: port, extra: local },
          `passdb static {\n  fields {\n    nopassword = yes\n    proxy_maybe = y\n    host = 127.0.0.1\n    port = ${port}\n  }\n}`),
        tcp: [{ host: "127.0.0.1", port }]
      })
      const r = await imapLogin("127.0.0.1", port, "alice", WRONG, { select: true })
      expect(r.login.status, r.transcript).toBe("OK")
      expect(localLogins(proxy.log(), "alice")).toHaveLength(1)
    } finally {
      await stopDovecots([proxy])
      await tmp.cleanup()
    }
  })
})
