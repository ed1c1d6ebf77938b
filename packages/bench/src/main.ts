/**
 * `npm run bench [-- options]`: the side-by-side benchmark (see Bench.ts), or
 * `npm run bench -- load …`: the load generator alone against any socket.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { REPO_ROOT } from "@doveroute/testkit"
import { type BenchOptions, type Group, GROUPS, runBench, warmUsers } from "./Bench.js"
import { type LoadMode, runLoad } from "./LoadGen.js"
import { formatReport, ratios, targets } from "./Report.js"

const USAGE = `usage:
  npm run bench [-- options]            doveroute vs Dovecot 2.3 + lua/director.lua vs bare node:net
    --quick                 short runs (< 1 min): 0.5 s per run, 2000 users, no memory check, no blocking=no variant
    --duration S            measured seconds per run (default 5)
    --warmup S              untimed seconds at the start of each run (default 0.5)
    --levels 1,16,64        connection counts
    --depth N               requests in flight per connection (default 1)
    --users N               warm users (default 10000)
    --only G,G              groups: ${GROUPS.join(",")} (profile only when asked for)
    --skip G,G
    --memory                include the memory check even with --quick
    --memory-users N        users inserted for the memory check (default 1000000)
    --memory-lookups N      users looked up (default 100000)
    --no-lua-inproc         leave out Dovecot with the Lua passdb in the auth process (blocking=no)
    --lua-script FILE       the Dovecot+Lua cases run FILE (e.g. the published director.lua you run today)
                            instead of lua/director.lua: its DBI.Connect goes to the bench's SQLite file,
                            auth_passdb_init(args) is called from script_init (see packages/bench/README.md)
    --sqlite-journal wal    switch the SQLite store to WAL first (doveroute migrate --journal wal); default: the
                            rollback journal doveroute leaves
    --churn                 what a live site does meanwhile, on both sides: one \`doveroute user move\` per second
                            during every doveroute and Dovecot+Lua run, and doveroute health-checks both backends
                            (IMAP greeting servers) every second
    --profile               also profile the daemon (node --cpu-prof) under the warm SQLite load at the top level
    --profile-cold          the same under first-time users
    --no-build              do not rebuild a stale bundle
    --out DIR               results directory (default bench-results/)
  npm run bench -- load --mode auth|dict|line --socket PATH [options]
    --connections N  --depth N  --duration S  --warmup S  --users N  --user-prefix P
    --new-share X (0..1 first-time users)  --hosts h1,h2 (valid hosts)  --reply LINE (line mode)
    --sequential (each user once)  --password P`

/** The `--lua-script` file as an absolute path; a missing or unreadable file is a usage error. */
const checkedLuaScript = (file: string): string => {
  // npm runs the script in the repository root; INIT_CWD is where `npm run bench` was typed
  const abs = path.resolve(process.env["INIT_CWD"] ?? process.cwd(), file)
  try {
    fs.accessSync(abs, fs.constants.R_OK)
  } catch {
    throw new Error(`--lua-script ${file}: cannot read ${abs}`)
  }
  if (!fs.statSync(abs).isFile()) throw new Error(`--lua-script ${file}: not a file`)
  return abs
}

const checkedJournal = (v: string): "wal" | "delete" => {
  if (v !== "wal" && v !== "delete") throw new Error(`--sqlite-journal ${v}: use wal or delete`)
  return v
}

async function main(argv: Array<string>): Promise<number> {
  if (argv[0] === "load") return load(argv.slice(1))
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      duration: { type: "string" },
      warmup: { type: "string" },
      levels: { type: "string" },
      depth: { type: "string" },
      users: { type: "string" },
      only: { type: "string" },
      skip: { type: "string" },
      memory: { type: "boolean", default: false },
      "memory-users": { type: "string" },
      "memory-lookups": { type: "string" },
      "no-lua-inproc": { type: "boolean", default: false },
      "lua-script": { type: "string" },
      "sqlite-journal": { type: "string" },
      churn: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "profile-cold": { type: "boolean", default: false },
      "no-build": { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", default: false }
    },
    allowPositionals: false
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const quick = values.quick
  const started = Date.now()
  const list = (s: string | undefined) => (s ?? "").split(",").map((x) => x.trim()).filter((x) => x.length > 0)
  for (const g of [...list(values.only), ...list(values.skip)]) {
    if (!(GROUPS as ReadonlyArray<string>).includes(g)) throw new Error(`unknown group ${g} (groups: ${GROUPS.join(", ")})`)
  }
  let groups = new Set<Group>(values.only !== undefined ? (list(values.only) as Array<Group>) : GROUPS.filter((g) => g !== "profile"))
  for (const g of list(values.skip)) groups.delete(g as Group)
  if (quick && values.only === undefined && !values.memory) groups.delete("memory")
  if (values.memory) groups = new Set([...groups, "memory"])
  if (values.profile || values["profile-cold"]) groups = new Set([...groups, "profile"])
  const num = (s: string | undefined, d: number) => (s === undefined ? d : Number(s))
  const outDir = path.resolve(REPO_ROOT, values.out ?? "bench-results")
  const profile = values["profile-cold"] ? "cold" : "warm"
  const o: BenchOptions = {
    quick,
    durationMs: Math.round(num(values.duration, quick ? 0.5 : 5) * 1000),
    warmupMs: Math.round(num(values.warmup, quick ? 0.15 : 0.5) * 1000),
    levels: values.levels !== undefined ? list(values.levels).map(Number) : [1, 16, 64],
    depth: num(values.depth, 1),
    users: num(values.users, quick ? 2000 : 10_000),
    churn: values.churn,
    build: !values["no-build"],
    groups,
    luaInProcess: !values["no-lua-inproc"] && !quick,
    ...(values["lua-script"] !== undefined ? { luaScript: checkedLuaScript(values["lua-script"]) } : {}),
    ...(values["sqlite-journal"] !== undefined ? { sqliteJournal: checkedJournal(values["sqlite-journal"]) } : {}),
    memoryUsers: num(values["memory-users"], 1_000_000),
    memoryLookups: num(values["memory-lookups"], 100_000),
    profile,
    outDir,
    log: (line) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`)
  }
  const command = `npm run bench${argv.length > 0 ? " -- " + argv.join(" ") : ""}`
  const t0 = Date.now()
  const report = await runBench(o, command)
  const text = formatReport(report)
  console.log("")
  console.log(text)
  fs.mkdirSync(outDir, { recursive: true })
  const stamp = report.date.replace(/[:.]/g, "-")
  const json = path.join(outDir, `bench-${stamp}.json`)
  fs.writeFileSync(json, JSON.stringify({ ...report, ratios: ratios(report), targets: targets(report), text }, null, 2) + "\n")
  fs.writeFileSync(path.join(outDir, `bench-${stamp}.txt`), text + "\n")
  console.log(`\nwritten ${path.relative(REPO_ROOT, json)} (+ .txt) in ${Math.round((Date.now() - t0) / 1000)} s`)
  return 0
}

async function load(argv: Array<string>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: "string" },
      socket: { type: "string" },
      connections: { type: "string", short: "c" },
      depth: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      users: { type: "string" },
      "user-prefix": { type: "string" },
      "new-share": { type: "string" },
      hosts: { type: "string" },
      reply: { type: "string" },
      password: { type: "string" },
      sequential: { type: "boolean", default: false }
    }
  })
  const mode = values.mode as LoadMode | undefined
  if (mode === undefined || !["auth", "dict", "line"].includes(mode) || values.socket === undefined) {
    console.error(USAGE)
    return 2
  }
  const seen = new Map<string, string>()
  const r = await runLoad({
    mode,
    socket: values.socket,
    connections: Number(values.connections ?? 16),
    depth: Number(values.depth ?? 1),
    durationMs: Number(values.duration ?? 5) * 1000,
    warmupMs: Number(values.warmup ?? 0) * 1000,
    users: warmUsers(Number(values.users ?? 1000), values["user-prefix"] ?? "user"),
    newShare: Number(values["new-share"] ?? 0),
    sequential: values.sequential,
    seen,
    ...(values.hosts !== undefined ? { hosts: new Set(values.hosts.split(",")) } : {}),
    ...(values.reply !== undefined ? { lineReply: values.reply } : {}),
    ...(values.password !== undefined ? { password: values.password } : {})
  })
  console.log(JSON.stringify(r, null, 2))
  return r.errors === 0 ? 0 : 1
}

// Ctrl-C / SIGTERM: exit through process.exit so the managed children (daemons, Dovecot) get SIGTERM
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the servers this benchmark started`)
    process.exit(130)
  })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.stack ?? e.message : String(e))
    process.exit(1)
  }
)
