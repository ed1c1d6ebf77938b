// Issue 5, real PAM in the daemon: the standalone auth socket with `--auth-mode pam` checks
// passwords through Linux-PAM (pam_unix, a service file written by the test) for system users the
// test creates with useradd + chpasswd (removed afterwards), then routes. Clients: `doveadm auth
// test -a <socket>` and real IMAP logins through a Dovecot 2.3.19 proxy whose login processes use
// the socket, landing on real backends. Needs root (useradd, /etc/pam.d, pam_unix reads /etc/shadow).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { randomBytes } from "node:crypto"
import { rmSync, writeFileSync } from "node:fs"
import {
  authSocketRoute23, doveadmFields, freePort, imapLogin, makeTempDir, mappedBackend, mappingRows,
  proxyConfig23, runChecked, runCommand, startBackend23, startDaemon, startDovecot23, teardown
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, TempDir } from "@doveroute/testkit"
import { DAEMON_ENV, IP_OF, seedStore } from "./auth-fixtures.js"

const tag = randomBytes(3).toString("hex")
/** Two system users: `good` logs in; `other` only ever types wrong passwords. */
const good = { name: `dvrpam${tag}a`, password: `Pam-${tag}-pass 1` }
const other = { name: `dvrpam${tag}b`, password: `Pam-${tag}-pass 2` }
const service = `doveroute-e2e-${tag}`
const pamFile = `/etc/pam.d/${service}`

const removeUsers = async () => {
  for (const u of [good.name, other.name]) await runCommand("userdel", [u]).catch(() => undefined)
}

describe("real PAM (pam_unix) behind the standalone auth socket", () => {
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let db: string
  let sock: string

  // A setup failure (no root, node-linux-pam not built, Dovecot missing) fails every test below by
  // name: thrown from beforeAll it would leave them reported as skipped.
  let setupError: unknown
  const ready = () => {
    if (setupError !== undefined) throw setupError
  }

  beforeAll(async () => {
    try {
      await setup()
    } catch (e) {
      setupError = e
    }
  })

  const setup = async () => {
    if (process.getuid?.() !== 0) throw new Error("the real-PAM test needs root (useradd, /etc/pam.d, /etc/shadow)")
    await removeUsers()
    for (const u of [good, other]) {
      await runChecked("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", u.name])
      await runChecked("chpasswd", [], { input: `${u.name}:${u.password}\n` })
    }
    // our own PAM service: pam_unix only, no failure delay (the daemon's delay is set to 0 too)
    writeFileSync(pamFile, "# doveroute e2e test (removed after the test)\nauth required pam_unix.so nodelay\naccount required pam_unix.so\n")
    tmp = makeTempDir()
    db = tmp.join("routes.db")
    sock = tmp.join("auth.sock")
    imapPort = await freePort()
    const [be] = await Promise.all([
      // the backends check the password again (the proxy forwards it): same users, same passwords
      startBackend23(tmp.path, { users: { [good.name]: good.password, [other.name]: other.password } }),
      seedStore(db)
    ])
    backend = be
    daemon = await startDaemon({
      args: ["--store", `sqlite:${db}`, "--auth-socket", sock, "--socket-mode", "0666", "--auth-mode", "pam", "--pam-service", service, "--port", String(backend.imapPort)],
      env: DAEMON_ENV,
      waitFor: [sock]
    })
    const dir = tmp.join("proxy")
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort }, authSocketRoute23({ socketPath: sock, services: ["imap"] })),
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  }

  afterAll(async () => {
    try {
      const [code] = await teardown([daemon], [proxy, backend?.dovecot], tmp)
      if (daemon !== undefined) expect(code).toBe(0)
    } finally {
      rmSync(pamFile, { force: true })
      await removeUsers()
    }
  })

  it("doveadm auth test -a <socket> with the right password: PAM accepts, doveroute routes (one row)", async () => {
    ready()
    const r = await proxy.doveadm(["auth", "test", "-a", sock, good.name, good.password])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const id = await mappedBackend(db, good.name)
    expect(id).toBeDefined()
    expect(doveadmFields(r.stdout)).toEqual([`user=${good.name}`, "proxy", `host=${IP_OF[id!]}`, `port=${backend.imapPort}`, `pass=${good.password}`])
  })

  it("a real IMAP login through the 2.3 proxy lands on the user's backend", async () => {
    ready()
    const r = await imapLogin("127.0.0.1", imapPort, good.name, good.password, { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(r.select?.status, r.transcript).toBe("OK")
    expect(backend.servedBy(good.name, "imap")).toBe(IP_OF[(await mappedBackend(db, good.name))!])
    expect((await mappingRows(db)).filter((row) => row.user === good.name)).toHaveLength(1)
  })

  it("a wrong password fails (plain FAIL, not temp_fail), reaches no backend, and a user who failed PAM gets no row", async () => {
    ready()
    const t = await proxy.doveadm(["auth", "test", "-a", sock, other.name, "not-the-password"])
    expect(t.code, t.stdout + t.stderr).toBe(77)
    expect(t.stdout).toMatch(/auth failed/)
    expect(t.stdout).not.toMatch(/temp_fail/)
    const r = await imapLogin("127.0.0.1", imapPort, other.name, "not-the-password")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(r.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
    const wrongForGood = await imapLogin("127.0.0.1", imapPort, good.name, other.password)
    expect(wrongForGood.login.status).toBe("NO")
    const nobody = await proxy.doveadm(["auth", "test", "-a", sock, `nosuch${tag}`, "x"])
    expect(nobody.code).toBe(77)
    expect(await mappedBackend(db, other.name)).toBeUndefined()
    expect(await mappedBackend(db, `nosuch${tag}`)).toBeUndefined()
    expect(backend.logins(other.name)).toHaveLength(0)
    expect(daemon.logs()).toMatch(/authenticator=pam/)
    expect(daemon.logs()).not.toContain("not-the-password") // typed passwords are never logged
  })

  it("once PAM accepts that user, the same socket routes them too (the row appears only now)", async () => {
    ready()
    const r = await imapLogin("127.0.0.1", imapPort, other.name, other.password)
    expect(r.login.status, r.transcript).toBe("OK")
    expect(await mappedBackend(db, other.name)).toBeDefined()
  })
})
