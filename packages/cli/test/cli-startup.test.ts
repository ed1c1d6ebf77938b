// How the `doveroute` command starts (speed itself is measured by `npm run bench:cli`, not here):
// the launcher runs the bundle without reading the sources; what an admin command loads at start
// (the bundle's static import graph) holds neither the daemon layer, the metrics, the HTTP server
// nor a SQL driver; `serve` still gets all of them; DOVEROUTE_DEV=1 runs the sources. (Part of the
// front-end code is loaded: the settings parse listen addresses with it.)
// Needs `npm run build` (scripts/test.sh builds before the tests).
import { CLI_BIN, makeTempDir, REPO_ROOT, runCli } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

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

  it("admin commands work from the bundle: backend add/list on a new SQLite store", async () => {
    const tmp = makeTempDir({ prefix: "dvr-start-" })
    try {
      const store = `sqlite:${tmp.join("s.db")}`
      const add = await runCli(["backend", "add", "b1.test", "--hostip", "127.0.0.2", "--store", store])
      expect(add.code, add.stderr).toBe(0)
      const list = await runCli(["backend", "list", "--store", store, "--json"])
      expect(list.code, list.stderr).toBe(0)
      expect(JSON.parse(list.stdout)).toMatchObject([{ id: 1, hostname: "b1.test", hostip: "127.0.0.2", state: 0 }])
      expect(list.stderr).not.toMatch(/running the sources through tsx/)
    } finally {
      await tmp.cleanup()
    }
  })

  it("DOVEROUTE_DEV=1 runs the TypeScript sources (same answer)", async () => {
    const tmp = makeTempDir({ prefix: "dvr-start-" })
    try {
      const store = `sqlite:${tmp.join("s.db")}`
      const r = await runCli(["backend", "add", "b9.test", "--store", store, "--json"], { env: { DOVEROUTE_DEV: "1" }, timeoutMs: 120_000 })
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ hostname: "b9.test" })
    } finally {
      await tmp.cleanup()
    }
  })
})
