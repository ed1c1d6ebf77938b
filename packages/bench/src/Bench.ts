/**
 * The side-by-side benchmark: same machine, same generator, same users, one run.
 *
 * 1. SQLite: a store made with `doveroute backend add` (two backends, 127.0.0.2 and 127.0.0.3)
 *    and the warm users inserted straight into `user_backend` (round-robin). doveroute (the
 *    bundle) serves its dict socket and its standalone auth socket (`--auth-socket`, nopassword
 *    mode) from one process: dict warm, auth warm and auth cold (first-time users only) at each
 *    connection level.
 * 2. Dovecot 2.3.19 + `lua/director.lua` on the SAME SQLite file (its auth-client socket,
 *    `auth_cache_size = 0`, `auth_failure_delay = 0`, nopassword, auth-workers as by default;
 *    optionally also `blocking=no`), warm and cold, same users and expected hosts.
 * 3. The bare `node:net` server, answering the same AUTH lines with a fixed reply of the size of
 *    doveroute's auth reply: the limit of a Node process on this machine.
 * 4. doveroute on fresh PostgreSQL and MariaDB databases, warm and cold.
 * 5. Memory check: 1 000 000 users inserted straight into a SQLite store, 100 000 looked up.
 * 6. Optional CPU profile of the daemon (`node --cpu-prof`) under the warm (or cold) load.
 *
 * Every reply is checked against the inserted rows (warm) or for a known, stable host (cold);
 * afterwards a sample of the first-time users is looked up again through the same server and,
 * on SQLite, compared with the stored rows.
 */
import { freshMysql, freshPostgres, makeTempDir, type FreshDatabase, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type BenchOptions, type BenchReport, luaScriptName, type Row, type ServerKind, type StoreKind, type Temperature, type Variant } from "./BenchTypes.js"
import { bulkMap, storedHosts, type StoreRef } from "./BulkMap.js"
import { churnUsers, type MoveStats, startImapBanners, startMover } from "./Churn.js"
import { type LoadMode, type LoadOptions, runLoad, sampleRequest } from "./LoadGen.js"
import { CpuMeter, memInfo } from "./ProcStats.js"
import { formatProfile, monotonicUs, summarizeProfile } from "./Profile.js"
import {
  addBackends,
  doverouteCli,
  authSocketSupported,
  BUNDLE,
  ensureBundle,
  type Server,
  startBare,
  startDovecotLua,
  startDoveroute
} from "./Servers.js"

export * from "./BenchTypes.js"

const HOSTS = ["127.0.0.2", "127.0.0.3"] as const
const HOST_SET: ReadonlySet<string> = new Set(HOSTS)
const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10

/** `user00001` … : the warm pool. */
export const warmUsers = (n: number, prefix = "user"): Array<string> =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(6, "0")}`)

export async function runBench(o: BenchOptions, command: string): Promise<BenchReport> {
  const log = o.log
  const report: BenchReport = {
    date: new Date().toISOString(),
    command,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "?",
      memGb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadBefore: os.loadavg().map((x) => Math.round(x * 100) / 100)
    },
    options: { ...omitLog(o), groups: [...o.groups] },
    bundle: "",
    authSocket: false,
    rows: [],
    skipped: [],
    notes: []
  }
  const bundle = await ensureBundle(o.build)
  ;(report as { bundle: string }).bundle = bundle
  if (bundle === "stale") report.notes.push("the bundle is older than the sources (--no-build); figures are for the old build")
  const auth = await authSocketSupported()
  ;(report as { authSocket: boolean }).authSocket = auth
  log(`bundle ${bundle}; doveroute auth socket ${auth ? "available" : "NOT available in this build: auth cases skipped, dict front-end used for PostgreSQL/MariaDB"}`)
  if (!auth) report.skipped.push({ what: "doveroute auth-socket cases", why: "this build of `doveroute serve` has no --auth-socket" })

  const tmp = makeTempDir({ prefix: "dvb-" })
  const users = warmUsers(o.users)
  const ctx: Ctx = { o, report, users, tmp, auth, expected: new Map(), replySize: undefined }
  const banners = o.churn ? await startImapBanners(HOSTS) : undefined
  if (banners !== undefined) {
    ctx.healthPort = banners.port
    report.notes.push(
      `--churn: during every measured doveroute and Dovecot + Lua run, one \`doveroute user move\` per second (users outside the measured pool); doveroute checks both backends' IMAP greeting every second`
    )
  }
  try {
    if (o.groups.has("sqlite") || o.groups.has("lua")) await phaseSqlite(ctx)
    if (o.groups.has("bare")) await guarded(ctx, "bare socket", () => phaseBare(ctx))
    if (o.groups.has("pg")) await guarded(ctx, "PostgreSQL", () => phaseDb(ctx, "postgres"))
    if (o.groups.has("mysql")) await guarded(ctx, "MariaDB", () => phaseDb(ctx, "mysql"))
    if (o.groups.has("memory")) await guarded(ctx, "memory check", () => phaseMemory(ctx))
    if (o.groups.has("profile")) await guarded(ctx, "profile", () => phaseProfile(ctx, o.profile))
  } finally {
    report.machine.loadAfter = os.loadavg().map((x) => Math.round(x * 100) / 100)
    if (banners !== undefined) report.notes.push(`--churn: ${banners.checks()} health-check connections answered`)
    await banners?.close()
    await tmp.cleanup()
  }
  return report
}

const omitLog = (o: BenchOptions): Omit<BenchOptions, "log" | "groups"> => {
  const { log: _l, groups: _g, ...rest } = o
  return rest
}

interface Ctx {
  readonly o: BenchOptions
  readonly report: BenchReport
  readonly users: ReadonlyArray<string>
  readonly tmp: TempDir
  readonly auth: boolean
  /** user → host of the warm users inserted into the SQLite store. */
  expected: Map<string, string>
  /** Mean auth reply size seen (for the bare server's reply). */
  replySize: number | undefined
  /** `--churn`: the IMAP port of the bench backends' greeting servers (health checks). */
  healthPort?: number
}

async function guarded(ctx: Ctx, what: string, f: () => Promise<void>): Promise<void> {
  try {
    await f()
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    ctx.o.log(`!! ${what} failed: ${why.split("\n").slice(0, 8).join("\n   ")}`)
    ctx.report.skipped.push({ what, why: why.slice(0, 2000) })
  }
}

let runCounter = 0

/** One measured run against `server`; appends a row. */
async function measure(
  ctx: Ctx,
  server: Server,
  meta: { server: ServerKind; frontend: LoadMode; store: StoreKind; temperature: Temperature; variant?: Variant },
  load: Omit<LoadOptions, "connections" | "durationMs" | "warmupMs" | "depth" | "users">,
  connections: number,
  users: ReadonlyArray<string> = ctx.users
): Promise<Row> {
  const o = ctx.o
  const meter = new CpuMeter(() => server.pids())
  meter.start()
  const result = await runLoad({ ...load, users, connections, depth: o.depth, durationMs: o.durationMs, warmupMs: o.warmupMs })
  const cpuMs = meter.stop()
  const id = `${meta.server}-${meta.frontend}-${meta.store}-${meta.temperature}${meta.variant !== undefined ? "-" + meta.variant : ""}`
  const row: Row = {
    id,
    ...meta,
    connections,
    result,
    cpuUsPerReply: result.replies === 0 ? 0 : Math.round((cpuMs * 1000) / result.replies),
    peakRssMb: mb(server.peakRssKb())
  }
  ctx.report.rows.push(row)
  const l = result.latencyUs
  o.log(
    `  ${id.padEnd(42)} c=${String(connections).padStart(3)}  ${String(result.rps).padStart(7)} req/s  p50 ${ms(l.p50)}  p99 ${ms(l.p99)}  max ${ms(l.max)} ms  ` +
      `errors ${result.errors}${result.errors > 0 ? " " + JSON.stringify(result.errorKinds) : ""}  cpu ${row.cpuUsPerReply} µs/req`
  )
  if (result.errors > 0 && result.errorSamples.length > 0) o.log(`      e.g. ${result.errorSamples[0]}`)
  return row
}

const ms = (us: number) => (us / 1000).toFixed(3)

/**
 * Looks a sample of first-time users up again through the same server: every answer must name the
 * host of the first reply. On SQLite the rows themselves are compared too.
 */
async function verifyFirstTime(ctx: Ctx, row: Row, mode: LoadMode, socket: string, seen: Map<string, string>, sqliteFile?: string): Promise<void> {
  const sample = [...seen.keys()]
  for (let i = sample.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[sample[i], sample[j]] = [sample[j]!, sample[i]!]
  }
  const users = sample.slice(0, ctx.o.quick ? 100 : 1000)
  if (users.length === 0) return
  const r = await runLoad({ mode, socket, connections: 8, users, sequential: true, expected: seen })
  let mismatches = r.errorKinds["wrong-host"] ?? 0
  let errors = r.errors
  if (sqliteFile !== undefined) {
    const stored = storedHosts(sqliteFile, seen.keys())
    let bad = 0
    for (const [u, h] of seen) if (stored.get(u) !== h) bad++
    if (bad > 0) ctx.o.log(`      !! ${bad} of ${seen.size} first-time users: the reply named another host than the stored row`)
    mismatches += bad
    errors += bad
  }
  row.verify = { checked: users.length, mismatches, errors }
  if (r.errors > 0) ctx.o.log(`      !! re-lookup of ${users.length} first-time users: ${JSON.stringify(r.errorKinds)} e.g. ${r.errorSamples[0]}`)
}

/** Warm: known users with expected hosts; cold: only first-time users (unique prefix per run). */
async function series(
  ctx: Ctx,
  server: Server,
  meta: { server: ServerKind; frontend: LoadMode; store: StoreKind; variant?: Variant },
  socket: string,
  temperature: "warm" | "cold",
  expected: ReadonlyMap<string, string>,
  sqliteFile?: string
): Promise<void> {
  for (const c of ctx.o.levels) {
    if (temperature === "warm") {
      await measure(ctx, server, { ...meta, temperature }, { mode: meta.frontend, socket, expected, hosts: HOST_SET }, c)
    } else {
      const seen = new Map<string, string>()
      const prefix = `new${++runCounter}-${meta.server.slice(0, 4)}-${meta.store}-c${c}-`
      const row = await measure(ctx, server, { ...meta, temperature }, {
        mode: meta.frontend,
        socket,
        newShare: 1,
        newUserPrefix: prefix,
        hosts: HOST_SET,
        seen
      }, c, [])
      await verifyFirstTime(ctx, row, meta.frontend, socket, seen, sqliteFile)
    }
  }
}

/**
 * Untimed load at the highest level: every warm user looked up once (so a server with a lookup
 * cache has each of them in it, as after a day of logins), then JIT, auth-worker processes, pools.
 */
async function prewarm(ctx: Ctx, mode: LoadMode, socket: string, expected: ReadonlyMap<string, string>): Promise<void> {
  const c = Math.max(...ctx.o.levels)
  const all = await runLoad({ mode, socket, connections: c, users: ctx.users, expected, hosts: HOST_SET, sequential: true })
  const r = await runLoad({ mode, socket, connections: c, users: ctx.users, expected, hosts: HOST_SET, durationMs: ctx.o.quick ? 200 : 1000 })
  const errors = all.errors + r.errors
  if (errors > 0) ctx.o.log(`  (pre-warm: ${errors} errors ${JSON.stringify({ ...all.errorKinds, ...r.errorKinds })} e.g. ${all.errorSamples[0] ?? r.errorSamples[0]})`)
}

/** A store with the two backends (added with `doveroute backend add`, which also migrates) and the warm users mapped. */
async function prepareStore(ctx: Ctx, url: string, ref: StoreRef): Promise<Map<string, string>> {
  await addBackends(url, HOSTS)
  const t0 = Date.now()
  if (ctx.o.churn) await bulkMap(ref, churnUsers(CHURN_USERS))
  const expected = await bulkMap(ref, ctx.users)
  ctx.o.log(`  ${ctx.users.length} warm users inserted in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  return expected
}

/** doveroute's extra environment under `--churn`: health checks every second on the greeting servers. */
const churnEnv = (ctx: Ctx): Record<string, string> =>
  ctx.healthPort === undefined ? {} : {
    DOVEROUTE_HEALTH_ENABLED: "true",
    DOVEROUTE_HEALTH_PROTOCOL: "imap",
    DOVEROUTE_HEALTH_PORT: String(ctx.healthPort),
    DOVEROUTE_HEALTH_INTERVAL: "1 second",
    DOVEROUTE_HEALTH_TIMEOUT: "1 second"
  }

/**
 * Runs `f` with the mover going when `--churn` is on (the churn users must be mapped in `store`);
 * the moves made and failed are noted in the report under `what`.
 */
async function withChurn<A>(ctx: Ctx, store: string, what: string, f: () => Promise<A>): Promise<A> {
  if (!ctx.o.churn) return f()
  const mover = startMover(store, churnUsers(CHURN_USERS), HOSTS)
  let stats: MoveStats | undefined
  try {
    return await f()
  } finally {
    stats = await mover.stop()
    ctx.report.notes.push(`--churn, ${what}: ${stats.moves} moves${stats.failed > 0 ? `, ${stats.failed} FAILED (${stats.firstError ?? "?"})` : ""}`)
    ctx.o.log(`  churn (${what}): ${stats.moves} moves, ${stats.failed} failed${stats.firstError !== undefined ? ": " + stats.firstError : ""}`)
  }
}

const CHURN_USERS = 100

const sumReplySizes = (rows: ReadonlyArray<Row>): number | undefined =>
  rows.length === 0 ? undefined : Math.round(rows.reduce((a, r) => a + r.result.replyBytesMean, 0) / rows.length)

async function phaseSqlite(ctx: Ctx): Promise<void> {
  const { o, tmp } = ctx
  const dir = tmp.join("sqlite")
  fs.mkdirSync(dir, { recursive: true, mode: 0o777 })
  fs.chmodSync(dir, 0o777)
  const file = path.join(dir, "routes.db")
  const store = `sqlite:${file}`
  o.log(`SQLite store ${file}`)
  ctx.expected = await prepareStore(ctx, store, { kind: "sqlite", file })
  if (o.sqliteJournal !== undefined) await doverouteCli(["migrate", "--store", store, "--journal", o.sqliteJournal])
  const journal = o.sqliteJournal ?? "delete"
  o.log(`  SQLite journal mode: ${journal}`)
  ctx.report.notes.push(`SQLite store journal mode: ${journal}${o.sqliteJournal === undefined ? " (as doveroute leaves it; --sqlite-journal wal to compare)" : ""}`)
  if (o.groups.has("sqlite")) {
    await guarded(ctx, "doveroute on SQLite", async () => {
      const dictSocket = tmp.join("dict.sock")
      const authSocket = ctx.auth ? tmp.join("auth.sock") : undefined
      const d = await startDoveroute({ store, dictSocket, ...(authSocket !== undefined ? { authSocket } : {}), env: churnEnv(ctx) })
      try {
        await withChurn(ctx, store, "doveroute on SQLite", async () => {
          await prewarm(ctx, "dict", dictSocket, ctx.expected)
          await series(ctx, d, { server: "doveroute", frontend: "dict", store: "sqlite" }, dictSocket, "warm", ctx.expected)
          if (authSocket !== undefined) {
            await prewarm(ctx, "auth", authSocket, ctx.expected)
            await series(ctx, d, { server: "doveroute", frontend: "auth", store: "sqlite" }, authSocket, "warm", ctx.expected)
            await series(ctx, d, { server: "doveroute", frontend: "auth", store: "sqlite" }, authSocket, "cold", ctx.expected, file)
          }
        })
      } finally {
        await d.stop()
      }
      ctx.replySize = sumReplySizes(ctx.report.rows.filter((r) => r.server === "doveroute" && r.frontend === "auth"))
    })
    // the same warm load with the lookup cache off: every request reads SQLite, as the Lua passdb
    // does with auth_cache_size = 0
    if (ctx.auth) {
      await guarded(ctx, "doveroute on SQLite, cache off", async () => {
        const authSocket = tmp.join("auth-nc.sock")
        const d = await startDoveroute({ store, authSocket, env: { DOVEROUTE_CACHE_ENABLED: "false", ...churnEnv(ctx) } })
        try {
          await withChurn(ctx, store, "doveroute on SQLite, cache off", async () => {
            await prewarm(ctx, "auth", authSocket, ctx.expected)
            await series(ctx, d, { server: "doveroute", frontend: "auth", store: "sqlite", variant: "nocache" }, authSocket, "warm", ctx.expected)
          })
        } finally {
          await d.stop()
        }
      })
    }
  }
  if (!o.groups.has("lua")) return
  const variants: Array<boolean> = o.luaInProcess ? [false, true] : [false]
  for (const inProcess of variants) {
    await guarded(ctx, inProcess ? "Dovecot + Lua (blocking=no)" : "Dovecot + Lua", async () => {
      const dc = await startDovecotLua({
        dir: tmp.join(inProcess ? "dl2" : "dl"),
        dbFile: file,
        inProcess,
        ...(o.luaScript !== undefined ? { luaScript: o.luaScript } : {})
      })
      try {
        const kind: ServerKind = inProcess ? "dovecot-lua-inproc" : "dovecot-lua"
        o.log(`Dovecot 2.3 + ${luaScriptName(o)}${inProcess ? " (blocking=no)" : ""} on the same SQLite file`)
        await withChurn(ctx, store, inProcess ? "Dovecot + Lua blocking=no" : "Dovecot + Lua", async () => {
          await prewarm(ctx, "auth", dc.authSocket, ctx.expected)
          await series(ctx, dc, { server: kind, frontend: "auth", store: "sqlite" }, dc.authSocket, "warm", ctx.expected)
          if (!inProcess) await series(ctx, dc, { server: kind, frontend: "auth", store: "sqlite" }, dc.authSocket, "cold", ctx.expected, file)
        })
        ctx.replySize ??= sumReplySizes(ctx.report.rows.filter((r) => r.server === kind))
      } catch (e) {
        const log = dc.logs().split("\n").filter((l) => /Fatal|Error|Panic|Warning/.test(l)).slice(-8).join("\n")
        throw new Error(`${e instanceof Error ? e.message : String(e)}${log ? "\n--- Dovecot log:\n" + log : ""}`)
      } finally {
        await dc.stop()
      }
    })
  }
}

async function phaseBare(ctx: Ctx): Promise<void> {
  const size = ctx.replySize ?? 70
  // an OK line of the same size as the measured auth replies (LF included)
  const head = "OK\t1\tuser=user000001\tproxy\thost=127.0.0.2\tpass=secret\tx="
  const reply = head.length + 1 >= size ? head.slice(0, Math.max(1, size - 1)) : head + "y".repeat(size - 1 - head.length)
  const socket = ctx.tmp.join("bare.sock")
  ctx.o.log(`bare node:net server (reply ${reply.length + 1} bytes, request ${sampleRequest("auth", ctx.users[0] ?? "user000000").length} bytes)`)
  const b = await startBare(socket, reply)
  try {
    await runLoad({ mode: "line", socket, connections: Math.max(...ctx.o.levels), users: ctx.users, lineReply: reply, durationMs: ctx.o.quick ? 200 : 1000 })
    for (const c of ctx.o.levels) {
      await measure(ctx, b, { server: "bare", frontend: "line", store: "-", temperature: "-" }, { mode: "line", socket, lineReply: reply }, c)
    }
  } finally {
    await b.stop()
  }
}

async function phaseDb(ctx: Ctx, kind: "postgres" | "mysql"): Promise<void> {
  const { o, tmp } = ctx
  let db: FreshDatabase | undefined
  let d: Server | undefined
  try {
    db = kind === "postgres" ? await freshPostgres() : await freshMysql()
    o.log(`${kind === "postgres" ? "PostgreSQL" : "MariaDB"} store ${db.url}`)
    const expected = await prepareStore(ctx, db.url, { kind, database: db.name })
    const socket = tmp.join(`${kind}.sock`)
    const mode: LoadMode = ctx.auth ? "auth" : "dict"
    d = await startDoveroute({ store: db.url, env: churnEnv(ctx), ...(ctx.auth ? { authSocket: socket } : { dictSocket: socket }) })
    const server = d
    await withChurn(ctx, db.url, kind === "postgres" ? "doveroute on PostgreSQL" : "doveroute on MariaDB", async () => {
      await prewarm(ctx, mode, socket, expected)
      await series(ctx, server, { server: "doveroute", frontend: mode, store: kind }, socket, "warm", expected)
      await series(ctx, server, { server: "doveroute", frontend: mode, store: kind }, socket, "cold", expected)
    })
  } finally {
    await d?.stop()
    await db?.drop().catch(() => undefined)
  }
}

async function phaseMemory(ctx: Ctx): Promise<void> {
  const { o, tmp } = ctx
  const dir = tmp.join("mem")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, "routes.db")
  const store = `sqlite:${file}`
  o.log(`memory check: ${o.memoryUsers} users inserted into ${file}, ${o.memoryLookups} looked up`)
  await addBackends(store, HOSTS)
  const t0 = Date.now()
  const all = warmUsers(o.memoryUsers, "mem")
  const mapped = await bulkMap({ kind: "sqlite", file }, all)
  const insertSeconds = Math.round((Date.now() - t0) / 100) / 10
  const step = Math.max(1, Math.floor(all.length / o.memoryLookups))
  const expected = new Map<string, string>()
  for (let i = 0; expected.size < o.memoryLookups && i < all.length; i += step) expected.set(all[i]!, mapped.get(all[i]!)!)
  o.log(`  inserted in ${insertSeconds} s`)
  const socket = tmp.join("mem.sock")
  const mode: LoadMode = ctx.auth ? "auth" : "dict"
  const d = await startDoveroute(ctx.auth ? { store, authSocket: socket } : { store, dictSocket: socket })
  try {
    await new Promise((r) => setTimeout(r, 300))
    const afterStart = memInfo(d.pid)?.rssKb ?? 0
    const r = await runLoad({ mode, socket, connections: 64, users: [...expected.keys()], expected, sequential: true })
    const after = memInfo(d.pid)
    ctx.report.memory = {
      frontend: mode,
      mappedUsers: o.memoryUsers,
      lookedUp: expected.size,
      lookupRps: r.rps,
      lookupErrors: r.errors,
      rssAfterStartMb: mb(afterStart),
      rssAfterLookupsMb: mb(after?.rssKb ?? 0),
      peakRssMb: mb(after?.hwmKb ?? 0),
      insertSeconds
    }
    o.log(`  RSS after start ${mb(afterStart)} MB, after ${expected.size} lookups ${mb(after?.rssKb ?? 0)} MB (peak ${mb(after?.hwmKb ?? 0)} MB), ${r.rps} lookups/s, errors ${r.errors}`)
  } finally {
    await d.stop()
  }
}

async function phaseProfile(ctx: Ctx, which: "warm" | "cold"): Promise<void> {
  const { o, tmp } = ctx
  const dir = tmp.join("prof")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, "routes.db")
  const store = `sqlite:${file}`
  const profDir = path.resolve(o.outDir, "profiles")
  fs.mkdirSync(profDir, { recursive: true })
  const before = new Set(fs.readdirSync(profDir))
  o.log(`profile store ${file}`)
  const expected = await prepareStore(ctx, store, { kind: "sqlite", file })
  const socket = tmp.join("prof.sock")
  const mode: LoadMode = ctx.auth ? "auth" : "dict"
  const d = await startDoveroute({ store, cpuProfDir: profDir, ...(ctx.auth ? { authSocket: socket } : { dictSocket: socket }) })
  let window: [number, number]
  const c = Math.max(...o.levels)
  try {
    await prewarm(ctx, mode, socket, expected)
    o.log(`profiling doveroute (${mode}, SQLite, ${which}, ${c} connections, ${o.durationMs} ms)`)
    const from = monotonicUs()
    const row = await measure(ctx, d, { server: "doveroute", frontend: mode, store: "sqlite", temperature: which }, which === "warm"
      ? { mode, socket, expected, hosts: HOST_SET }
      : { mode, socket, newShare: 1, newUserPrefix: `prof${++runCounter}-`, hosts: HOST_SET }, c, which === "warm" ? ctx.users : [])
    window = [from, monotonicUs()]
    // the profiled run is slower (sampling): keep it out of the table
    ctx.report.rows.pop()
    ctx.report.profileRow = row
  } finally {
    await d.stop()
  }
  const files = fs.readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile") && !before.has(f))
  if (files.length === 0) throw new Error(`no .cpuprofile written to ${profDir}`)
  const profFile = path.join(profDir, files[0]!)
  const summary = summarizeProfile(profFile, { bundle: BUNDLE, window, top: 20 })
  ctx.report.profile = summary
  o.log(formatProfile(summary))
}
