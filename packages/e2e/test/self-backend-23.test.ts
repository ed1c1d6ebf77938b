// Issue 11 on real Dovecot 2.3.19: a proxy whose OWN address is a backend never lets a login in
// without a password check; the layout and the suites both versions share are in
// self-backend-suite.ts. Both shipped setups run with the shipped files (only paths and the
// port changed):
// - the default: config/doveroute.json (proxy_flag proxy + nopassword) behind
//   config/dovecot-2.3/95-doveroute-dict.conf: the backend checks the password, and a backend
//   that is the proxy itself is refused by Dovecot as a loop, whatever the password;
// - the chain: config/dovecot-2.3/95-doveroute-dict-chain.conf (passwd-file standing in for PAM,
//   doveroute with the default proxy_maybe and no nopassword): the proxy checks the password
//   first, and the right password logs a user whose backend is the proxy in locally, with a
//   working userdb.
// - the standalone auth socket in nopassword mode: a user whose backend is the proxy gets temp_fail;
// - lua/director.lua: nopassword works with proxy_flag = proxy and stops the script otherwise.
// And the daemon refuses to start on the shipped config turned unsafe (proxy_flag proxy_maybe); a
// last test shows why, on Dovecot alone: nopassword + proxy_maybe to itself admits any password.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { existsSync, mkdirSync, chmodSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  freePort, imapLogin, makeTempDir, proxyConfig23, REPO_ROOT, runCli, startDaemon, startDovecot23,
  stopDovecots, teardown, usersFileContent, v23
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import {
  expectBackendServesBob, localLoginWithAnyPassword, proxyMaybeLoopSuite, seed, selfBackendSuites, startBase, USERS, WRONG
} from "./self-backend-suite.js"

const shipped = v23.shipped
const localLogins = v23.localLogins

/** The shipped config/doveroute.json with this run's store, dict socket and backend port. */
const shippedDaemonConfig = (file: string, store: string, sock: string, port: number, over: Record<string, unknown> = {}) => {
  const conf = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8")) as Record<string, unknown>
  const dict = conf["dict"] as Record<string, unknown>
  writeFileSync(file, JSON.stringify({
    ...conf,
    store,
    dict: { ...dict, socket: sock },
    extra_fields: [...(conf["extra_fields"] as Array<string>), `port=${port}`],
    ...over
  }, null, 2))
  return file
}

describe("2.3.19, shipped default (proxy + nopassword, one dict passdb): the proxy's own address is a backend", () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number
  let store: string
  let configFile: string

  beforeAll(async () => {
    const base = await startBase(v23)
    ;({ tmp, port, backend } = base)
    store = `sqlite:${base.db}`
    const sock = tmp.join("dict.sock")
    configFile = shippedDaemonConfig(tmp.join("doveroute.json"), store, sock, port)
    daemon = await startDaemon({ args: ["--config", configFile], waitFor: [sock] })
    const dir = tmp.join("proxy")
    const dictConf = tmp.join("doveroute-dict.conf.ext")
    proxy = await startDovecot23({
      dir,
      // the proxy trusts its own network, as backends trust their proxies: that makes the proxy
      // TTL (x-proxy-ttl) count down on a loop through a host name
      config: proxyConfig23({ dir, imapPort: port, trustedNetworks: "127.0.0.0/8" },
        shipped("95-doveroute-dict.conf").replace("/etc/dovecot/doveroute-dict.conf.ext", dictConf)),
      files: { [dictConf]: shipped("doveroute-dict.conf.ext").replace("/run/doveroute/dict.sock", sock) },
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon], [proxy, backend?.dovecot], tmp)).toEqual([0])
  })

  it("the shipped config answers proxy (not proxy_maybe) with nopassword", async () => {
    const r = await runCli(["lookup", "alice", "--config", configFile, "--json"])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).fields).toEqual({ proxy: "y", host: "127.0.0.1", nopassword: true, port: String(port) })
  })

  it("backend = the proxy by IP: a wrong password and the right one both get NO; Dovecot refuses the loop, no local login", async () => {
    for (const pass of [WRONG, "secret"]) {
      const r = await imapLogin("127.0.0.1", port, "alice", pass)
      expect(r.login.status, r.transcript).toBe("NO")
    }
    expect(proxy.log()).toMatch(/proxy\(alice\): Proxying loops to itself/)
    expect(localLogins(proxy.log(), "alice")).toEqual([])
    expect(backend.logins("alice")).toHaveLength(0)
  })

  it("backend = the proxy by host name + hostip: NO for any password; the proxy TTL ends the loop, no local login", async () => {
    for (const pass of [WRONG, "secret"]) {
      const r = await imapLogin("127.0.0.1", port, "carol", pass, { timeoutMs: 20_000 })
      expect(r.login.status, r.transcript).toBe("NO")
    }
    expect(proxy.log()).toMatch(/TTL reached zero - proxies appear to be looping/)
    expect(localLogins(proxy.log(), "carol")).toEqual([])
    expect(backend.logins("carol")).toHaveLength(0)
  })

  it("a user on another backend: the backend refuses a wrong password and accepts the right one", async () => {
    await expectBackendServesBob(port, backend)
  })

  it("the same shipped config with proxy_flag proxy_maybe does not start: one line naming the risk and the fixes", async () => {
    const sock = tmp.join("unsafe.sock")
    const unsafe = shippedDaemonConfig(tmp.join("unsafe.json"), store, sock, port, { proxy_flag: "proxy_maybe" })
    for (const args of [["serve", "--config", unsafe], ["serve", "--config", configFile, "--proxy-flag", "proxy_maybe", "--dict-socket", sock]]) {
      const r = await runCli(args)
      expect(r.code, r.stdout + r.stderr).toBe(1)
      const lines = r.stderr.split("\n").filter((l) => l.includes("nopassword"))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks: a user whose backend is this Dovecot server logs in locally with any password/)
      expect(lines[0]).toMatch(/fix: proxy_flag proxy .*95-doveroute-dict-chain\.conf/)
      expect(existsSync(sock)).toBe(false)
    }
    // admin commands resolve the same settings and refuse the same way
    const look = await runCli(["lookup", "alice", "--config", unsafe])
    expect(look.code).toBe(1)
    expect(look.stderr).toMatch(/admits logins no one checks/)
  })

  it("proxy_flag proxy with proxy_maybe as an extra field does not start: a reserved routing field, from the file or a flag", async () => {
    const sock = tmp.join("reserved.sock")
    const conf = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>
    const file = tmp.join("reserved.json")
    writeFileSync(file, JSON.stringify({ ...conf, dict: { ...(conf["dict"] as object), socket: sock }, proxy_flag: "proxy", extra_fields: ["nopassword", "proxy_maybe", `port=${port}`] }))
    for (const args of [["serve", "--config", file], ["serve", "--config", configFile, "--extra-field", "proxy_maybe", "--dict-socket", sock]]) {
      const r = await runCli(args)
      expect(r.code, r.stdout + r.stderr).toBe(1)
      expect(r.stderr).toMatch(/invalid extra field "proxy_maybe": reserved/)
      expect(existsSync(sock)).toBe(false)
    }
  })
})

describe("2.3.19, standalone auth socket with proxy_flag proxy: the proxy's own address is a backend", () => {
  it("doveroute answers proxy to the proxy itself and Dovecot refuses the loop: NO for any password, no local login", async () => {
    const tmp = makeTempDir()
    let proxy: Dovecot | undefined
    let daemon: RunningDaemon | undefined
    try {
      const port = await freePort()
      const db = tmp.join("routes.db")
      const sock = tmp.join("auth.sock")
      await seed(db)
      daemon = await startDaemon({
        args: ["--store", `sqlite:${db}`, "--auth-socket", sock, "--socket-mode", "0666", "--port", String(port), "--proxy-flag", "proxy"],
        env: { DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" },
        waitFor: [sock]
      })
      const dir = tmp.join("proxy")
      proxy = await startDovecot23({
        dir,
        config: proxyConfig23({ dir, imapPort: port },
          shipped("95-doveroute-auth.conf").replaceAll("/run/doveroute/auth.sock", sock),
          "passdb {\n  driver = static\n  args = password=internal-auth-should-never-be-used\n}"),
        tcp: [{ host: "127.0.0.1", port }]
      })
      for (const pass of [WRONG, "secret"]) {
        const r = await imapLogin("127.0.0.1", port, "alice", pass)
        expect(r.login.status, r.transcript).toBe("NO")
      }
      expect(proxy.log()).toMatch(/proxy\(alice\): Proxying loops to itself/)
      expect(localLogins(proxy.log(), "alice")).toEqual([])
    } finally {
      expect(await teardown([daemon], [proxy], tmp)).toEqual([0])
    }
  })
})

describe("2.3.19, lua/director.lua as the only passdb: nopassword needs proxy_flag = proxy there too", () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let unsafe: Dovecot | undefined
  let reserved: Dovecot | undefined
  let port: number
  let lua: string

  beforeAll(async () => {
    const base = await startBase(v23)
    ;({ tmp, port, backend } = base)
    const db = base.db
    chmodSync(tmp.path, 0o755)
    lua = tmp.join("lua")
    mkdirSync(lua, { recursive: true })
    for (const f of ["director.lua", "director-core.lua"]) writeFileSync(path.join(lua, f), readFileSync(path.join(REPO_ROOT, "lua", f)))
    // a second name for the same script reads its own settings file (lua/README.md)
    writeFileSync(path.join(lua, "director-unsafe.lua"), readFileSync(path.join(REPO_ROOT, "lua", "director.lua")))
    writeFileSync(path.join(lua, "director-reserved.lua"), readFileSync(path.join(REPO_ROOT, "lua", "director.lua")))
    const common = `driver = SQLite3\ndatabase = ${db}\nextra_fields = "nopassword port=${port}"\n`
    const dir = tmp.join("proxy")
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort: port, trustedNetworks: "127.0.0.0/8" },
        `passdb {\n  driver = lua\n  args = file=${lua}/director.lua\n}`),
      files: {
        [path.join(lua, "director.conf")]: common + "proxy_flag = proxy\n",
        [path.join(lua, "director-unsafe.conf")]: common,
        // proxy_maybe as an extra field beside proxy_flag = proxy: Dovecot would act on proxy_maybe
        [path.join(lua, "director-reserved.conf")]: `driver = SQLite3\ndatabase = ${db}\nextra_fields = "nopassword proxy_maybe port=${port}"\nproxy_flag = proxy\n`
      },
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    await stopDovecots([proxy, unsafe, reserved, backend?.dovecot])
    await tmp?.cleanup()
  })

  /**
   * A proxy whose only passdb is lua/director-<name>.lua (its own settings file): the script
   * refuses to start, so doveadm auth test fails and an IMAP login gets NO (or, the auth process
   * having died at start, a BYE from the login process). Resolves with the proxy, to read its log.
   */
  const startRefusedScript = async (name: string): Promise<Dovecot> => {
    const imapPort = await freePort()
    const dir = tmp.join(`proxy-${name}`)
    const proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort, instanceName: `dvr-${name}` }, `passdb {\n  driver = lua\n  args = file=${lua}/director-${name}.lua\n}`),
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
    const t = await proxy.doveadm(["auth", "test", "alice", WRONG])
    expect(t.code, t.stdout + t.stderr).not.toBe(0)
    const r = await imapLogin("127.0.0.1", imapPort, "alice", WRONG).then((x) => x.login.status, (e: Error) => e.message)
    expect(r).toMatch(/^NO$|Auth process broken/)
    return proxy
  }

  it("with proxy_flag = proxy: a backend that is the proxy gets NO for any password; another backend checks the password", async () => {
    for (const pass of [WRONG, "secret"]) {
      const r = await imapLogin("127.0.0.1", port, "alice", pass)
      expect(r.login.status, r.transcript).toBe("NO")
    }
    expect(localLogins(proxy.log(), "alice")).toEqual([])
    await expectBackendServesBob(port, backend)
  })

  it("with the default proxy_maybe the script refuses to start, naming the risk; no login succeeds through it", async () => {
    unsafe = await startRefusedScript("unsafe")
    expect(unsafe.log()).toMatch(/extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks: a user whose backend is this Dovecot server logs in locally with any password/)
  })

  it("proxy_maybe as an extra field beside proxy_flag = proxy: the script refuses to start, no login succeeds through it", async () => {
    reserved = await startRefusedScript("reserved")
    expect(localLogins(reserved.log(), "alice")).toEqual([])
    expect(reserved.log()).toMatch(/extra_fields 'proxy_maybe' is reserved/)
  })
})

selfBackendSuites(v23, {
  title: "passdb dict",
  start: async ({ tmp, port, db }, local) => {
    const sock = tmp.join("dict.sock")
    // the chain's doveroute: default proxy_maybe, no nopassword (the proxy's first passdb checks)
    const daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--dict-socket", sock, "--extra-field", `port=${port}`, "--log-level", "debug"],
      waitFor: [sock]
    })
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const dictConf = tmp.join("doveroute-dict.conf.ext")
    const chain = shipped("95-doveroute-dict-chain.conf")
      .replace("driver = pam", `driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${users}`)
      .replace("/etc/dovecot/doveroute-dict.conf.ext", dictConf)
    expect(chain).toContain("passwd-file")
    const proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort: port, extra: local }, chain),
      files: {
        [users]: usersFileContent(USERS),
        [dictConf]: shipped("doveroute-dict.conf.ext").replace("/run/doveroute/dict.sock", sock)
      },
      tcp: [{ host: "127.0.0.1", port }]
    })
    return { daemon, proxy }
  }
})

proxyMaybeLoopSuite(v23, () => {
  it("proxy_maybe beside proxy=y still logs ANY password in locally: why proxy_maybe is never an extra field", async () => {
    await localLoginWithAnyPassword(v23, (port) => ({ proxy: "y", nopassword: "y", proxy_maybe: "y", host: "127.0.0.1", port: String(port) }))
  })
})
