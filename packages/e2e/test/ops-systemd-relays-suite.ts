// Issue 11 — the relay units against real Dovecot, one suite for 2.3.19 and 2.4.1 (chroot)
// (ops-systemd-relays-23/-24.test.ts run it): doveroute-login-relay.service and
// doveroute-userdb-relay.service, each started as its unit starts it (systemd-support.ts: user
// doveroute, CAP_DAC_OVERRIDE only, ProtectSystem=strict with only its ReadWritePaths writable, its
// UMask) with its example config, after Dovecot, in Dovecot's own base_dir (the unit's
// /run/dovecot), both on one SQLite store. Real logins go through them: imap-login (user dovenull)
// reaches the login relay in login/, LMTP reaches the userdb relay (0660, group dovecot; upstream
// auth-master), doveadm too; nobody cannot connect to either.
import {
  doveadmFields, freePort, imapLogin, makeTempDir, stopDovecots, usersFileContent
} from "@doveroute/testkit"
import type { Backend, Dovecot, DovecotVersion, TempDir, VersionTempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectLmtpDelivered, seedStore, snippet } from "./auth-fixtures.js"
import type { FakeDovecot } from "./reliability-support.js"
import { startAsUnit, talkAs, Unit, waitListening, type UnitRun } from "./systemd-support.js"

const USERS = { alice: "secret", bob: "secret" }

/** The relay-units suite on one Dovecot version. */
export const relayUnitsSuite = (v: DovecotVersion) => describe(`relay units on real Dovecot ${v.release}`, () => {
  let tmp: VersionTempDir
  let unitRoot: TempDir
  let backend: Backend
  let proxy: Dovecot
  let imapPort: number
  let lmtpPort: number
  const runs: Array<UnitRun> = []
  const fakes: Array<FakeDovecot> = []

  beforeAll(async () => {
    tmp = v.makeTmp()
    unitRoot = makeTempDir({ prefix: "dvs-" })
    imapPort = await freePort()
    lmtpPort = await freePort()
    const dir = tmp.join("proxy")
    const usersFile = path.join(dir, "users")
    backend = await v.startBackend(tmp, { users: USERS })
    proxy = await v.startDovecot({
      dir,
      files: { [usersFile]: usersFileContent(USERS) },
      config: v.proxyConfig(
        { dir, imapPort, pop3Port: await freePort(), lmtpPort },
        snippet(v.series, "95-doveroute-login-relay.conf"),
        snippet(v.series, "95-doveroute-userdb-relay.conf"),
        v.passwdFilePassdb(usersFile, { proxy: "y" })
      ),
      tcp: [{ host: "127.0.0.1", port: imapPort }, { host: "127.0.0.1", port: lmtpPort }]
    })
    // the units' /run/dovecot is this Dovecot's base_dir; they start after it (After=dovecot.service)
    const at = { "/run/dovecot": proxy.hostPaths.baseDir }
    const ports: Record<string, ReadonlyArray<string>> = {
      "doveroute-login-relay.service": [`imap=${backend.imapPort}`],
      "doveroute-userdb-relay.service": [`lmtp=${backend.lmtpPort}`]
    }
    for (const name of Object.keys(ports)) {
      const run = await startAsUnit(Unit.read(name), unitRoot, fakes, {
        at,
        prepare: async (config, ids) => {
          // the backends of this test (the examples name the standard ports)
          config.port = ports[name]
          const store = String(config.store).replace(/^sqlite:/, "")
          if (!fs.existsSync(store)) {
            await seedStore(store)
            fs.chownSync(store, ids.uid, ids.gid)
          }
        }
      })
      runs.push(run)
      expect(await waitListening(run), run.proc.output()).toBe(true)
    }
  }, 120_000)

  afterAll(async () => {
    const codes = await Promise.all(runs.map((r) => r.proc.stop()))
    await stopDovecots([proxy, backend?.dovecot])
    await tmp?.cleanup()
    await unitRoot?.cleanup()
    expect(codes.map((c) => c.code)).toEqual(runs.map(() => 0))
  })

  it("the relay sockets sit in Dovecot's directories with the units' modes; nobody cannot connect", async () => {
    const [login, userdb] = [runs[0]!.config.login_relay.socket as string, runs[1]!.config.userdb_relay.socket as string]
    expect(path.dirname(login)).toBe(path.join(proxy.hostPaths.baseDir, "login"))
    expect(path.dirname(userdb)).toBe(proxy.hostPaths.baseDir)
    expect((fs.statSync(login).mode & 0o777).toString(8)).toBe("666")
    expect((fs.statSync(userdb).mode & 0o777).toString(8)).toBe("660")
    expect(await talkAs("nobody", login, undefined)).toBe("EACCES")
    expect(await talkAs("nobody", userdb, "VERSION\t1\t0\n")).toBe("EACCES")
  })

  it("IMAP: imap-login (dovenull) goes through the login relay unit; alice lands on 127.0.0.2", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "alice", "secret", { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(r.select?.status, r.transcript).toBe("OK")
    expect(backend.servedBy("alice", "imap")).toBe("127.0.0.2")
  })

  it("LMTP: the proxy's lmtp goes through the userdb relay unit (0660 group dovecot); bob's mail lands on 127.0.0.3", async () => {
    expect(backend.mailboxFiles("bob")).toEqual([])
    await expectLmtpDelivered(lmtpPort, backend, "bob", "unit test")
    expect(proxy.log()).toMatch(new RegExp(`Sent message to <bob> at 127\\.0\\.0\\.3:${backend.lmtpPort}: 250`))
  })

  it("doveadm auth lookup through the userdb relay unit shows the route", async () => {
    // doveadm runs where Dovecot runs (2.4: in the chroot)
    const l = await proxy.doveadm(["auth", "lookup", "-a", path.join(proxy.paths.baseDir, path.basename(runs[1]!.config.userdb_relay.socket)), "bob"])
    expect(l.code, l.stdout + l.stderr + runs[1]!.proc.output() + proxy.log().slice(-3000)).toBe(0)
    expect(doveadmFields(l.stdout)).toEqual(expect.arrayContaining(["user=bob", "host=127.0.0.3"]))
  })
})
