// Proves the testkit against real Dovecot 2.3.19 with no doveroute involved: a backend on
// 127.0.0.2/.3 and a proxy whose static passdb sends every user to 127.0.0.2.
import { describe, it, expect, beforeAll, afterAll } from "vitest"
import { readFileSync } from "node:fs"
import {
  ImapClient,
  Pop3Client,
  freePort,
  imapLogin,
  lmtpDeliver,
  makeTempDir,
  proxyConfig23,
  runCommand,
  startBackend23,
  startDovecot23,
  staticProxyRoute23,
  stopDovecots,
  type Backend,
  type Dovecot,
  type TempDir
} from "@doveroute/testkit"

describe("testkit harness: Dovecot 2.3 proxy -> backend (static passdb)", () => {
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let imapPort: number
  let pop3Port: number
  let lmtpPort: number

  beforeAll(async () => {
    tmp = makeTempDir()
    backend = await startBackend23(tmp.path)
    imapPort = await freePort()
    pop3Port = await freePort()
    lmtpPort = await freePort()
    const dir = tmp.join("proxy")
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23(
        { dir, imapPort, pop3Port, lmtpPort },
        staticProxyRoute23({ host: "127.0.0.2", port: backend.imapPort, pop3Port: backend.pop3Port, lmtpPort: backend.lmtpPort })
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }, { host: "127.0.0.1", port: pop3Port }, { host: "127.0.0.1", port: lmtpPort }]
    })
  })

  afterAll(async () => {
    // Tolerate a beforeAll that failed half-way: stop whatever did start.
    const started = [proxy as Dovecot | undefined, (backend as Backend | undefined)?.dovecot]
    const exits = await stopDovecots(started)
    await tmp?.cleanup()
    for (const e of exits) if (e !== undefined) expect(e.code).toBe(0)
  })

  it("the masters are our direct children and run 2.3", async () => {
    for (const d of [proxy, backend.dovecot]) {
      expect(d.version).toBe("2.3")
      const stat = readFileSync(`/proc/${d.pid}/stat`, "utf8")
      expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])).toBe(process.pid)
    }
    const v = await runCommand("dovecot", ["--version"])
    expect(v.stdout).toMatch(/^2\.3\./)
  })

  it("IMAP LOGIN through the proxy lands on backend 127.0.0.2", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "alice", "secret", { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(r.select?.status, r.transcript).toBe("OK")
    expect(r.select?.tagged).toMatch(/READ-WRITE/)
    expect(backend.servedBy("alice", "imap")).toBe("127.0.0.2")
    expect(proxy.log()).toMatch(/proxy\(alice,127\.0\.0\.2:\d+\): Started proxying/)
  })

  it("a wrong password is refused by the backend and the proxy says NO", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "bob", "wrong")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(backend.logins("bob")).toHaveLength(0)
  })

  it("AUTHENTICATE PLAIN with and without SASL-IR", async () => {
    for (const saslIr of [true, false]) {
      const c = await ImapClient.connect("127.0.0.1", imapPort)
      const r = await c.authenticatePlain("carol", "secret", { saslIr })
      expect(r.status, c.transcript()).toBe("OK")
      await c.logout()
    }
    expect(backend.logins("carol", "imap").map((l) => l.backendIp)).toEqual(["127.0.0.2", "127.0.0.2"])
  })

  it("POP3 USER/PASS through the proxy lands on 127.0.0.2", async () => {
    const c = await Pop3Client.connect("127.0.0.1", pop3Port)
    const r = await c.login("dave", "secret")
    expect(r.ok, c.transcript()).toBe(true)
    const s = await c.stat()
    expect(s.reply.ok, c.transcript()).toBe(true)
    expect(s.count).toBe(0)
    await c.quit()
    expect(backend.servedBy("dave", "pop3")).toBe("127.0.0.2")
  })

  it("a direct login on 127.0.0.3 is told apart from 127.0.0.2", async () => {
    const r = await imapLogin("127.0.0.3", backend.imapPort, "bob", "secret")
    expect(r.login.status, r.transcript).toBe("OK")
    expect(backend.servedBy("bob", "imap")).toBe("127.0.0.3")
  })

  it("LMTP through the proxy delivers into the backend maildir", async () => {
    expect(backend.mailboxFiles("alice")).toEqual([])
    const d = await lmtpDeliver({ host: "127.0.0.1", port: lmtpPort }, {
      from: "sender@example.test",
      to: ["alice"],
      message: "Subject: harness\r\n\r\nhello alice\r\n"
    })
    expect(d.rcpt, d.transcript).toEqual([250])
    expect(d.delivered, d.transcript).toEqual([250])
    expect(backend.mailboxFiles("alice")).toHaveLength(1)
  })

  it("doveadm talks to the instance", async () => {
    const ok = await backend.dovecot.doveadm(["auth", "test", "alice", "secret"])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    const bad = await backend.dovecot.doveadm(["auth", "test", "alice", "nope"])
    expect(bad.code).toBe(77)
  })

  it("an invalid config is rejected with doveconf's message", async () => {
    const dir = tmp.join("bad")
    await expect(startDovecot23({ dir, config: "no_such_setting = 1\n" })).rejects.toThrow(/doveconf.*rejected[\s\S]*no_such_setting/)
  })
})
