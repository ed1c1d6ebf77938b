#!/usr/bin/env node
// `npm run bench:cli [-- --runs N --rounds N --users N --quick]`: how fast `doveroute` admin commands start,
// and dump/import of many users, in one run on this machine. Builds the bundle first.
//
// Start-up: the median of N runs (default 5, interleaved) of wall time (measured around the
// process), CPU time (user + sys, from GNU time: 10 ms steps) and peak RSS, for:
//   node -e 0                     Node's own start, the floor
//   --version / backend list / user show / status   through the launcher
//                                 (packages/cli/bin/doveroute.mjs) on the Node that runs this script
//                                 (no compile cache before Node 22.1), on a SQLite store of 3 backends
//                                 and 1 user
//   the same from one unsplit bundle (every module loaded at start: how the bundle was built before
//   code splitting), for the ratio
//   the Node 24 runtime of the Debian package with the launcher's compile cache (what the package
//   runs), when scripts/package-runtime.sh has made it
//   DOVEROUTE_DEV=1 (the TypeScript sources through tsx), once
// --rounds R repeats the N runs R times and shows, per row, the round with the lowest median wall
// time: on a shared machine, its quietest moment (the load average after each round is printed).
// Dump/import: one `doveroute import FILE` of a CSV of N users (default 1 000 000; --quick 100 000)
// into that store, and one `doveroute dump` of it, with time and peak RSS.
import { build } from "esbuild"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const quick = process.argv.includes("--quick")
const RUNS = arg("runs", 5)
const ROUNDS = arg("rounds", 1)
const USERS = arg("users", quick ? 100_000 : 1_000_000)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-bench-cli-"))
const LAUNCHER = path.join(repo, "packages", "cli", "bin", "doveroute.mjs")
const store = `sqlite:${path.join(tmp, "store.db")}`
const small = `sqlite:${path.join(tmp, "small.db")}`

const run = (argv, env = {}, input) => {
  // GNU time (Debian package `time`): wall, user, sys, peak RSS
  const t0 = process.hrtime.bigint()
  const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", ...argv], {
    cwd: repo, env: { ...process.env, ...env }, encoding: "utf8", maxBuffer: 1 << 30, ...(input ? { input } : {})
  })
  const last = r.stderr.trim().split("\n").pop() ?? ""
  const wall = Number(process.hrtime.bigint() - t0) / 1e6
  const [, user, sys, rssKb] = last.split(" ").map(Number)
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr.slice(-500)}`)
  return { wall, cpu: (user + sys) * 1000, rss: rssKb / 1024, stdout: r.stdout }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

console.log(`doveroute CLI benchmark, ${new Date().toISOString()}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}, Node ${process.version}`)
console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
spawnSync("npm", ["run", "--silent", "build"], { cwd: repo, stdio: "inherit" })

// the pre-splitting shape: one file, everything imported at start
const single = path.join(repo, "packages", "cli", "dist-single", "doveroute.mjs")
await build({
  entryPoints: [path.join(repo, "packages", "cli", "src", "bin.ts")], outfile: single, bundle: true, platform: "node", target: "node20",
  format: "esm", external: ["better-sqlite3", "pg-native", "pg", "mysql2", "unix-dgram", "node-linux-pam"], logLevel: "warning",
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
})

// the store: 3 backends and USERS users, through one import process
for (const s of [store, small]) {
  for (const [h, ip] of [["b1.test", "127.0.0.2"], ["b2.test", "127.0.0.3"], ["b3.test", "127.0.0.4"]]) run(["node", LAUNCHER, "backend", "add", h, "--hostip", ip, "--store", s])
}
run(["node", LAUNCHER, "import", "--store", small, "-"], {}, "user,backend\nuser4242@example.org,b1.test\n")
const csv = path.join(tmp, "users.csv")
const out = fs.createWriteStream(csv)
out.write("user,backend\n")
for (let i = 0; i < USERS; i += 10_000) {
  let chunk = ""
  for (let j = i; j < Math.min(USERS, i + 10_000); j++) chunk += `user${j}@example.org,b${(j % 3) + 1}.test\n`
  out.write(chunk)
}
await new Promise((r) => out.end(r))
const imp = run(["node", LAUNCHER, "import", csv, "--store", store, "--json"])
const report = JSON.parse(imp.stdout)
if (report.inserted !== USERS) throw new Error(`import inserted ${report.inserted} of ${USERS}`)
const dumpFile = path.join(tmp, "dump.sh")
const dump = run(["sh", "-c", `node ${LAUNCHER} dump --store ${store} > ${dumpFile}`])
const dumpLines = fs.readFileSync(dumpFile, "utf8").split("\n").filter((l) => /^user\d+@example\.org,b\d\.test$/.test(l)).length
if (dumpLines !== USERS) throw new Error(`dump has ${dumpLines} of ${USERS} mappings`)
const again = run(["node", LAUNCHER, "import", csv, "--store", store, "--json"])

const nodeMajor = process.versions.node.split(".")[0]
const COMMANDS = [
  ["--version", ["--version"]],
  ["backend list", ["backend", "list", "--store", small]],
  ["user show", ["user", "show", "user4242@example.org", "--store", small]],
  ["status", ["status", "--store", small]]
]
const cases = [
  [`node -e 0 (Node ${nodeMajor})`, ["node", "-e", "0"]],
  ...COMMANDS.map(([name, args]) => [`Node ${nodeMajor}: ${name}`, ["node", LAUNCHER, ...args]]),
  ...COMMANDS.map(([name, args]) => [`Node ${nodeMajor}, unsplit bundle: ${name}`, ["node", single, ...args]]),
  [`Node ${nodeMajor}: user show, ${USERS.toLocaleString("en")} users`, ["node", LAUNCHER, "user", "show", "user4242@example.org", "--store", store]],
  [`Node ${nodeMajor}: backend list, ${USERS.toLocaleString("en")} users`, ["node", LAUNCHER, "backend", "list", "--store", store]]
]
// the Node 24 runtime the Debian package carries (dist/runtime, scripts/package-runtime.sh), with its
// own native addons and the launcher's compile cache (in this run's temp dir; warmed by run 1)
const node24 = path.join(repo, "dist", "runtime", "node", "bin", "node")
const env24 = {
  XDG_CACHE_HOME: path.join(tmp, "cache"),
  NODE_OPTIONS: `--import ${path.join(repo, "scripts", "node24-natives.mjs")}`
}
if (fs.existsSync(node24)) {
  cases.push(
    ["node -e 0 (Node 24)", [node24, "-e", "0"], env24],
    ...COMMANDS.map(([name, args]) => [`Node 24 + compile cache: ${name}`, [node24, LAUNCHER, ...args], env24])
  )
}
// ROUNDS rounds of RUNS interleaved runs each; a row shows the round with the lowest median wall
// time (on a shared machine the quietest round), with that round's CPU and RSS medians
const roundRows = []
const roundLoads = []
for (let round = 0; round < ROUNDS; round++) {
  const samples = new Map(cases.map(([n]) => [n, []]))
  for (let i = 0; i < RUNS; i++) for (const [name, argv, env] of cases) samples.get(name).push(run(argv, env))
  roundLoads.push(os.loadavg()[0].toFixed(2))
  roundRows.push(new Map(cases.map(([name]) => {
    const x = samples.get(name)
    return [name, { wall: median(x.map((v) => v.wall)), cpu: median(x.map((v) => v.cpu)), rss: median(x.map((v) => v.rss)) }]
  })))
}
const dev = run(["node", LAUNCHER, "user", "show", "user4242@example.org", "--store", small], { DOVEROUTE_DEV: "1" })

const rows = cases.map(([name]) => ({ name, ...roundRows.map((r) => r.get(name)).sort((a, b) => a.wall - b.wall)[0] }))
const by = Object.fromEntries(rows.map((r) => [r.name, r]))
console.log(`\nstart-up, median of ${RUNS}${ROUNDS > 1 ? `, best of ${ROUNDS} rounds (1-minute load average after each: ${roundLoads.join(", ")})` : ""} (SQLite store with 3 backends and 1 user, unless the row says otherwise)`)
console.log("| command | wall ms | CPU ms | peak RSS MB | wall × unsplit |")
console.log("|---|---|---|---|---|")
for (const r of rows) {
  const base = r.name.startsWith(`Node ${nodeMajor}: `) ? by[`Node ${nodeMajor}, unsplit bundle: ${r.name.slice(`Node ${nodeMajor}: `.length)}`] : undefined
  console.log(`| ${r.name} | ${r.wall.toFixed(0)} | ${r.cpu.toFixed(0)} | ${r.rss.toFixed(0)} | ${base ? (r.wall / base.wall).toFixed(2) : ""} |`)
}
console.log(`| DOVEROUTE_DEV=1 user show (tsx, 1 run) | ${dev.wall.toFixed(0)} | ${dev.cpu.toFixed(0)} | ${dev.rss.toFixed(0)} | |`)
console.log(`\n${USERS.toLocaleString("en")} users, one process each:`)
console.log(`| step | wall s | CPU s | peak RSS MB |`)
console.log("|---|---|---|---|")
console.log(`| import CSV (new store) | ${(imp.wall / 1000).toFixed(1)} | ${(imp.cpu / 1000).toFixed(1)} | ${imp.rss.toFixed(0)} |`)
console.log(`| import CSV again (all unchanged) | ${(again.wall / 1000).toFixed(1)} | ${(again.cpu / 1000).toFixed(1)} | ${again.rss.toFixed(0)} |`)
console.log(`| dump (script with one import) | ${(dump.wall / 1000).toFixed(1)} | ${(dump.cpu / 1000).toFixed(1)} | ${dump.rss.toFixed(0)} |`)
console.log(`\nload average after: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
fs.rmSync(tmp, { recursive: true, force: true })
fs.rmSync(path.dirname(single), { recursive: true, force: true })
