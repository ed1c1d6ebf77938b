// How the `doveroute` command starts (speed itself is measured by `npm run bench:cli`, not here):
// the launcher runs the bundle without reading the sources; what every command loads at start (the
// bundle's static import graph) holds neither the daemon layer, the metrics, the HTTP server, a SQL
// driver, the store nor any command's implementation (each *Run.ts chunk is imported when its
// command runs); a store command (`backend list`) loads no front-end; fast-check (test-only, reached
// through effect's Schema) is nowhere in the bundle and the commands run without it; `serve` still
// gets everything; DOVEROUTE_DEV=1 runs the sources.
// Needs `npm run build` (scripts/test.sh builds before the tests).
import { CLI_BIN, makeTempDir, REPO_ROOT, runCli, runCommand } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

/** `body` with the URL of a new SQLite store in a temp dir, removed afterwards. */
const withTempStore = async (body: (store: string) => Promise<void>): Promise<void> => {
  const tmp = makeTempDir({ prefix: "dvr-start-" })
  try {
    await body(`sqlite:${tmp.join("s.db")}`)
  } finally {
    await tmp.cleanup()
  }
}

const DIST = path.join(REPO_ROOT, "packages", "cli", "dist")
const ENTRY = path.join(DIST, "doveroute.mjs")

/** Files an ES module loads before its first line runs: its static imports, transitively. */
const staticClosure = (entry: string): Array<string> => {
  const seen = new Set<string>()
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.shift()!
    if (seen.has(file)) continue
    seen.add(file)
    const text = fs.readFileSync(file, "utf8")
    // static `import … from "./x"` / `import "./x"`, not `import("./x")`
    for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*"(\.{1,2}\/[^"]+)"/g)) queue.push(path.resolve(path.dirname(file), m[1]!))
  }
  return [...seen]
}

/** Text that only the named part of the bundle contains. */
const MARKERS: ReadonlyArray<readonly [string, RegExp]> = [
  ["prom-client (metrics)", /process_cpu_user_seconds_total/],
  ["ws / the HTTP server", /Sec-WebSocket-Key/i],
  ["the daemon layer", /doveroute ready/],
  ["the PostgreSQL driver", /from\s*"pg"/],
  ["the MySQL driver", /from\s*"mysql2"/],
  ["better-sqlite3", /from\s*"better-sqlite3"/],
  ["undici", /undici/]
]

/** Text only a command implementation, the store or a front-end contains. */
const LAZY_MARKERS: ReadonlyArray<readonly [string, RegExp]> = [
  ["the store (migrations)", /0001_lua_director_tables/],
  ["dump/import (OpsRun)", /DOVEROUTE_DUMP_END/],
  ["user moves (UserRun)", /move in progress/],
  ["the UNIX listeners (front-ends)", /connection limit reached/]
]
const FAST_CHECK = /Property failed after|xoroshiro128plus/

const chunk = (prefix: string): string => {
  const f = fs.readdirSync(path.join(DIST, "chunks")).find((n) => n.startsWith(`${prefix}-`) && n.endsWith(".mjs"))
  if (f === undefined) throw new Error(`no chunk ${prefix}-*.mjs in the bundle`)
  return path.join(DIST, "chunks", f)
}
const allOutputs = (): string =>
  [ENTRY, ...fs.readdirSync(path.join(DIST, "chunks")).filter((f) => f.endsWith(".mjs")).map((f) => path.join(DIST, "chunks", f))]
    .map((f) => fs.readFileSync(f, "utf8")).join("\n")

describe("doveroute start-up", () => {
  it("the bundle exists (npm run build) and the launcher imports it without walking the sources", () => {
    expect(fs.existsSync(ENTRY), "packages/cli/dist/doveroute.mjs is missing: run npm run build").toBe(true)
    const launcher = fs.readFileSync(CLI_BIN, "utf8")
    expect(launcher).not.toMatch(/readdirSync|statSync/)
    expect(launcher).toMatch(/DOVEROUTE_DEV/)
  })

  it("an admin command's static import graph holds no daemon layer, metrics, HTTP server or SQL driver", () => {
    const files = staticClosure(ENTRY)
    const text = files.map((f) => fs.readFileSync(f, "utf8")).join("\n")
    for (const [what, marker] of MARKERS) expect(marker.test(text), `${what} is loaded by every admin command`).toBe(false)
    // …but every one of them is in the bundle, for `serve` and the store URL that names it
    const all = fs.readdirSync(path.join(DIST, "chunks")).filter((f) => f.endsWith(".mjs")).map((f) => fs.readFileSync(path.join(DIST, "chunks", f), "utf8")).join("\n")
    for (const [what, marker] of MARKERS.filter(([w]) => w !== "undici")) expect(marker.test(all), `${what} is missing from the bundle`).toBe(true)
  })

  it("what every command loads at start holds no command implementation and no store; backend list loads no front-end; no fast-check anywhere", () => {
    const atStart = staticClosure(ENTRY).map((f) => fs.readFileSync(f, "utf8")).join("\n")
    const all = allOutputs()
    for (const [what, marker] of LAZY_MARKERS) {
      expect(marker.test(atStart), `${what} is loaded by every command`).toBe(false)
      expect(marker.test(all), `${what} is missing from the bundle`).toBe(true)
    }
    // backend list: the entry, its implementation and what they import (the store, not the front-ends)
    const backendList = staticClosure(chunk("BackendRun")).concat(staticClosure(ENTRY)).map((f) => fs.readFileSync(f, "utf8")).join("\n")
    expect(backendList).toMatch(/0001_lua_director_tables/)
    expect(/connection limit reached/.test(backendList), "backend list loads the front-ends").toBe(false)
    expect(FAST_CHECK.test(all), "fast-check is in the bundle").toBe(false)
    // the test-only parts of effect that would call it are stubs that say so
    expect(all).toContain("fast-check (test-only) is not in the doveroute bundle")
  })

  it("no Node built-in is imported as an ES module (its facade reads every export: node:http's load undici)", () => {
    const outputs = [ENTRY, ...fs.readdirSync(path.join(DIST, "chunks")).filter((f) => f.endsWith(".mjs")).map((f) => path.join(DIST, "chunks", f))]
    for (const f of outputs) {
      const rest = fs.readFileSync(f, "utf8").split("\n").slice(1).join("\n") // line 1: the banner's node:module
      expect(rest.match(/\bimport\b[^;"]*"node:[\w/]+"/g) ?? [], path.basename(f)).toEqual([])
    }
  })

  it("--version loads neither node:crypto, node:child_process nor node:readline (the platform layer's namespaces load on first use)", async () => {
    const probe = "data:text/javascript," + encodeURIComponent(
      `process.on("exit", () => process.stderr.write("BUILTINS " + process.moduleLoadList.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13)).join(" ") + "\\n"))`
    )
    const r = await runCommand(process.execPath, ["--import", probe, CLI_BIN, "--version"], { cwd: REPO_ROOT })
    expect(r.code, r.stderr).toBe(0)
    const loaded = (/BUILTINS (.*)/.exec(r.stderr)?.[1] ?? "").split(" ")
    expect(loaded.length, r.stderr).toBeGreaterThan(10)
    expect(loaded.filter((m) => ["crypto", "child_process", "readline"].includes(m))).toEqual([])
  })

  it("every command group runs from the bundle (their implementations loaded on demand)", () =>
    withTempStore(async (store) => {
      const ok = async (args: ReadonlyArray<string>, input?: string) => {
        const r = await runCli(args, input === undefined ? {} : { input })
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0)
        return r.stdout
      }
      expect((await ok(["--version"])).trim()).toMatch(/^\d+\.\d+\.\d+$/)
      expect(await ok(["migrate", "--store", store])).toMatch(/applied|up to date/)
      expect(await ok(["backend", "add", "b1.test", "--hostip", "127.0.0.2", "--store", store])).toMatch(/added backend 1 b1\.test/)
      expect(await ok(["import", "--store", store, "-"], "user,backend\nalice@example.org,b1.test\n")).toMatch(/1 inserted/)
      expect(await ok(["user", "show", "alice@example.org", "--store", store])).toMatch(/-> backend 1 b1\.test/)
      expect(await ok(["shard", "show", "alice@example.org", "--store", store])).toMatch(/shard \d+/)
      expect(await ok(["status", "--store", store])).toMatch(/1 backends, 1 users mapped/)
      expect(await ok(["dump", "--store", store])).toContain("alice@example.org,b1.test")
      expect(await ok(["lookup", "alice@example.org", "--store", store])).toMatch(/backend 1 \(b1\.test\)/)
      expect(await ok(["config", "check", "--store", store])).toMatch(/^config OK/)
      // a bad option value is still a usage error (exit 2) before any implementation is loaded
      const bad = await runCli(["backend", "add", "b2.test", "--hostip", "not-an-ip", "--store", store])
      expect(bad.code).toBe(2)
    }))

  it("admin commands work from the bundle: backend add/list on a new SQLite store", () =>
    withTempStore(async (store) => {
      const add = await runCli(["backend", "add", "b1.test", "--hostip", "127.0.0.2", "--store", store])
      expect(add.code, add.stderr).toBe(0)
      const list = await runCli(["backend", "list", "--store", store, "--json"])
      expect(list.code, list.stderr).toBe(0)
      expect(JSON.parse(list.stdout)).toMatchObject([{ id: 1, hostname: "b1.test", hostip: "127.0.0.2", state: 0 }])
      expect(list.stderr).not.toMatch(/running the sources through tsx/)
    }))

  it("DOVEROUTE_DEV=1 runs the TypeScript sources (same answer)", () =>
    withTempStore(async (store) => {
      const r = await runCli(["backend", "add", "b9.test", "--store", store, "--json"], { env: { DOVEROUTE_DEV: "1" }, timeoutMs: 120_000 })
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ hostname: "b9.test" })
    }))
})
