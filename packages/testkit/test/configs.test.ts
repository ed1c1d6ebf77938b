// Every config generator's output must pass `doveconf -n` on the Dovecot it is for.
import { describe, it, expect, beforeAll, afterAll } from "vitest"
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  authSocketRoute23,
  authSocketRoute24,
  backendConfig23,
  backendConfig24,
  checkConfig23,
  checkConfig24,
  dictConfExt23,
  dictRoute23,
  luaRoute23,
  luaRoute24,
  luaWrapper23,
  makeChrootTempDir,
  makeTempDir,
  proxyConfig23,
  proxyConfig24,
  relayRoute23,
  relayRoute24,
  requireDovecot24,
  staticProxyRoute23,
  staticProxyRoute24,
  type ChrootTempDir,
  type TempDir
} from "../src/index.js"

const CHAIN = `passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /nonexistent/users
  result_success = continue-ok
}`

describe("Configs23 pass doveconf 2.3", () => {
  let tmp: TempDir
  beforeAll(() => { tmp = makeTempDir() })
  afterAll(async () => { await tmp.cleanup() })

  const check = async (name: string, text: string): Promise<string> => {
    const file = tmp.join(name, "dovecot.conf")
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, text)
    return checkConfig23(file)
  }
  const base = () => ({ dir: tmp.join("proxy"), imapPort: 11143, pop3Port: 11110, lmtpPort: 11124 })

  it("backend (passwd-file and static)", async () => {
    const out = await check("b1", backendConfig23({ dir: tmp.join("b1"), mailDir: tmp.join("mail"), imapPort: 12143, pop3Port: 12110, lmtpPort: 12124, usersFile: tmp.join("users") }))
    expect(out).toMatch(/listen = 127\.0\.0\.2, 127\.0\.0\.3/)
    expect(out).toMatch(/auth_failure_delay = 0/)
    await check("b2", backendConfig23({ dir: tmp.join("b2"), mailDir: tmp.join("mail"), imapPort: 12143 }))
  })
  it("(a) passdb dict, with and without idle_msecs, and in a chain", async () => {
    expect(dictConfExt23({ socketPath: "/s.sock" })).toMatch(/^uri = proxy:\/s\.sock:director$/m)
    expect(dictConfExt23({ socketPath: "/s.sock", idleMsecs: 60000 })).toMatch(/^uri = proxy:idle_msecs=60000:\/s\.sock:director$/m)
    await check("a", proxyConfig23(base(), dictRoute23({ dictConfPath: tmp.join("dict.conf.ext") })))
    await check("a2", proxyConfig23(base(), CHAIN, dictRoute23({ dictConfPath: tmp.join("dict.conf.ext"), skip: "unauthenticated", resultFailure: "return-fail", resultInternalfail: "return-fail" })))
  })
  it("(b) login processes -> standalone auth socket", async () => {
    const out = await check("b", proxyConfig23(base(), authSocketRoute23({ socketPath: tmp.join("dvr-auth.sock"), persistentLogin: true })))
    expect(out).toContain(`executable = imap-login ${tmp.join("dvr-auth.sock")}`)
    expect(out).toContain(`executable = pop3-login ${tmp.join("dvr-auth.sock")}`)
  })
  it("(c) login-socket relay + LMTP userdb relay", async () => {
    const out = await check("c", proxyConfig23(base(), relayRoute23()))
    expect(out).toContain("executable = imap-login doveroute")
    expect(out).toMatch(/auth_socket_path = doveroute-userdb/)
  })
  it("(d) Lua passdb through the 2.3 wrapper", async () => {
    expect(luaWrapper23({ scriptPath: "/x/director.lua", initArgs: { nopassword: "", port: "25143" } }))
      .toContain('auth_passdb_init({ ["nopassword"] = "", ["port"] = "25143" })')
    await check("d", proxyConfig23(base(), luaRoute23({ wrapperPath: tmp.join("wrapper.lua"), luaPathDir: tmp.join("lua") })))
  })
  it("(e) arbitrary passdb chain and the static route", async () => {
    await check("e", proxyConfig23(base(), CHAIN, staticProxyRoute23({ host: "127.0.0.2", port: 1, pop3Port: 2, lmtpPort: 3 })))
  })
  it("a bad config is rejected with doveconf's message", async () => {
    await expect(check("bad", "nope = 1\n")).rejects.toThrow(/Unknown setting: nope/)
  })
})

describe("Configs24 pass doveconf 2.4 (chroot)", () => {
  let tmp: ChrootTempDir
  beforeAll(() => {
    requireDovecot24()
    tmp = makeChrootTempDir()
  })
  afterAll(async () => { await tmp?.cleanup() })

  const check = async (name: string, text: string): Promise<string> => {
    const file = tmp.join(name, "dovecot.conf")
    mkdirSync(path.dirname(tmp.hostPath(file)), { recursive: true })
    writeFileSync(tmp.hostPath(file), text)
    return checkConfig24(file)
  }
  const base = () => ({ dir: tmp.join("proxy"), imapPort: 11143, pop3Port: 11110, lmtpPort: 11124 })

  it("backend (passwd-file and static)", async () => {
    const out = await check("b1", backendConfig24({ dir: tmp.join("b1"), mailDir: tmp.join("mail"), imapPort: 12143, pop3Port: 12110, lmtpPort: 12124, usersFile: tmp.join("users") }))
    expect(out).toMatch(/passwd_file_path = /)
    await check("b2", backendConfig24({ dir: tmp.join("b2"), mailDir: tmp.join("mail"), imapPort: 12143 }))
  })
  it("(b) login_socket_path -> standalone auth socket", async () => {
    const out = await check("b", proxyConfig24(base(), authSocketRoute24({ socketPath: tmp.join("dvr-auth.sock"), persistentLogin: true })))
    expect(out).toContain(`login_socket_path = ${tmp.join("dvr-auth.sock")}`)
  })
  it("(c) login-socket relay + userdb relay", async () => {
    const out = await check("c", proxyConfig24(base(), relayRoute24()))
    expect(out).toMatch(/login_socket_path = director/)
    expect(out).toMatch(/auth_socket_path = director-userdb/)
  })
  it("(d) passdb lua with lua_settings and fields", async () => {
    const out = await check("d", proxyConfig24(base(), luaRoute24({
      luaFile: tmp.join("route.lua"), settings: { route_url: "http://127.0.0.1:1/route" }, fields: { nopassword: "yes" }, luaPathDir: tmp.join("lua")
    })))
    expect(out).toMatch(/route_url = http:\/\/127\.0\.0\.1:1\/route/)
  })
  it("(e) arbitrary chain and the static route", async () => {
    await check("e", proxyConfig24(base(), `passdb passwd-file {\n  passwd_file_path = /nonexistent\n  result_success = continue-ok\n}`,
      staticProxyRoute24({ host: "127.0.0.2", port: 1, pop3Port: 2, lmtpPort: 3 })))
  })
})
