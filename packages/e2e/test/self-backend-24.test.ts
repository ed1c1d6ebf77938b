// Issue 11 on real Dovecot 2.4.1 (chroot): a proxy whose OWN address is a backend never lets a
// login in without a password check; the layout and the suites both versions share are in
// self-backend-suite.ts. 2.4 has no passdb dict; doveroute answers lua/http-route.lua over HTTP:
// - lua/http-route.lua as the only passdb, doveroute on the shipped config/doveroute.json (proxy +
//   nopassword) plus an HTTP listener: the backend checks the password; a backend that is the
//   proxy itself is refused by Dovecot as a loop (2.4.1 compares hostip too), whatever the password;
// - the shipped config/dovecot-2.4/95-doveroute-http-chain.conf (passwd-file standing in for
//   PAM; doveroute with the default proxy_maybe, no nopassword): a wrong password never reaches
//   doveroute; the right one logs a user whose backend is the proxy in locally, with a userdb;
// - the standalone auth socket in nopassword mode: a user whose backend is the proxy gets temp_fail;
// and why the daemon refuses nopassword with proxy_maybe, on Dovecot alone: any password logs in.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  imapLogin, proxyConfig24, REPO_ROOT, runCli, startDaemon, startDovecot24, teardown, usersFileContent, v24
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import { installLua } from "./auth-fixtures.js"
import {
  expectBackendServesBob, proxyMaybeLoopSuite, selfBackendSuites, startBase, USERS, WRONG
} from "./self-backend-suite.js"

const localLogins = v24.localLogins

describe("2.4.1, http-route.lua as the only passdb, doveroute on the shipped config (proxy + nopassword): the proxy's own address is a backend", () => {
  let tmp: VersionTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number

  beforeAll(async () => {
    const base = await startBase(v24)
    ;({ tmp, port, backend } = base)
    const httpSock = tmp.join("http.sock")
    const db = base.db
    // the shipped config with this run's store, sockets and backend port, plus the HTTP endpoint
    const shipped = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8")) as Record<string, unknown>
    const sock = tmp.hostPath(tmp.join("dict.sock"))
    const configFile = tmp.hostPath(tmp.join("doveroute.json"))
    writeFileSync(configFile, JSON.stringify({
      ...shipped,
      store: `sqlite:${db}`,
      dict: { ...(shipped["dict"] as object), socket: sock },
      // the endpoint as shipped (config/modes/http.json): a UNIX socket, 0660, group dovecot
      http: { listen: tmp.hostPath(httpSock), mode: "0660", group: String(await v24.gid("dovecot")) },
      extra_fields: [...(shipped["extra_fields"] as Array<string>), `port=${port}`]
    }))
    daemon = await startDaemon({ args: ["--config", configFile], waitFor: [sock, tmp.hostPath(httpSock)] })
    const dir = tmp.join("proxy")
    const lua = installLua(tmp, "http-route.lua")
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort: port },
        `passdb route {\n  driver = lua\n  lua_file = ${lua}\n  lua_settings {\n    socket_path = ${httpSock}\n    route_url = http://localhost/route\n  }\n}`),
      tcp: [{ host: "127.0.0.1", port }]
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon], [proxy, backend?.dovecot], tmp)).toEqual([0])
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
    await expectBackendServesBob(port, backend)
    expect(localLogins(proxy.log(), "bob")).toEqual([])
  })

  it("the HTTP endpoint with nopassword and proxy_flag proxy_maybe does not start", async () => {
    const r = await runCli(["serve", "--http-listen", "/nonexistent/http.sock", "--store", "sqlite:/nonexistent/never.db", "--extra-field", "nopassword"])
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stderr).toMatch(/extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks/)
  })
})

selfBackendSuites(v24, {
  title: "http-route.lua",
  start: async ({ tmp, port, db }, local) => {
    const httpSock = tmp.join("http.sock")
    const daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--http-listen", tmp.hostPath(httpSock), "--extra-field", `port=${port}`, "--log-level", "debug"],
      env: { DOVEROUTE_HTTP_GROUP: String(await v24.gid("dovecot")) },
      waitFor: [tmp.hostPath(httpSock)]
    })
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const lua = installLua(tmp, "http-route.lua")
    const chain = v24.shipped("95-doveroute-http-chain.conf")
      .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
      .replaceAll("/etc/dovecot/http-route.lua", lua)
      .replaceAll("socket_path = /run/doveroute/http.sock", `socket_path = ${httpSock}`)
    expect(chain).toContain("passwd_file_path")
    expect(chain).toContain(`socket_path = ${httpSock}`)
    const proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort: port, extra: local }, chain),
      files: { [users]: usersFileContent(USERS) },
      tcp: [{ host: "127.0.0.1", port }]
    })
    return { daemon, proxy }
  }
})

proxyMaybeLoopSuite(v24)
