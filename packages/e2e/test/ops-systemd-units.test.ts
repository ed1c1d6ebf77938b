// Issue 11 — the systemd units in config/systemd/, one per integration mode:
// - every shipped unit passes `systemd-analyze verify` (on a copy whose ExecStart names this
//   checkout's launcher instead of /usr/bin/doveroute; everything else byte for byte as shipped);
// - doveroute.sysusers creates the user the units run as;
// - for each unit, the daemon is started as that unit starts it — without systemd as PID 1, the
//   test grants what the unit grants, read from the unit file: User/Group/SupplementaryGroups,
//   UMask, NoNewPrivileges, capabilities (setpriv), RuntimeDirectory/StateDirectory with their
//   modes and owner, ProtectSystem=strict (a mount namespace in which the fake root is read-only
//   except RuntimeDirectory, StateDirectory and ReadWritePaths) — on the example config its
//   ExecStart names (config/modes/<mode>.json), with every absolute path moved under a fake root
//   whose Dovecot and Postfix directories have the modes Debian's packages give them. Then each
//   socket is checked: mode and owner, the user Dovecot's (or Postfix's) process for that mode runs
//   as gets an answer, `nobody` gets EACCES;
// - the login relay without its capability, or without its ReadWritePaths, cannot create its socket:
//   both grants are needed, and the reproduction really enforces them.
import { CLI_BIN, freePort, makeTempDir, REPO_ROOT, runCommand, spawnManaged, type ManagedProcess, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { FakeDovecot, MASTER_PASSWORD } from "./reliability-support.js"

const UNIT_DIR = path.join(REPO_ROOT, "config", "systemd")
const MODES_DIR = path.join(REPO_ROOT, "config", "modes")
const SHIPPED_EXEC = "/usr/bin/doveroute"
const CONFIG_PREFIX = "/etc/doveroute/"

const unitNames = fs.readdirSync(UNIT_DIR).filter((f) => f.endsWith(".service")).sort()

/** Who connects for each mode (Dovecot's and Postfix's processes) and how to see the daemon answer. */
interface ModeClient {
  /** The user Dovecot's (Postfix's) process for this mode runs as. */
  readonly user: string
  /** Sent after connecting (for protocols where the client speaks first). */
  readonly probe?: string
  /** The first line the daemon sends back. */
  readonly reply: RegExp
  /** Extra environment: what the unit's credentials would supply. */
  readonly env?: Readonly<Record<string, string>>
}
const CLIENTS: Readonly<Record<string, ModeClient>> = {
  // Dovecot 2.3's auth process (user dovecot) asks over the dict protocol; no backend yet: "F"
  "doveroute-dict.service": { user: "dovecot", probe: "H3\t2\t0\t\tdirector\nLshared/passdb/alice\talice\n", reply: /^F/ },
  // the login processes run as dovenull; the auth server greets first
  "doveroute-auth.service": { user: "dovenull", reply: /^VERSION\t1\t\d+$/ },
  // Postfix's smtpd runs as postfix; the master password stands in for LoadCredential=auth-password
  "doveroute-sasl.service": { user: "postfix", reply: /^VERSION\t1\t\d+$/, env: { DOVEROUTE_AUTH_PASSWORD: MASTER_PASSWORD } },
  // the relay passes Dovecot's login/login greeting through
  "doveroute-login-relay.service": { user: "dovenull", reply: /^VERSION\t1\t2$/ },
  // LMTP (extra group dovecot) and the auth process; the relay passes auth-userdb's greeting through
  "doveroute-userdb-relay.service": { user: "dovecot", probe: "VERSION\t1\t0\n", reply: /^VERSION\t1\t1$/ },
  // the 2.4 Lua passdb runs in the auth process (user dovecot); GET /route, no backend yet: 503
  "doveroute-http.service": { user: "dovecot", reply: /^HTTP 503$/ }
}

/** A unit file: `Key=Value` lines of all sections; a key may repeat. */
class Unit {
  private readonly entries: Array<[string, string]> = []
  constructor(readonly name: string, readonly text: string) {
    for (const raw of text.split("\n")) {
      const line = raw.trim()
      if (line === "" || line.startsWith("#") || line.startsWith(";") || line.startsWith("[")) continue
      const eq = line.indexOf("=")
      if (eq > 0) this.entries.push([line.slice(0, eq), line.slice(eq + 1)])
    }
  }
  static read(name: string): Unit {
    return new Unit(name, fs.readFileSync(path.join(UNIT_DIR, name), "utf8"))
  }
  /** The last value of `key` (systemd: a later assignment overrides), or undefined. */
  get(key: string): string | undefined {
    return this.entries.filter(([k]) => k === key).at(-1)?.[1]
  }
  /** Every word of every assignment of `key` (an empty assignment resets the list). */
  words(key: string): Array<string> {
    let out: Array<string> = []
    for (const [k, v] of this.entries) if (k === key) out = v.trim() === "" ? [] : [...out, ...v.trim().split(/\s+/)]
    return out
  }
}

const idOf = async (kind: "-u" | "-g", name: string): Promise<number> => {
  const r = await runCommand("id", [kind, name])
  if (r.code !== 0) throw new Error(`id ${kind} ${name}: ${r.stderr.trim()}`)
  return Number(r.stdout.trim())
}
const gidOfGroup = async (group: string): Promise<number> => {
  const r = await runCommand("getent", ["group", group])
  if (r.code !== 0) throw new Error(`no group ${group}`)
  return Number(r.stdout.split(":")[2])
}
const octal = (s: string): number => parseInt(s, 8)

/** The socket listeners of a doveroute config: [setting, path or address, mode]. */
const listenersOf = (cfg: Record<string, any>): Array<{ key: string; at: string; mode: number }> => {
  const out: Array<{ key: string; at: string; mode: number }> = []
  for (const section of ["dict", "auth", "login_relay", "userdb_relay"]) {
    const s = cfg[section]
    if (s?.socket !== undefined) out.push({ key: `${section}.socket`, at: s.socket, mode: octal(s.mode ?? "0660") })
  }
  if (cfg.http?.listen !== undefined) out.push({ key: "http.listen", at: cfg.http.listen, mode: octal(cfg.http.mode ?? "0660") })
  return out
}

/** Every absolute path of the config moved under `root` (store URL included); the HTTP port replaced. */
const rebase = (value: unknown, root: string, httpPort: number): unknown => {
  if (typeof value === "string") {
    if (value.startsWith("/")) return root + value
    if (value.startsWith("sqlite:/")) return `sqlite:${root}${value.slice("sqlite:".length)}`
    if (/^127\.0\.0\.1:\d+$/.test(value)) return `127.0.0.1:${httpPort}`
    return value
  }
  if (Array.isArray(value)) return value.map((v) => rebase(v, root, httpPort))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rebase(v, root, httpPort)]))
  }
  return value
}

const mkdirAs = (p: string, mode: number, uid: number, gid: number): void => {
  fs.mkdirSync(p, { recursive: true })
  fs.chownSync(p, uid, gid)
  fs.chmodSync(p, mode)
}

/**
 * As `user` (uid, gid and supplementary groups of that account): connect to the UNIX socket `at`
 * (or GET /route on the TCP address), send `probe`, and return the first line received, the
 * error code (EACCES …) or `HTTP <status>`.
 */
const talkAs = async (user: string, at: string, probe: string | undefined): Promise<string> => {
  const script = at.startsWith("/")
    ? `const c=require("net").connect(${JSON.stringify(at)});let b="";` +
      `c.on("connect",()=>{${probe === undefined ? "" : `c.write(${JSON.stringify(probe)})`}});` +
      `c.on("data",(d)=>{b+=d;const i=b.indexOf("\\n");if(i>=0){console.log(b.slice(0,i));process.exit(0)}});` +
      `c.on("error",(e)=>{console.log(e.code);process.exit(0)});` +
      `setTimeout(()=>{console.log("no reply: "+JSON.stringify(b));process.exit(0)},10000)`
    : `require("http").get("http://${at}/route?user=alice&protocol=imap",(r)=>{console.log("HTTP "+r.statusCode);process.exit(0)})` +
      `.on("error",(e)=>{console.log(e.code);process.exit(0)})`
  const r = await runCommand("setpriv", [
    "--reuid", String(await idOf("-u", user)), "--regid", String(await idOf("-g", user)), "--init-groups",
    process.execPath, "-e", script
  ], { timeoutMs: 20_000 })
  return (r.stdout.trim() || r.stderr.trim()).split("\n")[0]!
}

/** A daemon started the way `unit` starts it, on the fake root `root`. */
interface UnitRun {
  readonly proc: ManagedProcess
  readonly config: Record<string, any>
  readonly uid: number
  readonly gid: number
  readonly stateDirs: ReadonlyArray<string>
}

/** Overrides for the negative checks: the unit with a grant taken away. */
interface Without {
  readonly capabilities?: boolean
  readonly readWritePaths?: boolean
}

const capArg = (caps: ReadonlyArray<string>): string =>
  ["-all", ...caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(",")

/**
 * Lay out the fake root (Dovecot's and Postfix's directories as Debian makes them, the fake Dovecot
 * sockets the relays connect to), then start the daemon with what `unit` grants.
 */
async function startAsUnit(unit: Unit, tmp: TempDir, fakes: Array<FakeDovecot>, env: Readonly<Record<string, string>>, without: Without = {}): Promise<UnitRun> {
  const root = tmp.join("root")
  const [dovenullGid, postfixUid, dovecotUid] = [await gidOfGroup("dovenull"), await idOf("-u", "postfix"), await idOf("-u", "dovecot")]
  // what the distribution's packages make (Dovecot's base_dir and login dir, Postfix's private/)
  mkdirAs(root, 0o755, 0, 0)
  for (const d of ["run", "var", "var/lib", "var/spool", "var/spool/postfix", "etc", "etc/doveroute"]) mkdirAs(path.join(root, d), 0o755, 0, 0)
  mkdirAs(path.join(root, "run/dovecot"), 0o755, 0, 0)
  mkdirAs(path.join(root, "run/dovecot/login"), 0o750, 0, dovenullGid)
  mkdirAs(path.join(root, "var/spool/postfix/private"), 0o700, postfixUid, 0)

  // what the unit grants
  const user = unit.get("User")!
  const group = unit.get("Group")!
  const uid = await idOf("-u", user)
  const gid = await gidOfGroup(group)
  const groups = await Promise.all(unit.words("SupplementaryGroups").map(gidOfGroup))
  const runtimeDirs = unit.words("RuntimeDirectory").map((d) => path.join(root, "run", d))
  for (const d of runtimeDirs) mkdirAs(d, octal(unit.get("RuntimeDirectoryMode") ?? "0755"), uid, gid)
  const stateDirs = unit.words("StateDirectory").map((d) => path.join(root, "var/lib", d))
  for (const d of stateDirs) mkdirAs(d, octal(unit.get("StateDirectoryMode") ?? "0755"), uid, gid)
  const readWrite = without.readWritePaths === true ? [] : unit.words("ReadWritePaths").map((p) => root + p)
  expect(unit.get("ProtectSystem"), `${unit.name}: ProtectSystem`).toBe("strict")
  const writable = [...runtimeDirs, ...stateDirs, ...readWrite]

  // the example config ExecStart names, moved under the fake root
  const exec = unit.get("ExecStart")!.split(/\s+/)
  expect(exec.slice(0, 3), `${unit.name}: ExecStart`).toEqual([SHIPPED_EXEC, "serve", "--config"])
  expect(exec[3]!.startsWith(CONFIG_PREFIX), `${unit.name}: config under ${CONFIG_PREFIX}`).toBe(true)
  const example = path.join(MODES_DIR, exec[3]!.slice(CONFIG_PREFIX.length))
  const config = rebase(JSON.parse(fs.readFileSync(example, "utf8")), root, await freePort()) as Record<string, any>
  const configFile = root + exec[3]
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2))
  fs.chownSync(configFile, 0, gid)
  fs.chmodSync(configFile, 0o640)

  // Dovecot's sockets the relays connect to, with Dovecot's modes (login/login 0666 root,
  // auth-userdb 0666 dovecot)
  if (config.login_relay?.upstream !== undefined) {
    fakes.push(await FakeDovecot.listen(config.login_relay.upstream, "login"))
    fs.chmodSync(config.login_relay.upstream, 0o666)
  }
  if (config.userdb_relay?.upstream !== undefined) {
    fakes.push(await FakeDovecot.listen(config.userdb_relay.upstream, "userdb"))
    fs.chownSync(config.userdb_relay.upstream, dovecotUid, 0)
    fs.chmodSync(config.userdb_relay.upstream, 0o666)
  }

  // ProtectSystem=strict for the fake root: read-only, except the directories the unit grants
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`
  const mounts = [`mount --bind ${q(root)} ${q(root)}`, `mount -o remount,bind,ro ${q(root)}`]
  for (const w of writable) mounts.push(`mount --bind ${q(w)} ${q(w)}`, `mount -o remount,bind,rw ${q(w)}`)
  const caps = without.capabilities === true ? [] : unit.words("AmbientCapabilities")
  const bounding = without.capabilities === true ? [] : unit.words("CapabilityBoundingSet")
  const setpriv = [
    "setpriv", "--reuid", String(uid), "--regid", String(gid),
    ...(groups.length > 0 ? ["--groups", groups.join(",")] : ["--clear-groups"]),
    ...(unit.get("NoNewPrivileges") === "yes" ? ["--no-new-privs"] : []),
    `--inh-caps=${capArg(caps)}`, `--ambient-caps=${capArg(caps)}`, `--bounding-set=${capArg(bounding)}`,
    process.execPath, CLI_BIN, ...exec.slice(1, 3), configFile
  ]
  const script = `set -e; ${mounts.join("; ")}; umask ${unit.get("UMask") ?? "0022"}; exec ${setpriv.map(q).join(" ")}`
  const unitEnv = Object.fromEntries(unit.words("Environment").map((kv) => kv.split("=", 2) as [string, string]))
  const proc = await spawnManaged("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...unitEnv, ...env },
    cwd: "/"
  })
  return { proc, config, uid, gid, stateDirs }
}

/** Until every listener is up; undefined when the daemon exited first. */
async function waitListening(run: UnitRun, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  const up = async (at: string): Promise<boolean> => {
    if (at.startsWith("/")) return fs.existsSync(at)
    const [host, port] = [at.slice(0, at.lastIndexOf(":")), Number(at.slice(at.lastIndexOf(":") + 1))]
    return new Promise((res) => {
      const c = net.connect(port, host, () => { c.destroy(); res(true) })
      c.on("error", () => res(false))
    })
  }
  while (Date.now() < deadline) {
    if (run.proc.exitInfo() !== undefined) return false
    const states = await Promise.all(listenersOf(run.config).map((l) => up(l.at)))
    if (states.every(Boolean) && /doveroute ready/.test(run.proc.output())) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`daemon not ready after ${timeoutMs} ms:\n${run.proc.output()}`)
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
  beforeAll(async () => {
    // what the package's postinst does with the sysusers file (idempotent)
    const r = await runCommand("systemd-sysusers", [path.join(UNIT_DIR, "doveroute.sysusers")])
    expect(r.code, r.stderr).toBe(0)
  })

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

  it.each(unitNames)("%s: started as the unit starts it, the mode's Dovecot/Postfix user gets in, nobody does not", async (name) => {
    const unit = Unit.read(name)
    const client = CLIENTS[name]!
    const { tmp, fakes } = await setup()
    const run = await startAsUnit(unit, tmp, fakes, client.env ?? {})
    cleanups.push(() => run.proc.stop())
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
      if (!l.at.startsWith("/")) {
        // loopback TCP (HTTP): the client user gets an answer; loopback TCP has no per-user gate
        expect(l.at, `${name}: ${l.key}`).toMatch(/^127\.0\.0\.1:\d+$/)
        expect(await talkAs(client.user, l.at, undefined), `${client.user} → ${l.key}`).toMatch(client.reply)
        continue
      }
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

    expect((await run.proc.stop()).code, run.proc.output()).toBe(0)
    for (const l of listeners) if (l.at.startsWith("/")) expect(fs.existsSync(l.at), `${l.key} removed on stop`).toBe(false)
  }, 90_000)

  it("login relay: without CAP_DAC_OVERRIDE, or without its ReadWritePaths, it cannot create its socket", async () => {
    const unit = Unit.read("doveroute-login-relay.service")
    expect(unit.words("AmbientCapabilities")).toEqual(["CAP_DAC_OVERRIDE"])
    for (const [without, error] of [[{ capabilities: true }, /EACCES/], [{ readWritePaths: true }, /EROFS/]] as const) {
      const { tmp, fakes } = await setup()
      const run = await startAsUnit(unit, tmp, fakes, {}, without)
      cleanups.push(() => run.proc.stop())
      expect(await waitListening(run), run.proc.output()).toBe(false)
      expect(run.proc.exitInfo()?.code, run.proc.output()).toBe(1)
      expect(run.proc.output(), JSON.stringify(without)).toMatch(error)
      expect(fs.existsSync(run.config.login_relay.socket)).toBe(false)
    }
  }, 90_000)
})
