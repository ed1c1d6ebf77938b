// `doveroute user move --kick` with a real Dovecot 2.4.1 proxy (standalone auth socket, two
// backends on 127.0.0.2 / 127.0.0.3): alice's open IMAP session is kicked through
// `chroot ROOT doveadm -c CONF proxy kick %u` (kick_command) and really closed, and her next login
// lands on the new backend. The proxy includes config/dovecot-2.4/96-doveroute-kick.conf: without
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

describe("user move --kick on real Dovecot 2.4.1", { timeout: 180_000 }, () => {
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
})
