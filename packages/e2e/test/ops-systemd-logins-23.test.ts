// Issue 11 — the dict, auth and SASL units behind real Dovecot 2.3.19 proxies and a real Postfix:
// doveroute-dict.service, doveroute-auth.service and doveroute-sasl.service, each started as its
// unit starts it (systemd-support.ts: user doveroute, its Group, /run/doveroute 0750, UMask,
// capabilities, ProtectSystem=strict) with its example config (paths moved under a fake root).
// Real logins go through them: Dovecot's auth process (user dovecot) reads dict.sock; imap-login
// (user dovenull, the shipped 95-doveroute-auth.conf) reaches auth.sock; Postfix's smtpd (user
// postfix) reaches <fake root>/var/spool/postfix/private/doveroute-auth. The dict and auth examples
// answer with nopassword / pass=, so the backend checks the password: a wrong one is refused there.
// nobody cannot connect to any of the sockets.
import {
  dictRoute23,
  freePort,
  imapLogin,
  makeTempDir,
  postfixAvailable,
  proxyConfig23,
  SmtpClient,
  startPostfix,
  REPO_ROOT,
  startBackend23,
  startDovecot23,
  stopDovecots,
  type Backend,
  type Dovecot,
  type TempDir
} from "@doveroute/testkit"
import * as fs from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { seedStore, snippet } from "./auth-fixtures.js"
import { type FakeDovecot, MASTER_PASSWORD } from "./reliability-support.js"
import { credentialNames, startAsUnit, talkAs, Unit, waitListening, type UnitRun } from "./systemd-support.js"

const USERS = { alice: "secret", bob: "secret" }

/** Start `unit` on a seeded store (backend ports of this test) and wait until it listens. */
async function startUnit(name: string, tmp: TempDir, backend: Backend, credentials?: Readonly<Record<string, string>>): Promise<UnitRun> {
  const fakes: Array<FakeDovecot> = []
  const run = await startAsUnit(Unit.read(name), tmp, fakes, {
    ...(credentials !== undefined ? { credentials } : {}),
    prepare: async (config, ids) => {
      // the backend's IMAP port: the dict answer carries it as an extra field, the auth socket's as `port`
      if (config.dict !== undefined) config.extra_fields = [...(config.extra_fields ?? []), `port=${backend.imapPort}`]
      else config.port = [`imap=${backend.imapPort}`]
      const store = String(config.store).replace(/^sqlite:/, "")
      await seedStore(store)
      fs.chownSync(store, ids.uid, ids.gid)
    }
  })
  expect(await waitListening(run), run.proc.output()).toBe(true)
  return run
}

describe("dict and auth units behind real Dovecot 2.3.19, the SASL unit behind real Postfix", () => {
  let tmp: TempDir
  let backend: Backend

  beforeAll(async () => {
    tmp = makeTempDir({ prefix: "dvl-" })
    backend = await startBackend23(tmp.path, { users: USERS })
  }, 60_000)

  afterAll(async () => {
    await stopDovecots([backend?.dovecot])
    await tmp?.cleanup()
  })

  /**
   * Starts `unit` in its own temp dir and a 2.3 proxy (`proxy` builds its config and files) in
   * front of the unit's socket: `user` logs in and lands on `ip`, a wrong password gets NO (the
   * backend checks it), nobody cannot connect to the socket (`hello` is the protocol's first line).
   * Then everything stops; the unit exits 0.
   */
  const expectLoginsThroughUnit = async (
    unit: string,
    socketOf: (run: UnitRun) => string,
    proxy: (dir: string, imapPort: number, sock: string, own: TempDir) => Promise<{ config: string; files?: Record<string, string> }>,
    login: { readonly user: string; readonly ip: string; readonly hello: string | undefined }
  ): Promise<void> => {
    const own = makeTempDir({ prefix: "dvu-" })
    let run: UnitRun | undefined
    let dovecot: Dovecot | undefined
    try {
      run = await startUnit(unit, own, backend)
      const sock = socketOf(run)
      const imapPort = await freePort()
      const dir = own.join("proxy")
      dovecot = await startDovecot23({ dir, ...(await proxy(dir, imapPort, sock, own)), tcp: [{ host: "127.0.0.1", port: imapPort }] })
      const ok = await imapLogin("127.0.0.1", imapPort, login.user, "secret", { select: true })
      expect(ok.login.status, ok.transcript + dovecot.log().slice(-2000)).toBe("OK")
      expect(backend.servedBy(login.user, "imap")).toBe(login.ip)
      const bad = await imapLogin("127.0.0.1", imapPort, login.user, "wrong")
      expect(bad.login.status, bad.transcript).toBe("NO")
      expect(await talkAs("nobody", sock, login.hello)).toBe("EACCES")
    } finally {
      await stopDovecots([dovecot])
      const code = await run?.proc.stop()
      await own.cleanup()
      expect(code?.code).toBe(0)
    }
  }

  it("doveroute-dict.service: Dovecot's passdb dict (auth process, user dovecot) routes alice to 127.0.0.2; nobody cannot connect", async () => {
    await expectLoginsThroughUnit("doveroute-dict.service", (run) => run.config.dict.socket as string, async (dir, imapPort, sock, own) => {
      const dictConf = own.join("proxy-dict.conf.ext")
      return {
        config: proxyConfig23({ dir, imapPort }, dictRoute23({ dictConfPath: dictConf })),
        // the shipped file with only its socket path changed
        files: { [dictConf]: fs.readFileSync(path.join(REPO_ROOT, "config/dovecot-2.3/doveroute-dict.conf.ext"), "utf8").replace("/run/doveroute/dict.sock", sock) }
      }
    }, { user: "alice", ip: "127.0.0.2", hello: "H3\t2\t0\t\tdirector\n" })
  }, 90_000)

  it("doveroute-auth.service: imap-login (user dovenull) asks auth.sock; bob lands on 127.0.0.3; nobody cannot connect", async () => {
    await expectLoginsThroughUnit("doveroute-auth.service", (run) => run.config.auth.socket as string, async (dir, imapPort, sock) => ({
      config: proxyConfig23(
        { dir, imapPort, pop3Port: await freePort() },
        snippet("2.3", "95-doveroute-auth.conf", sock),
        "passdb {\n  driver = static\n  args = password=internal-auth-should-never-be-used\n}"
      )
    }), { user: "bob", ip: "127.0.0.3", hello: undefined })
  }, 90_000)

  it("doveroute-sasl.service: Postfix smtpd (user postfix) authenticates through private/doveroute-auth; nobody cannot connect", async () => {
    if (!postfixAvailable()) throw new Error("Postfix is not installed: run scripts/install-deps.sh")
    const own = makeTempDir({ prefix: "dvp-" })
    let run: UnitRun | undefined
    let postfix: Awaited<ReturnType<typeof startPostfix>> | undefined
    try {
      // the master password as the unit's LoadCredential=auth_password passes it
      expect(credentialNames(Unit.read("doveroute-sasl.service"))).toContain("auth_password")
      run = await startUnit("doveroute-sasl.service", own, backend, { auth_password: MASTER_PASSWORD })
      const sock = run.config.auth.socket as string
      expect(sock.endsWith("/var/spool/postfix/private/doveroute-auth")).toBe(true)
      postfix = await startPostfix({ dir: own.join("pf"), port: await freePort(), saslPath: sock })
      const auth = async (pass: string) => {
        const c = await SmtpClient.connect("127.0.0.1", postfix!.port)
        try {
          expect((await c.ehlo()).lines.join("\n")).toMatch(/AUTH PLAIN LOGIN/)
          return (await c.authPlain("alice", pass)).code
        } finally {
          await c.quit().catch(() => undefined)
          c.close()
        }
      }
      expect(await auth(MASTER_PASSWORD), postfix.log()).toBe(235)
      expect(await auth("wrong")).toBe(535)
      expect(await talkAs("nobody", sock, undefined)).toBe("EACCES")
    } finally {
      await postfix?.stop()
      const code = await run?.proc.stop()
      await own.cleanup()
      expect(code?.code).toBe(0)
    }
  }, 90_000)
})
