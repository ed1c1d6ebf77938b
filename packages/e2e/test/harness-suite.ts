// Proves the testkit against real Dovecot with no doveroute involved, one suite for 2.3.19 and
// 2.4.1 in the Debian trixie chroot (harness-23/-24.test.ts run it): a backend on 127.0.0.2/.3
// and a proxy whose static passdb sends every user to 127.0.0.2. On 2.4 it fails (does not skip)
// when the chroot is missing: run scripts/install-deps.sh.
import { describe, it, expect, beforeAll, afterAll } from "vitest"
import { readFileSync, readlinkSync } from "node:fs"
import { ImapClient, Pop3Client, freePort, imapLogin, runCommand, settle, stopDovecots } from "@doveroute/testkit"
import { expectLmtpDelivered } from "./auth-fixtures.js"
import type { Backend, Dovecot, DovecotVersion, VersionTempDir } from "@doveroute/testkit"

/** The testkit's own proof on one Dovecot version. */
export const harnessSuite = (v: DovecotVersion) => describe(`testkit harness: Dovecot ${v.release} proxy -> backend (static passdb)`, () => {
  let tmp: VersionTempDir | undefined
  let backend: Backend | undefined
  let proxy: Dovecot | undefined
  let imapPort: number
  let pop3Port: number
  let lmtpPort: number

  beforeAll(async () => {
    tmp = v.makeTmp()
    backend = await v.startBackend(tmp)
    imapPort = await freePort()
    pop3Port = await freePort()
    lmtpPort = await freePort()
    const dir = tmp.join("proxy")
    proxy = await v.startDovecot({
      dir,
      config: v.proxyConfig(
        { dir, imapPort, pop3Port, lmtpPort },
        v.staticProxyRoute({ host: "127.0.0.2", port: backend.imapPort, pop3Port: backend.pop3Port, lmtpPort: backend.lmtpPort })
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }, { host: "127.0.0.1", port: pop3Port }, { host: "127.0.0.1", port: lmtpPort }]
    })
  })

  afterAll(async () => {
    const exits = await stopDovecots([proxy, backend?.dovecot])
    await tmp?.cleanup()
    for (const e of exits) if (e !== undefined) expect(e.code).toBe(0)
  })

  const be = (): Backend => {
    if (backend === undefined) throw new Error("backend not started")
    return backend
  }

  it(`the masters are our direct children${v.runner.root === "" ? "" : ", chrooted,"} and run ${v.release}`, async () => {
    for (const d of [proxy, be().dovecot]) {
      if (d === undefined) throw new Error("proxy not started")
      expect(d.version).toBe(v.series)
      const stat = readFileSync(`/proc/${d.pid}/stat`, "utf8")
      expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])).toBe(process.pid)
      if (v.runner.root !== "") {
        expect(readlinkSync(`/proc/${d.pid}/root`)).toBe(v.runner.root)
        expect(d.hostPaths.configPath).toBe(v.runner.root + d.paths.configPath)
      }
    }
    const cmd = v.runner.command("dovecot", ["--version"])
    const out = await runCommand(cmd.cmd, cmd.args, { env: cmd.env })
    expect(out.stdout).toMatch(new RegExp(`^${v.release.replaceAll(".", "\\.")}\\b`)) // e.g. 2.3.19.1, 2.4.1-4
  })

  it("IMAP LOGIN through the proxy lands on backend 127.0.0.2", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "alice", "secret", { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(r.select?.status, r.transcript).toBe("OK")
    expect(r.select?.tagged).toMatch(/READ-WRITE/)
    expect(be().servedBy("alice", "imap")).toBe("127.0.0.2")
    await settle(() => /proxy\(alice,127\.0\.0\.2:\d+\): Started proxying/.test(proxy?.log() ?? ""))
    expect(proxy?.log()).toMatch(/proxy\(alice,127\.0\.0\.2:\d+\): Started proxying/)
  })

  it("a wrong password is refused by the backend and the proxy says NO", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "bob", "wrong")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(be().logins("bob")).toHaveLength(0)
  })

  it("AUTHENTICATE PLAIN with and without SASL-IR", async () => {
    for (const saslIr of [true, false]) {
      const c = await ImapClient.connect("127.0.0.1", imapPort)
      const r = await c.authenticatePlain("carol", "secret", { saslIr })
      expect(r.status, c.transcript()).toBe("OK")
      await c.logout()
    }
    expect(be().logins("carol", "imap").map((l) => l.backendIp)).toEqual(["127.0.0.2", "127.0.0.2"])
  })

  it("POP3 USER/PASS through the proxy lands on 127.0.0.2 (per-protocol port override)", async () => {
    const c = await Pop3Client.connect("127.0.0.1", pop3Port)
    const r = await c.login("dave", "secret")
    expect(r.ok, c.transcript()).toBe(true)
    const s = await c.stat()
    expect(s.reply.ok, c.transcript()).toBe(true)
    expect(s.count, c.transcript()).toBe(0)
    await c.quit()
    expect(be().servedBy("dave", "pop3")).toBe("127.0.0.2")
  })

  it("a direct login on 127.0.0.3 is told apart from 127.0.0.2", async () => {
    const r = await imapLogin("127.0.0.3", be().imapPort, "bob", "secret")
    expect(r.login.status, r.transcript).toBe("OK")
    // Dovecot writes the login line through its log process, asynchronously: wait for it
    await settle(() => be().servedBy("bob", "imap") !== undefined)
    expect(be().servedBy("bob", "imap")).toBe("127.0.0.3")
  })

  it("LMTP through the proxy delivers into the backend maildir", async () => {
    expect(be().mailboxFiles("alice")).toEqual([])
    await expectLmtpDelivered(lmtpPort, be(), "alice", "harness")
  })

  it("doveadm talks to the instance (2.4: through the chroot)", async () => {
    const ok = await be().dovecot.doveadm(["auth", "test", "alice", "secret"])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    const bad = await be().dovecot.doveadm(["auth", "test", "alice", "nope"])
    expect(bad.code).toBe(77)
  })

  it("an invalid config is rejected with doveconf's message", async () => {
    const dir = tmp?.join("bad") ?? "/nonexistent"
    await expect(v.startDovecot({ dir, config: `${v.configHeader}no_such_setting = 1\n` })).rejects.toThrow(/doveconf.*rejected[\s\S]*no_such_setting/)
  })
})
