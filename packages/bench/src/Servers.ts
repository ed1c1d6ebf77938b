/**
 * The servers under test, each a child process of the benchmark: doveroute (the esbuild bundle,
 * `packages/cli/dist/doveroute.mjs`), real Dovecot 2.3.19 with `lua/director.lua`, and the bare
 * `node:net` server. Each reports its PIDs (for CPU time) and peak RSS (VmHWM).
 */
import {
  joinConfig,
  NO_AUTH_PENALTY_23,
  REPO_ROOT,
  runCommand,
  spawnManaged,
  startDovecot23,
  waitForPath,
  type CommandResult,
  type ManagedProcess
} from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { childrenOf, cmdline, memInfo } from "./ProcStats.js"

export const BUNDLE = path.join(REPO_ROOT, "packages", "cli", "dist", "doveroute.mjs")
const LUA_DIR = path.join(REPO_ROOT, "lua")
const HERE = path.dirname(fileURLToPath(import.meta.url))

/** A server under test. */
export interface Server {
  readonly name: string
  /** Main PID (doveroute / bare: the node process; Dovecot: the master). */
  readonly pid: number
  /** PIDs whose CPU time counts as the server's. */
  pids(): ReadonlyArray<number>
  /** Peak RSS in KiB of the serving process(es): doveroute/bare VmHWM; Dovecot auth + auth-workers summed. */
  peakRssKb(): number
  /** Current RSS in KiB (same processes). */
  rssKb(): number
  logs(): string
  stop(): Promise<void>
}

const newestSourceMtime = (): number => {
  let newest = 0
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "node_modules" || e.name === "dist" || e.name === "test") continue
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs)
    }
  }
  for (const pkg of ["protocol", "routing", "store", "frontends", "daemon", "cli"]) {
    const src = path.join(REPO_ROOT, "packages", pkg, "src")
    if (fs.existsSync(src)) walk(src)
  }
  return newest
}

/** True when the bundle exists and is newer than every workspace source file (the launcher's rule). */
export const bundleFresh = (): boolean => {
  try {
    return fs.statSync(BUNDLE).mtimeMs >= newestSourceMtime()
  } catch {
    return false
  }
}

/** Builds the bundle (`npm run build`) unless it is fresh. Returns what happened. */
export async function ensureBundle(build: boolean): Promise<"fresh" | "built" | "stale"> {
  if (bundleFresh()) return "fresh"
  if (!build) {
    if (!fs.existsSync(BUNDLE)) throw new Error(`no bundle at ${BUNDLE}; run npm run build`)
    return "stale"
  }
  const r = await runCommand(process.execPath, [path.join(REPO_ROOT, "packages", "cli", "build.mjs")], { cwd: REPO_ROOT, timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stderr}${r.stdout}`)
  return "built"
}

/** `node <bundle> args…`; rejects with the output on a non-zero exit. */
export async function doverouteCli(args: ReadonlyArray<string>, timeoutMs = 120_000): Promise<CommandResult> {
  const r = await runCommand(process.execPath, [BUNDLE, ...args], { cwd: REPO_ROOT, timeoutMs })
  if (r.code !== 0) throw new Error(`doveroute ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`)
  return r
}

/** Adds backends `hostname = hostip = h` (state 0) to a store (migrating it first). */
export async function addBackends(store: string, hosts: ReadonlyArray<string>): Promise<void> {
  for (const h of hosts) await doverouteCli(["backend", "add", "--store", store, h, "--hostip", h])
}

/** Whether this build of `doveroute serve` has the standalone auth-client socket (`--auth-socket`). */
export async function authSocketSupported(): Promise<boolean> {
  const r = await runCommand(process.execPath, [BUNDLE, "serve", "--help"], { cwd: REPO_ROOT, timeoutMs: 60_000 })
  return `${r.stdout}${r.stderr}`.includes("--auth-socket")
}

const processServer = (name: string, proc: ManagedProcess, stop?: () => Promise<void>): Server => {
  let lastPeak = 0
  let lastRss = 0
  return {
    name,
    pid: proc.pid,
    pids: () => [proc.pid],
    peakRssKb: () => (lastPeak = memInfo(proc.pid)?.hwmKb ?? lastPeak),
    rssKb: () => (lastRss = memInfo(proc.pid)?.rssKb ?? lastRss),
    logs: () => proc.output(),
    stop: stop ?? (async () => {
      await proc.stop()
    })
  }
}

export interface DoverouteOptions {
  readonly store: string
  readonly dictSocket?: string
  readonly authSocket?: string
  /** Default ["nopassword"]: no password check, like the Lua passdb's `extra_fields = nopassword`. */
  readonly extraFields?: ReadonlyArray<string>
  /** Write a V8 CPU profile into this directory when the daemon exits (`node --cpu-prof`). */
  readonly cpuProfDir?: string
  /** Extra environment (e.g. `DOVEROUTE_CACHE_ENABLED=false`). */
  readonly env?: Readonly<Record<string, string>>
  readonly timeoutMs?: number
}

/** Starts `node <bundle> serve …` and waits for its sockets. */
export async function startDoveroute(o: DoverouteOptions): Promise<Server> {
  const args: Array<string> = []
  if (o.cpuProfDir !== undefined) args.push("--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`)
  args.push(BUNDLE, "serve", "--store", o.store, "--log-level", "warning")
  if (o.dictSocket !== undefined) args.push("--dict-socket", o.dictSocket)
  if (o.authSocket !== undefined) args.push("--auth-socket", o.authSocket)
  const extra = o.extraFields ?? ["nopassword"]
  // doveroute refuses nopassword with proxy_maybe (a local login that no one checks)
  if (extra.includes("nopassword")) args.push("--proxy-flag", "proxy")
  for (const f of extra) args.push("--extra-field", f)
  const proc = await spawnManaged(process.execPath, args, { cwd: REPO_ROOT, ...(o.env !== undefined ? { env: { ...process.env, ...o.env } } : {}) })
  const abortIf = () => {
    const info = proc.exitInfo()
    return info === undefined ? undefined : `doveroute exited (code ${info.code}, signal ${info.signal}):\n${proc.output()}`
  }
  try {
    for (const p of [o.dictSocket, o.authSocket]) {
      if (p !== undefined) await waitForPath(p, { timeoutMs: o.timeoutMs ?? 60_000, abortIf })
    }
  } catch (e) {
    await proc.stop()
    throw e
  }
  return processServer("doveroute", proc)
}

/** Starts the bare server as its own node process (through tsx) and waits for its socket. */
export async function startBare(socket: string, reply: string): Promise<Server> {
  const main = path.join(HERE, "BareServerMain.ts")
  const proc = await spawnManaged(process.execPath, ["--import", "tsx", main, "--socket", socket, "--reply", JSON.stringify(reply)], { cwd: REPO_ROOT })
  const abortIf = () => {
    const info = proc.exitInfo()
    return info === undefined ? undefined : `bare server exited (code ${info.code}):\n${proc.output()}`
  }
  try {
    await waitForPath(socket, { timeoutMs: 30_000, abortIf })
  } catch (e) {
    await proc.stop()
    throw e
  }
  return processServer("bare", proc)
}

export interface DovecotLuaOptions {
  /** Instance directory (short path: UNIX socket limit). */
  readonly dir: string
  /** The SQLite file doveroute uses (must be writable by the auth process for `blocking=no`). */
  readonly dbFile: string
  /** Lua in the auth process (`blocking=no`) instead of auth-workers (Dovecot's default, `blocking=yes`). */
  readonly inProcess?: boolean
  /**
   * Another passdb script to run instead of `lua/director.lua` (`--lua-script`), e.g. the published
   * `director.lua` an operator runs today: loaded through {@link luaScriptWrapper}.
   */
  readonly luaScript?: string
}

/**
 * The passdb entry point that runs an operator's own Lua director script on the bench's database
 * (our code; the operator's script is loaded from its copy, never changed):
 * - `DBI.Connect` is redirected to the bench's SQLite file, whatever driver and credentials the
 *   script names (the published scripts hard-code a MySQL database), with `busy_timeout` 5000
 *   (as our lua/director.lua's default) so that its SQLite statements wait for a lock as ours do;
 * - a script that only defines the init hook `auth_passdb_init(args)`, which no released Dovecot
 *   calls (docs/lua-director.md §5, defect 1), gets a `script_init()` that calls it with
 *   `{ nopassword = "y" }` (its reply fields, like `extra_fields = "nopassword"` for ours).
 */
export const luaScriptWrapper = (script: string, dbFile: string): string => `-- written by the doveroute benchmark (--lua-script)
local DBI = require "DBI"
local connect = DBI.Connect
DBI.Connect = function(...)
  local dbh, err = connect("SQLite3", ${JSON.stringify(dbFile)})
  if dbh ~= nil then DBI.Do(dbh, "PRAGMA busy_timeout = 5000") end
  return dbh, err
end
dofile(${JSON.stringify(script)})
if script_init == nil and auth_passdb_init ~= nil then
  function script_init()
    auth_passdb_init({ nopassword = "y" })
    return 0
  end
end
`

/**
 * Real Dovecot 2.3.19, auth only (`protocols =`), `passdb lua` with a copy of `lua/director.lua`
 * (and the other `lua/*.lua` it loads) and its `director.conf` (SQLite3, `proxy_flag = proxy`, `extra_fields = nopassword`), `auth_cache_size = 0`,
 * `auth_failure_delay = 0`, otherwise Dovecot's defaults (auth-worker `process_limit`/
 * `auth_worker_max_count` 30). The load goes to `<base_dir>/auth-client`.
 */
export async function startDovecotLua(o: DovecotLuaOptions): Promise<Server & { readonly authSocket: string }> {
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o755 })
  fs.chmodSync(o.dir, 0o755)
  // every *.lua beside the script (director.lua loads its siblings, e.g. director-core.lua, from its own directory)
  const srcDir = o.luaScript !== undefined ? path.dirname(path.resolve(o.luaScript)) : LUA_DIR
  const copyDir = o.luaScript !== undefined ? path.join(o.dir, "script") : o.dir
  fs.mkdirSync(copyDir, { recursive: true, mode: 0o755 })
  for (const f of fs.readdirSync(srcDir).filter((n) => n.endsWith(".lua"))) {
    fs.copyFileSync(path.join(srcDir, f), path.join(copyDir, f))
    fs.chmodSync(path.join(copyDir, f), 0o644)
  }
  const copied = path.join(copyDir, o.luaScript !== undefined ? path.basename(o.luaScript) : "director.lua")
  // settings for scripts that read `<script>.conf` (ours); others ignore it
  const conf = copied.replace(/\.lua$/, "") + ".conf"
  fs.writeFileSync(conf, `driver = SQLite3\ndatabase = ${o.dbFile}\nproxy_flag = proxy\nextra_fields = "nopassword"\n`)
  fs.chmodSync(conf, 0o644)
  let script = copied
  if (o.luaScript !== undefined) {
    script = path.join(o.dir, "bench-entry.lua")
    fs.writeFileSync(script, luaScriptWrapper(copied, o.dbFile))
    fs.chmodSync(script, 0o644)
  }
  // the auth process (uid dovecot) and the workers (root) open the file, its -wal/-shm and the directory
  fs.chmodSync(path.dirname(o.dbFile), 0o777)
  for (const s of ["", "-wal", "-shm"]) {
    if (fs.existsSync(o.dbFile + s)) fs.chmodSync(o.dbFile + s, 0o666)
  }
  const baseDir = path.join(o.dir, "run")
  const config = joinConfig(
    `instance_name = dvr-bench-${path.basename(o.dir)}
base_dir = ${baseDir}
state_dir = ${path.join(o.dir, "state")}
log_path = ${path.join(o.dir, "dovecot.log")}
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_cache_size = 0
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull`,
    NO_AUTH_PENALTY_23,
    `passdb {\n  driver = lua\n  args = file=${script}${o.inProcess === true ? " blocking=no" : ""}\n}`,
    `userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=${path.join(o.dir, "home")}/%u\n}`
  )
  const authSocket = path.join(baseDir, "auth-client")
  const dc = await startDovecot23({ dir: o.dir, config, paths: [authSocket] })
  const authPids = () => childrenOf(dc.pid).filter((p) => /\/auth\b/.test(cmdline(p)))
  let lastPeak = 0
  let lastRss = 0
  const sum = (f: (p: number) => number | undefined) => authPids().reduce((a, p) => a + (f(p) ?? 0), 0)
  return {
    name: o.inProcess === true ? "dovecot-lua-inproc" : "dovecot-lua",
    pid: dc.pid,
    authSocket,
    // all of Dovecot: master, log, config, stats, anvil, auth, auth-workers
    pids: () => [dc.pid, ...childrenOf(dc.pid)],
    peakRssKb: () => (lastPeak = Math.max(lastPeak, sum((p) => memInfo(p)?.hwmKb))),
    rssKb: () => (lastRss = sum((p) => memInfo(p)?.rssKb) || lastRss),
    logs: () => `${dc.output()}\n${dc.log()}`,
    stop: async () => {
      await dc.stop()
    }
  }
}
