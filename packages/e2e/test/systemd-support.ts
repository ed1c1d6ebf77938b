// What a systemd unit of config/systemd/ grants, reproduced for a test without systemd as PID 1:
// the unit file parsed, the daemon started with the unit's user, groups, capabilities, umask,
// directories and ProtectSystem=strict, and clients that connect as another user.
import { CLI_BIN, freePort, REPO_ROOT, runCommand, spawnManaged, v23, type ExitInfo, type ManagedProcess, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { expect } from "vitest"
import { FakeDovecot } from "./reliability-support.js"

export const UNIT_DIR = path.join(REPO_ROOT, "config", "systemd")
export const MODES_DIR = path.join(REPO_ROOT, "config", "modes")
/** Where the Debian package installs the daemon; ExecStart of every shipped unit. */
export const SHIPPED_EXEC = "/usr/bin/doveroute"
export const CONFIG_PREFIX = "/etc/doveroute/"

/**
 * The repository's example of a config file a unit reads (what the Debian package installs there):
 * /etc/doveroute/doveroute.json is config/doveroute.json, /etc/doveroute/<mode>.json is
 * config/modes/<mode>.json.
 */
export const exampleConfig = (file: string): string => {
  const name = file.slice(CONFIG_PREFIX.length)
  return name === "doveroute.json" ? path.join(REPO_ROOT, "config", name) : path.join(MODES_DIR, name)
}

/** A unit file: `Key=Value` lines of all sections; a key may repeat. */
export class Unit {
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
  /** Every assignment of `key`, in order. */
  values(key: string): Array<string> {
    return this.entries.filter(([k]) => k === key).map(([, v]) => v)
  }
  /** Every word of every assignment of `key` (an empty assignment resets the list). */
  words(key: string): Array<string> {
    let out: Array<string> = []
    for (const [k, v] of this.entries) if (k === key) out = v.trim() === "" ? [] : [...out, ...v.trim().split(/\s+/)]
    return out
  }
}

export const idOf = async (kind: "-u" | "-g", name: string): Promise<number> => {
  const r = await runCommand("id", [kind, name])
  if (r.code !== 0) throw new Error(`id ${kind} ${name}: ${r.stderr.trim()}`)
  return Number(r.stdout.trim())
}
export const gidOfGroup = (group: string): Promise<number> => v23.gid(group)
export const octal = (s: string): number => parseInt(s, 8)

/** The socket listeners of a doveroute config: [setting, path or address, mode]. */
export const listenersOf = (cfg: Record<string, any>): Array<{ key: string; at: string; mode: number }> => {
  const out: Array<{ key: string; at: string; mode: number }> = []
  for (const section of ["dict", "auth", "login_relay", "userdb_relay"]) {
    const s = cfg[section]
    if (s?.socket !== undefined) out.push({ key: `${section}.socket`, at: s.socket, mode: octal(s.mode ?? "0660") })
  }
  if (cfg.http?.listen !== undefined) out.push({ key: "http.listen", at: cfg.http.listen, mode: octal(cfg.http.mode ?? "0660") })
  return out
}

/**
 * Every absolute path of the config moved: below a key of `at` to its value, otherwise under `root`
 * (the store URL included); a loopback HTTP port replaced by `httpPort`.
 */
export const rebase = (value: unknown, root: string, httpPort: number, at: Readonly<Record<string, string>> = {}): unknown => {
  if (typeof value === "string") {
    if (value.startsWith("/")) return movePath(value, root, at)
    if (value.startsWith("sqlite:/")) return `sqlite:${movePath(value.slice("sqlite:".length), root, at)}`
    if (/^127\.0\.0\.1:\d+$/.test(value)) return `127.0.0.1:${httpPort}`
    return value
  }
  if (Array.isArray(value)) return value.map((v) => rebase(v, root, httpPort, at))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rebase(v, root, httpPort, at)]))
  }
  return value
}

/** `p` below a key of `at` → below its value; otherwise `root` + `p`. */
export const movePath = (p: string, root: string, at: Readonly<Record<string, string>> = {}): string => {
  for (const [from, to] of Object.entries(at)) {
    if (p === from || p.startsWith(`${from}/`)) return to + p.slice(from.length)
  }
  return root + p
}

export const mkdirAs = (p: string, mode: number, uid: number, gid: number): void => {
  fs.mkdirSync(p, { recursive: true })
  fs.chownSync(p, uid, gid)
  fs.chmodSync(p, mode)
}

/**
 * As `user` (uid, gid and supplementary groups of that account): connect to the UNIX socket `at`
 * (or GET /route on the TCP address), send `probe`, and return the first line received, the
 * error code (EACCES …) or `HTTP <status>` (over TCP, with `Authorization: Bearer <token>` when given).
 */
export const talkAs = async (user: string, at: string, probe: string | undefined, token?: string): Promise<string> =>
  talkAsIds({ uid: await idOf("-u", user), gid: await idOf("-g", user), initGroups: true }, at, probe, token)

/**
 * {@link talkAs} as the numeric `uid`/`gid` (a user of another system's passwd, e.g. the 2.4.1
 * chroot's `dovecot`); supplementary groups of the host's account only with `initGroups`.
 */
export const talkAsIds = async (ids: { readonly uid: number; readonly gid: number; readonly initGroups?: boolean }, at: string, probe: string | undefined, token?: string): Promise<string> => {
  const script = at.startsWith("/")
    ? `const c=require("net").connect(${JSON.stringify(at)});let b="";` +
      `c.on("connect",()=>{${probe === undefined ? "" : `c.write(${JSON.stringify(probe)})`}});` +
      `c.on("data",(d)=>{b+=d;const i=b.indexOf("\\n");if(i>=0){console.log(b.slice(0,i));process.exit(0)}});` +
      `c.on("error",(e)=>{console.log(e.code);process.exit(0)});` +
      `setTimeout(()=>{console.log("no reply: "+JSON.stringify(b));process.exit(0)},10000)`
    : `require("http").get("http://${at}/route?user=alice&protocol=imap",{headers:${JSON.stringify(token === undefined ? {} : { authorization: `Bearer ${token}` })}},(r)=>{console.log("HTTP "+r.statusCode);process.exit(0)})` +
      `.on("error",(e)=>{console.log(e.code);process.exit(0)})`
  const r = await runCommand("setpriv", [
    "--reuid", String(ids.uid), "--regid", String(ids.gid), ...(ids.initGroups === true ? ["--init-groups"] : ["--clear-groups"]),
    process.execPath, "-e", script
  ], { timeoutMs: 20_000 })
  return (r.stdout.trim() || r.stderr.trim()).split("\n")[0]!
}

/** A daemon started the way `unit` starts it, on the fake root `root`. */
export interface UnitRun {
  /** The started process (under `trace`: strace, whose child is the daemon). */
  readonly proc: ManagedProcess
  readonly config: Record<string, any>
  readonly uid: number
  readonly gid: number
  readonly stateDirs: ReadonlyArray<string>
  /** PID of the daemon itself. */
  daemonPid(): number
  /** SIGTERM to the daemon; resolves with how the started process ended. */
  stop(): Promise<ExitInfo>
  /** Under `trace`: the names of the system calls the daemon (and its threads) made so far. */
  syscalls(): Set<string>
}

let sysusers: Promise<void> | undefined

/**
 * Create the units' system user from config/systemd/doveroute.sysusers, as the package's postinst
 * does (systemd-sysusers; idempotent, once per test process).
 */
export const applySysusers = (): Promise<void> =>
  (sysusers ??= (async () => {
    const r = await runCommand("systemd-sysusers", [path.join(UNIT_DIR, "doveroute.sysusers")])
    if (r.code !== 0) throw new Error(`systemd-sysusers doveroute.sysusers failed (exit ${r.code}): ${r.stderr}`)
  })())

/** How to start a unit: environment, grants taken away, paths of a real Dovecot, a hook. */
export interface StartOptions {
  /** Extra environment: what the unit's credentials would supply. */
  readonly env?: Readonly<Record<string, string>>
  /** The unit with a grant taken away (negative checks). */
  readonly without?: { readonly capabilities?: boolean; readonly readWritePaths?: boolean }
  /**
   * Directories that exist already, outside the fake root: `{"/run/dovecot": <a real Dovecot's
   * base_dir>}`. Paths below a key go there; the fake Dovecot upstream sockets are not made then.
   */
  readonly at?: Readonly<Record<string, string>>
  /** Called with the moved config before it is written and the daemon starts (seed the store, set ports). */
  readonly prepare?: (config: Record<string, any>, ids: { readonly uid: number; readonly gid: number }) => Promise<void> | void
  /** Run the daemon under `strace -f` (as the unit's user) to see its system calls. */
  readonly trace?: boolean
  /**
   * Group ids as the system Dovecot runs on resolves the names (the 2.4.1 chroot has its own
   * /etc/group): used for Group=, SupplementaryGroups= and the directories' group.
   */
  readonly groups?: Readonly<Record<string, number>>
  /**
   * What LoadCredential= would pass: name → secret, written as systemd does (a directory of the
   * unit's user, 0500, files 0400) and named by $CREDENTIALS_DIRECTORY.
   */
  readonly credentials?: Readonly<Record<string, string>>
}

/** The credential names of a unit's LoadCredential= lines, the commented-out ones included. */
export const credentialNames = (unit: Unit): Array<string> =>
  [...unit.text.matchAll(/^#?\s*LoadCredential=([^:\s]+):/gm)].map((m) => m[1]!)

const capArg = (caps: ReadonlyArray<string>): string =>
  ["-all", ...caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(",")

const shellQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`

/**
 * Start the daemon as `unit` starts it, on the fake root `<tmp>/root`: lay out Dovecot's and
 * Postfix's directories as Debian's packages make them (base_dir 0755 root, login/ 0750
 * root:dovenull, private/ 0700 postfix) and fake Dovecot sockets for the relays to connect to,
 * then grant what the unit grants — RuntimeDirectory/StateDirectory with their mode and owner,
 * ProtectSystem=strict (a private mount namespace where the fake root and the `at` directories are
 * read-only except those directories and ReadWritePaths), UMask, User/Group/SupplementaryGroups,
 * NoNewPrivileges and capabilities (setpriv) — and run the ExecStart command line with the example
 * config it names ({@link exampleConfig}, paths moved).
 */
export async function startAsUnit(unit: Unit, tmp: TempDir, fakes: Array<FakeDovecot>, o: StartOptions = {}): Promise<UnitRun> {
  await applySysusers()
  const root = tmp.join("root")
  const at = o.at ?? {}
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
  const groupId = async (g: string): Promise<number> => o.groups?.[g] ?? gidOfGroup(g)
  const gid = await groupId(group)
  const groups = await Promise.all(unit.words("SupplementaryGroups").map(groupId))
  const runtimeDirs = unit.words("RuntimeDirectory").map((d) => movePath(`/run/${d}`, root, at))
  for (const d of runtimeDirs) mkdirAs(d, octal(unit.get("RuntimeDirectoryMode") ?? "0755"), uid, gid)
  const stateDirs = unit.words("StateDirectory").map((d) => movePath(`/var/lib/${d}`, root, at))
  for (const d of stateDirs) mkdirAs(d, octal(unit.get("StateDirectoryMode") ?? "0755"), uid, gid)
  const readWrite = o.without?.readWritePaths === true ? [] : unit.words("ReadWritePaths").map((p) => movePath(p, root, at))
  expect(unit.get("ProtectSystem"), `${unit.name}: ProtectSystem`).toBe("strict")
  const writable = [...runtimeDirs, ...stateDirs, ...readWrite]

  // the example config ExecStart names, moved under the fake root
  const exec = unit.get("ExecStart")!.split(/\s+/)
  expect(exec.slice(0, 3), `${unit.name}: ExecStart`).toEqual([SHIPPED_EXEC, "serve", "--config"])
  expect(exec[3]!.startsWith(CONFIG_PREFIX), `${unit.name}: config under ${CONFIG_PREFIX}`).toBe(true)
  const example = exampleConfig(exec[3]!)
  const config = rebase(JSON.parse(fs.readFileSync(example, "utf8")), root, await freePort(), at) as Record<string, any>
  await o.prepare?.(config, { uid, gid })
  const configFile = root + exec[3]
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2))
  fs.chownSync(configFile, 0, gid)
  fs.chmodSync(configFile, 0o640)

  // Dovecot's sockets the relays connect to, with Dovecot's modes and owners (doveconf -d: login/login
  // 0666 root, auth-userdb 0666 dovecot, auth-master 0600 root); a real Dovecot (`at`) has its own
  const dovecotSocket: Record<string, { readonly kind: "login" | "userdb"; readonly mode: number; readonly uid: number }> = {
    login: { kind: "login", mode: 0o666, uid: 0 },
    "auth-userdb": { kind: "userdb", mode: 0o666, uid: dovecotUid },
    "auth-master": { kind: "userdb", mode: 0o600, uid: 0 }
  }
  for (const upstream of [config.login_relay?.upstream, config.userdb_relay?.upstream]) {
    if (typeof upstream !== "string" || fs.existsSync(upstream)) continue
    const known = dovecotSocket[path.basename(upstream)]
    if (known === undefined) throw new Error(`${unit.name}: upstream ${upstream} is none of Dovecot's sockets`)
    fakes.push(await FakeDovecot.listen(upstream, known.kind))
    fs.chownSync(upstream, known.uid, 0)
    fs.chmodSync(upstream, known.mode)
  }

  // ProtectSystem=strict for the fake root (and the real directories): read-only, except the
  // directories the unit grants
  const q = shellQuote
  const mounts: Array<string> = []
  for (const r of [root, ...Object.values(at)]) mounts.push(`mount --bind ${q(r)} ${q(r)}`, `mount -o remount,bind,ro ${q(r)}`)
  for (const w of writable) mounts.push(`mount --bind ${q(w)} ${q(w)}`, `mount -o remount,bind,rw ${q(w)}`)
  let traceFile: string | undefined
  if (o.trace === true) {
    mkdirAs(tmp.join("trace"), 0o700, uid, gid)
    traceFile = tmp.join("trace", "syscalls.txt")
  }
  const caps = o.without?.capabilities === true ? [] : unit.words("AmbientCapabilities")
  const bounding = o.without?.capabilities === true ? [] : unit.words("CapabilityBoundingSet")
  const setpriv = [
    "setpriv", "--reuid", String(uid), "--regid", String(gid),
    ...(groups.length > 0 ? ["--groups", groups.join(",")] : ["--clear-groups"]),
    ...(unit.get("NoNewPrivileges") === "yes" ? ["--no-new-privs"] : []),
    `--inh-caps=${capArg(caps)}`, `--ambient-caps=${capArg(caps)}`, `--bounding-set=${capArg(bounding)}`,
    ...(traceFile === undefined ? [] : ["strace", "-f", "-qq", "-o", traceFile]),
    process.execPath, CLI_BIN, ...exec.slice(1, 3), configFile
  ]
  const script = `set -e; ${mounts.join("; ")}; umask ${unit.get("UMask") ?? "0022"}; exec ${setpriv.map(q).join(" ")}`
  const unitEnv = Object.fromEntries(unit.words("Environment").map((kv) => kv.split("=", 2) as [string, string]))
  const credentialEnv: Record<string, string> = {}
  if (o.credentials !== undefined) {
    const dir = tmp.join("credentials")
    fs.mkdirSync(dir)
    for (const [name, value] of Object.entries(o.credentials)) {
      fs.writeFileSync(path.join(dir, name), value, { mode: 0o400 })
      fs.chownSync(path.join(dir, name), uid, gid)
    }
    fs.chownSync(dir, uid, gid)
    fs.chmodSync(dir, 0o500)
    credentialEnv["CREDENTIALS_DIRECTORY"] = dir
  }
  const proc = await spawnManaged("unshare", ["--mount", "--propagation", "private", "sh", "-c", script], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...unitEnv, ...credentialEnv, ...(o.env ?? {}) },
    cwd: "/"
  })
  const daemonPid = (): number => {
    if (traceFile === undefined) return proc.pid
    const children = fs.readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(/\s+/)
    if (children.length !== 1 || children[0] === "") throw new Error(`strace ${proc.pid} has children ${JSON.stringify(children)}`)
    return Number(children[0])
  }
  return {
    proc, config, uid, gid, stateDirs, daemonPid,
    stop: async () => {
      if (traceFile === undefined || proc.exitInfo() !== undefined) return proc.stop()
      process.kill(daemonPid(), "SIGTERM")
      const timer = setTimeout(() => void proc.stop(), 15_000)
      try {
        return await proc.exited
      } finally {
        clearTimeout(timer)
      }
    },
    syscalls: () => {
      const names = new Set<string>()
      if (traceFile === undefined) return names
      for (const line of fs.readFileSync(traceFile, "utf8").split("\n")) {
        const m = /^\d+\s+([a-z0-9_]+)\(/.exec(line)
        if (m !== null) names.add(m[1]!)
      }
      return names
    }
  }
}

let filterGroups: Promise<Map<string, ReadonlyArray<string>>> | undefined

/** systemd's system call groups (`systemd-analyze syscall-filter`), each as its members. */
const syscallGroups = (): Promise<Map<string, ReadonlyArray<string>>> =>
  (filterGroups ??= (async () => {
    const r = await runCommand("systemd-analyze", ["syscall-filter"])
    if (r.code !== 0) throw new Error(`systemd-analyze syscall-filter: ${r.stderr}`)
    const groups = new Map<string, Array<string>>()
    let current: Array<string> | undefined
    for (const line of r.stdout.split("\n")) {
      if (line.startsWith("@")) groups.set(line.trim(), (current = []))
      else if (current !== undefined && line.trim() !== "" && !line.trim().startsWith("#")) current.push(line.trim())
    }
    return groups
  })())

/**
 * The system calls a unit's SystemCallFilter= lines allow: the first line is an allow list (no
 * `~`); later lines add to it, `~` lines take away (systemd's rule for mixed lines). Groups expanded.
 */
export async function allowedSyscalls(unit: Unit): Promise<Set<string>> {
  const groups = await syscallGroups()
  const expand = (name: string, into: Set<string>): Set<string> => {
    if (!name.startsWith("@")) return into.add(name)
    const members = groups.get(name)
    if (members === undefined) throw new Error(`${unit.name}: unknown system call group ${name}`)
    for (const m of members) expand(m, into)
    return into
  }
  const lines = unit.values("SystemCallFilter")
  if (lines.length === 0 || lines[0]!.startsWith("~")) throw new Error(`${unit.name}: SystemCallFilter= must start with an allow list`)
  const allowed = new Set<string>()
  for (const line of lines) {
    const deny = line.startsWith("~")
    for (const word of line.replace(/^~/, "").trim().split(/\s+/)) {
      for (const call of expand(word, new Set())) deny ? allowed.delete(call) : allowed.add(call)
    }
  }
  return allowed
}

/** Until every listener is up; undefined when the daemon exited first. */
export async function waitListening(run: UnitRun, timeoutMs = 30_000): Promise<boolean> {
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

