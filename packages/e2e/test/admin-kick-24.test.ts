// `doveroute user move --kick`, `backend flush --kick` and `user move-many --kick` with a real
// Dovecot 2.4.1 proxy (standalone auth socket, two backends on 127.0.0.2 / 127.0.0.3): open IMAP
// sessions are kicked through `chroot ROOT doveadm -c CONF proxy kick %u` (kick_command) and really
// closed, and the next logins land on the new backend. The proxy includes config/dovecot-2.4/96-doveroute-kick.conf: without
// it 2.4.1 reports "1 connections kicked" but leaves the session open (see that file). Fails (does
// not skip) when the chroot is missing.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import {
  DOVECOT24_ROOT, freePort, ImapClient, imapLogin, makeChrootTempDir, proxyConfig24, requireDovecot24, runCli,
  startBackend24, startDaemon, startDovecot24, teardown
} from "@doveroute/testkit"
import type { Backend, ChrootTempDir, Dovecot, RunningDaemon } from "@doveroute/testkit"
import { DAEMON_ENV, seedStore, snippet } from "./auth-fixtures.js"

const MASTER = "secret"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits up to `ms` for the server to close `c`'s socket; true when it did. */
const closedWithin = async (c: ImapClient, ms: number): Promise<boolean> => {
  for (const end = Date.now() + ms; !c.conn.closed && Date.now() < end;) await sleep(50)
  return c.conn.closed
}

describe("moves with --kick on real Dovecot 2.4.1", { timeout: 180_000 }, () => {
  let tmp: ChrootTempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let config: string

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    const db = tmp.hostPath(tmp.join("routes.db"))
    const sock = tmp.join("auth.sock")
    const hostSock = tmp.hostPath(sock)
    imapPort = await freePort()
    const [be] = await Promise.all([startBackend24(tmp), seedStore(db)])
    backend = be
    const dir = tmp.join("proxy")
    config = tmp.hostPath(tmp.join("doveroute.json"))
    fs.writeFileSync(config, JSON.stringify({
      store: `sqlite:${db}`,
      cache: { refresh: "500 millis", ttl: "10 minutes" },
      kick_command: `chroot ${DOVECOT24_ROOT} doveadm -c ${dir}/dovecot.conf proxy kick %u`
    }))
    daemon = await startDaemon({
      args: ["--config", config, "--auth-socket", hostSock, "--socket-mode", "0666", "--port", String(backend.imapPort)],
      env: { ...DAEMON_ENV, DOVEROUTE_AUTH_PASSWORD: MASTER },
      waitFor: [hostSock],
      timeoutMs: 90_000
    })
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24(
        { dir, imapPort },
        snippet("2.4", "95-doveroute-auth.conf", sock),
        snippet("2.4", "96-doveroute-kick.conf"),
        "passdb static {\n  password = internal-auth-should-never-be-used\n}"
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })

  afterAll(async () => {
    const [code] = await teardown([daemon], [proxy, backend?.dovecot], tmp)
    if (daemon !== undefined) expect(code).toBe(0)
  })

  it("a move with --kick closes the open proxied IMAP session and the next login lands on the new backend", async () => {
    expect(proxy.hostPaths.configPath).toBe(DOVECOT24_ROOT + tmp.join("proxy") + "/dovecot.conf")
    const c = await ImapClient.connect("127.0.0.1", imapPort)
    expect((await c.login("alice", MASTER)).status, c.transcript()).toBe("OK")
    expect((await c.select()).status).toBe("OK")
    expect(backend.servedBy("alice", "imap")).toBe("127.0.0.2")
    expect((await c.command("NOOP")).status).toBe("OK")
    const list = await proxy.doveadm(["proxy", "list"])
    expect(list.stdout).toMatch(/alice/)

    const r = await runCli(["user", "move", "alice", "127.0.0.3", "--kick", "--json", "--config", config], { timeoutMs: 90_000 })
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ user: "alice", from: 1, to: 2, changed: true })
    expect(out.kicks).toHaveLength(1)
    expect(out.kicks[0]).toMatchObject({ exitCode: 0 })
    expect(out.kicks[0].output).toMatch(/1 connections kicked/)

    // The open session is really gone: the proxy closed the client socket (no NOOP answered),
    // logged the admin kick, and no longer lists alice.
    expect(await closedWithin(c, 5_000), c.transcript()).toBe(true)
    await expect(c.command("NOOP")).rejects.toThrow()
    c.close()
    expect(proxy.log()).toMatch(/Kicked by admin/)
    expect((await proxy.doveadm(["proxy", "list"])).stdout).not.toMatch(/alice/)

    const again = await imapLogin("127.0.0.1", imapPort, "alice", MASTER, { select: true })
    expect(again.login.status, again.transcript).toBe("OK")
    expect(backend.servedBy("alice", "imap")).toBe("127.0.0.3")

    // no hold left behind
    const show = await runCli(["user", "show", "alice", "--json", "--config", config])
    expect(JSON.parse(show.stdout)).toMatchObject({ moveInProgress: null, backend: { id: 2 } })
  })

  /** Logged-in, selected sessions of `users` through the proxy, each served by `ip`. */
  const openSessions = async (users: ReadonlyArray<string>, ip: string) => {
    const sessions: Array<ImapClient> = []
    for (const u of users) {
      const c = await ImapClient.connect("127.0.0.1", imapPort)
      expect((await c.login(u, MASTER)).status, c.transcript()).toBe("OK")
      expect((await c.select()).status).toBe("OK")
      expect(backend.servedBy(u, "imap")).toBe(ip)
      sessions.push(c)
    }
    return sessions
  }

  /** Every session closed by the proxy, and each user's next login served by `ip`. */
  const expectKickedTo = async (users: ReadonlyArray<string>, sessions: ReadonlyArray<ImapClient>, ip: string) => {
    for (const c of sessions) {
      expect(await closedWithin(c, 5_000), c.transcript()).toBe(true)
      c.close()
    }
    const listed = (await proxy.doveadm(["proxy", "list"])).stdout
    for (const u of users) {
      expect(listed).not.toMatch(new RegExp(`\\b${u}\\b`))
      const again = await imapLogin("127.0.0.1", imapPort, u, MASTER, { select: true })
      expect(again.login.status, again.transcript).toBe("OK")
      expect(backend.servedBy(u, "imap")).toBe(ip)
    }
  }

  it("backend flush --kick empties a drained backend: both sessions closed, next logins on the other backend", async () => {
    // after the first test alice and bob are both on backend 2 (127.0.0.3)
    const users = ["alice", "bob"]
    const sessions = await openSessions(users, "127.0.0.3")
    const drain = await runCli(["backend", "drain", "127.0.0.3", "--config", config])
    expect(drain.code, drain.stderr).toBe(0)
    const r = await runCli(["backend", "flush", "127.0.0.3", "--kick", "--parallel", "2", "--json", "--config", config], { timeoutMs: 90_000 })
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ total: 2, moved: 2, skipped: 0, failed: 0 })
    for (const x of out.results) {
      expect(x).toMatchObject({ from: 2, to: 1, toHostname: "backend1.test", status: "moved" })
      expect(x.kicks).toHaveLength(1)
      expect(x.kicks[0]).toMatchObject({ exitCode: 0, output: expect.stringMatching(/1 connections kicked/) })
    }
    await expectKickedTo(users, sessions, "127.0.0.2")
  })

  it("user move-many --kick (stdin) moves the listed users back and kicks their sessions", async () => {
    const users = ["alice", "bob"]
    const sessions = await openSessions(users, "127.0.0.2")
    // options go before `-` (stdin)
    const r = await runCli(["user", "move-many", "--kick", "--json", "--config", config, "-", "127.0.0.3"], { timeoutMs: 90_000, input: "alice\nbob\n" })
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ total: 2, moved: 2, failed: 0 })
    expect(out.results.map((x: { key: string; from: number; to: number }) => [x.key, x.from, x.to])).toEqual([["alice", 1, 2], ["bob", 1, 2]])
    await expectKickedTo(users, sessions, "127.0.0.3")
    const moves = await runCli(["user", "show", "bob", "--json", "--config", config])
    expect(JSON.parse(moves.stdout)).toMatchObject({ moveInProgress: null, backend: { id: 2 } })
  })
})
