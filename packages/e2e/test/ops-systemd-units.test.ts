// Issue 11 — the systemd units in config/systemd/, one per integration mode:
// - every shipped unit passes `systemd-analyze verify` (on a copy whose ExecStart names this
//   checkout's launcher instead of /usr/bin/doveroute; everything else byte for byte as shipped);
// - doveroute.sysusers creates the user the units run as;
// - for each unit, the daemon is started as that unit starts it — without systemd as PID 1, the
//   test grants what the unit grants, read from the unit file: User/Group/SupplementaryGroups,
//   UMask, NoNewPrivileges, capabilities (setpriv), RuntimeDirectory/StateDirectory with their
//   modes and owner, ProtectSystem=strict (a mount namespace in which the fake root is read-only
//   except RuntimeDirectory, StateDirectory and ReadWritePaths) — on the example config its
//   ExecStart names (config/modes/<mode>.json; config/doveroute.json for the default doveroute.service),
//   with every absolute path moved under a fake root
//   whose Dovecot and Postfix directories have the modes Debian's packages give them. Then each
//   socket is checked: mode and owner, the user Dovecot's (or Postfix's) process for that mode runs
//   as gets an answer, `nobody` gets EACCES; SIGHUP reloads; SIGTERM stops with exit 0; and every
//   system call the daemon made meanwhile (strace) is allowed by the unit's SystemCallFilter=;
// - the HTTP unit's commented TCP alternative: refused without LoadCredential=http_token, and with
//   it 401/403 without the right token;
// - the login relay without its capability, or without its ReadWritePaths, cannot create its socket:
//   both grants are needed, and the reproduction really enforces them.
import { CLI_BIN, freePort, makeTempDir, REPO_ROOT, runCommand, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { FakeDovecot, MASTER_PASSWORD } from "./reliability-support.js"
import { allowedSyscalls, applySysusers, CONFIG_PREFIX, credentialNames, listenersOf, octal, SHIPPED_EXEC, startAsUnit, talkAs, Unit, UNIT_DIR, waitListening } from "./systemd-support.js"

const unitNames = fs.readdirSync(UNIT_DIR).filter((f) => f.endsWith(".service")).sort()

/** Who connects for each mode (Dovecot's and Postfix's processes) and how to see the daemon answer. */
interface ModeClient {
  /** The user Dovecot's (Postfix's) process for this mode runs as. */
  readonly user: string
  /** Sent after connecting (for protocols where the client speaks first). */
  readonly probe?: string
  /** The first line the daemon sends back. */
  readonly reply: RegExp
  /** What the unit's LoadCredential= lines (commented out as shipped) would supply. */
  readonly credentials?: Readonly<Record<string, string>>
}
const DICT_CLIENT: ModeClient = { user: "dovecot", probe: "H3\t2\t0\t\tdirector\nLshared/passdb/alice\talice\n", reply: /^F/ }
const CLIENTS: Readonly<Record<string, ModeClient>> = {
  // Dovecot 2.3's auth process (user dovecot) asks over the dict protocol; no backend yet: "F"
  "doveroute-dict.service": DICT_CLIENT,
  // the default unit on /etc/doveroute/doveroute.json, which opens the dict socket as shipped
  "doveroute.service": DICT_CLIENT,
  // the login processes run as dovenull; the auth server greets first
  "doveroute-auth.service": { user: "dovenull", reply: /^VERSION\t1\t\d+$/ },
  // Postfix's smtpd runs as postfix; the master password from LoadCredential=auth_password
  "doveroute-sasl.service": { user: "postfix", reply: /^VERSION\t1\t\d+$/, credentials: { auth_password: MASTER_PASSWORD } },
  // the relay passes Dovecot's login/login greeting through
  "doveroute-login-relay.service": { user: "dovenull", reply: /^VERSION\t1\t2$/ },
  // LMTP (extra group dovecot) and the auth process; the relay passes auth-userdb's greeting through
  "doveroute-userdb-relay.service": { user: "dovecot", probe: "VERSION\t1\t0\n", reply: /^VERSION\t1\t1$/ },
  // the 2.4 Lua passdb runs in the auth process (user dovecot); GET /route over the UNIX socket,
  // no backend yet: 503
  "doveroute-http.service": { user: "dovecot", probe: "GET /route?user=alice&protocol=imap HTTP/1.1\r\nHost: localhost\r\n\r\n", reply: /^HTTP\/1\.1 503 / }
}

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
})

async function setup(): Promise<{ tmp: TempDir; fakes: Array<FakeDovecot> }> {
  const tmp = makeTempDir({ prefix: "dvu-" })
  const fakes: Array<FakeDovecot> = []
  cleanups.push(() => tmp.cleanup(), async () => { for (const f of fakes) await f.close() })
  return { tmp, fakes }
}

describe("config/systemd units", () => {
  // what the package's postinst does with the sysusers file (idempotent)
  beforeAll(() => applySysusers())

  it("one unit per integration mode, each with a test client below", () => {
    expect(unitNames).toEqual(Object.keys(CLIENTS).sort())
    expect(fs.existsSync(path.join(REPO_ROOT, "config", "doveroute.service")), "the old single unit is gone").toBe(false)
  })

  it("doveroute.sysusers creates the system user the units run as", async () => {
    const users = new Set(unitNames.map((n) => Unit.read(n).get("User")))
    expect([...users]).toEqual(["doveroute"])
    const pw = (await runCommand("getent", ["passwd", "doveroute"])).stdout.trim().split(":")
    expect(Number(pw[2]), "a system uid").toBeLessThan(1000)
    expect(pw[5]).toBe("/var/lib/doveroute")
    expect(pw[6]).toMatch(/nologin$/)
  })

  it("every unit passes systemd-analyze verify (ExecStart pointed at this checkout)", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    for (const name of unitNames) {
      const shipped = fs.readFileSync(path.join(UNIT_DIR, name), "utf8")
      expect(shipped, name).toMatch(new RegExp(`^ExecStart=${SHIPPED_EXEC} serve --config ${CONFIG_PREFIX}[a-z-]+\\.json$`, "m"))
      fs.writeFileSync(tmp.join(name), shipped.replace(/^ExecStart=\/usr\/bin\/doveroute /m, `ExecStart=${CLI_BIN} `))
    }
    const r = await runCommand("systemd-analyze", ["verify", ...unitNames.map((n) => tmp.join(n))], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    // verify exits 0 on parse warnings: any line naming one of our units is a failure
    expect(r.stderr.split("\n").filter((l) => /doveroute/.test(l)), r.stderr).toEqual([])

    // the check is not blind: a misspelt value in a copy is reported
    const broken = tmp.join("broken", unitNames[0]!)
    fs.mkdirSync(path.dirname(broken))
    fs.writeFileSync(broken, fs.readFileSync(tmp.join(unitNames[0]!), "utf8").replace(/^ProtectSystem=strict$/m, "ProtectSystem=stricter"))
    const b = await runCommand("systemd-analyze", ["verify", broken], { timeoutMs: 60_000 })
    expect(b.stderr).toMatch(/protect system value.*stricter/i)
  }, 90_000)

  it.each(unitNames)("%s: run as the unit runs it: the mode's Dovecot/Postfix user gets in, nobody does not (UNIX sockets); reload; stop; system calls within SystemCallFilter=", async (name) => {
    const unit = Unit.read(name)
    const client = CLIENTS[name]!
    const { tmp, fakes } = await setup()
    // the credentials the test supplies are the ones the unit names
    for (const c of Object.keys(client.credentials ?? {})) expect(credentialNames(unit), `${name}: LoadCredential=${c}`).toContain(c)
    const run = await startAsUnit(unit, tmp, fakes, { ...(client.credentials ? { credentials: client.credentials } : {}), trace: true })
    cleanups.push(() => run.stop())
    expect(await waitListening(run), run.proc.output()).toBe(true)

    const root = tmp.join("root")
    const listeners = listenersOf(run.config)
    expect(listeners.length, `${name}: listeners`).toBeGreaterThan(0)
    // ReadWritePaths only where this mode writes: each one holds one of its sockets
    for (const rw of unit.words("ReadWritePaths")) {
      expect(listeners.some((l) => path.dirname(l.at) === root + rw), `${name}: ReadWritePaths=${rw} holds a socket`).toBe(true)
    }
    for (const d of unit.words("RuntimeDirectory")) {
      expect(listeners.some((l) => path.dirname(l.at) === path.join(root, "run", d)), `${name}: RuntimeDirectory=${d} holds a socket`).toBe(true)
    }
    for (const l of listeners) {
      // every shipped listener is a UNIX socket: its mode and group decide who connects
      expect(l.at.startsWith("/"), `${name}: ${l.key} is a UNIX socket path`).toBe(true)
      const st = fs.statSync(l.at)
      expect(st.isSocket(), `${name}: ${l.key} is a socket`).toBe(true)
      expect([(st.mode & 0o777).toString(8), st.uid, st.gid], `${name}: ${l.key} mode, owner, group`).toEqual([l.mode.toString(8), run.uid, run.gid])
      expect(await talkAs(client.user, l.at, client.probe), `${client.user} → ${l.key}`).toMatch(client.reply)
      expect(await talkAs("nobody", l.at, client.probe), `nobody → ${l.key}`).toBe("EACCES")
    }
    // the store was created by the unit's user under its UMask
    const store = String(run.config.store).replace(/^sqlite:/, "")
    expect(run.stateDirs.some((d) => path.dirname(store) === d), `${name}: store in StateDirectory`).toBe(true)
    const st = fs.statSync(store)
    expect(st.uid).toBe(run.uid)
    expect((st.mode & 0o777 & octal(unit.get("UMask")!)).toString(8), `${name}: store file mode vs UMask`).toBe("0")

    // ExecReload= (SIGHUP) as systemctl reload sends it
    expect(unit.get("ExecReload")).toBe("/bin/kill -HUP $MAINPID")
    process.kill(run.daemonPid(), "SIGHUP")
    for (let i = 0; i < 200 && !/configuration reloaded/.test(run.proc.output()); i++) await new Promise((r) => setTimeout(r, 50))
    expect(run.proc.output()).toMatch(/configuration reloaded/)

    expect((await run.stop()).code, run.proc.output()).toBe(0)
    for (const l of listeners) if (l.at.startsWith("/")) expect(fs.existsSync(l.at), `${l.key} removed on stop`).toBe(false)

    // SystemCallFilter=: every system call the daemon made (start, clients, reload, stop) is allowed;
    // a call outside it would fail with EPERM or kill the daemon under systemd
    const made = run.syscalls()
    expect(made.size, "strace saw the daemon").toBeGreaterThan(30)
    expect(made.has("epoll_pwait") || made.has("epoll_wait"), "the event loop was traced").toBe(true)
    const allowed = await allowedSyscalls(unit)
    expect([...made].filter((c) => !allowed.has(c)).sort(), `${name}: system calls outside SystemCallFilter=`).toEqual([])
  }, 120_000)

  it("doveroute-http.service, its commented TCP alternative: refused without LoadCredential=http_token; with it, 401 without the token, an answer with it", async () => {
    const unit = Unit.read("doveroute-http.service")
    expect(credentialNames(unit)).toContain("http_token")
    const token = "tok-3f9a61c0d2b84e57"
    const tcp = async (config: Record<string, any>) => {
      config.http = { listen: `127.0.0.1:${await freePort()}` }
    }
    const refused = await startAsUnit(unit, (await setup()).tmp, [], { prepare: tcp })
    cleanups.push(() => refused.proc.stop())
    expect(await waitListening(refused), refused.proc.output()).toBe(false)
    expect(refused.proc.exitInfo()?.code, refused.proc.output()).toBe(1)
    expect(refused.proc.output()).toMatch(/a TCP http\.listen needs a shared token/)

    const run = await startAsUnit(unit, (await setup()).tmp, [], { prepare: tcp, credentials: { http_token: token } })
    cleanups.push(() => run.stop())
    expect(await waitListening(run), run.proc.output()).toBe(true)
    expect(await talkAs("nobody", run.config.http.listen, undefined)).toBe("HTTP 401")
    expect(await talkAs("dovecot", run.config.http.listen, undefined, "wrong-token")).toBe("HTTP 403")
    expect(await talkAs("dovecot", run.config.http.listen, undefined, token)).toBe("HTTP 503")
    expect(run.proc.output()).not.toContain(token)
    expect((await run.stop()).code, run.proc.output()).toBe(0)
  }, 90_000)

  it("login relay: without CAP_DAC_OVERRIDE, or without its ReadWritePaths, it cannot create its socket", async () => {
    const unit = Unit.read("doveroute-login-relay.service")
    expect(unit.words("AmbientCapabilities")).toEqual(["CAP_DAC_OVERRIDE"])
    for (const [without, error] of [[{ capabilities: true }, /EACCES/], [{ readWritePaths: true }, /EROFS/]] as const) {
      const { tmp, fakes } = await setup()
      const run = await startAsUnit(unit, tmp, fakes, { without })
      cleanups.push(() => run.proc.stop())
      expect(await waitListening(run), run.proc.output()).toBe(false)
      expect(run.proc.exitInfo()?.code, run.proc.output()).toBe(1)
      expect(run.proc.output(), JSON.stringify(without)).toMatch(error)
      expect(fs.existsSync(run.config.login_relay.socket)).toBe(false)
    }
  }, 90_000)
})
