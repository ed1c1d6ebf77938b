// `doveroute user move --kick` with a real Dovecot 2.4.1 proxy (standalone auth socket, two
// backends on 127.0.0.2 / 127.0.0.3): alice's open IMAP session is kicked through
// `chroot ROOT doveadm -c CONF proxy kick %u` (kick_command), and her next login lands on the new
// backend. Fails (does not skip) when the chroot is missing.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import {
  DOVECOT24_ROOT,
  freePort,
  ImapClient,
  imapLogin,
  makeChrootTempDir,
  proxyConfig24,
  requireDovecot24,
  runCli,
  startBackend24,
  startDaemon,
  startDovecot24,
  stopDovecots,
  type Backend,
  type ChrootTempDir,
  type Dovecot,
  type RunningDaemon
} from "@doveroute/testkit"
import { DAEMON_ENV, seedStore, snippet } from "./auth-fixtures.js"

const MASTER = "secret"

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
        "passdb static {\n  password = internal-auth-should-never-be-used\n}"
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })

  afterAll(async () => {
    const [code] = await Promise.all([daemon?.stop(), stopDovecots([proxy, backend?.dovecot])])
    await tmp?.cleanup()
    if (daemon !== undefined) expect(code).toBe(0)
  })

  it("a move with --kick runs doveadm proxy kick (Dovecot reports the connection kicked) and the next login lands on the new backend", async () => {
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

    // NOT asserted: that the open session is closed. With the standalone auth socket route
    // (login processes without chroot) Dovecot 2.4.1 answers "1 connections kicked" but the
    // proxied session kept answering NOOP for 9 s in our runs; see the note on issue 6.
    c.close()

    const again = await imapLogin("127.0.0.1", imapPort, "alice", MASTER, { select: true })
    expect(again.login.status, again.transcript).toBe("OK")
    expect(backend.servedBy("alice", "imap")).toBe("127.0.0.3")

    // no hold left behind
    const show = await runCli(["user", "show", "alice", "--json", "--config", config])
    expect(JSON.parse(show.stdout)).toMatchObject({ moveInProgress: null, backend: { id: 2 } })
  })
})
