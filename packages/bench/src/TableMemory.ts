/**
 * `npm run bench:table [-- --users 1000000] [--store sqlite|postgres]`: what the in-memory routing
 * table (`table.mode full`) costs for N mapped users, beside the same daemon with the lookup cache
 * (`table.mode cache`, nothing cached yet) in one run: resident memory once started and loaded
 * (VmRSS, and the peak VmHWM, which includes the load), and the load time the daemon logs
 * ("routing table loaded … ms=").
 *
 * Not a test: numbers for README "Performance". Rows are inserted straight into `user_backend`
 * (BulkMap.ts) after `doveroute migrate`; the daemon is the built CLI (`npm run build` first).
 */
import { freshPostgres, freshSqlite, makeTempDir, runCli, sleep, startDaemon, type FreshDatabase } from "@doveroute/testkit"
import { parseArgs } from "node:util"
import { bulkMap, openSqlite, type StoreRef } from "./BulkMap.js"
import { memInfo } from "./ProcStats.js"

const { values } = parseArgs({
  options: { users: { type: "string", default: "1000000" }, store: { type: "string", default: "sqlite" } }
})
const users = Number(values.users)
const kind = values.store === "postgres" ? "postgres" : "sqlite"

const tmp = makeTempDir()
const db: FreshDatabase = kind === "postgres" ? await freshPostgres() : await freshSqlite(tmp.path)
try {
  const migrated = await runCli(["migrate", "--store", db.url], { timeoutMs: 120_000 })
  if (migrated.code !== 0) throw new Error(`migrate: ${migrated.stderr}`)
  const ref: StoreRef = kind === "postgres" ? { kind, database: db.name } : { kind, file: db.url.slice("sqlite:".length) }
  const backends = Array.from({ length: 10 }, (_, i) => `('b${i + 1}.bench', '10.0.0.${i + 1}', 0)`).join(", ")
  if (kind === "sqlite") {
    const s = openSqlite(ref.kind === "sqlite" ? ref.file : "")
    s.prepare(`INSERT INTO backends (hostname, hostip, state) VALUES ${backends}`).run()
    s.close()
  } else {
    for (let i = 1; i <= 10; i++) {
      const r = await runCli(["backend", "add", `b${i}.bench`, "--hostip", `10.0.0.${i}`, "--store", db.url], { timeoutMs: 60_000 })
      if (r.code !== 0) throw new Error(`backend add: ${r.stderr}`)
    }
  }
  const names = Array.from({ length: users }, (_, i) => `user${i}@example.com`)
  const t0 = Date.now()
  await bulkMap(ref, names)
  console.log(`${kind}: ${users} users mapped in ${Date.now() - t0} ms`)

  const measure = async (mode: "full" | "cache") => {
    const sock = tmp.join(`${mode}.sock`)
    const started = Date.now()
    const d = await startDaemon({
      args: ["--store", db.url, "--dict-socket", sock, "--log-level", "info"],
      env: { DOVEROUTE_TABLE_MODE: mode },
      waitFor: [sock],
      timeoutMs: 300_000
    })
    try {
      let loadMs: number | undefined
      if (mode === "full") {
        while (!/routing table loaded/.test(d.logs()) && Date.now() - started < 600_000) await sleep(100)
        loadMs = Number(/routing table loaded.* ms=(\d+)/.exec(d.logs())?.[1])
      }
      await sleep(2000) // settle (GC)
      const m = memInfo(d.pid)!
      return { mode, rssMb: m.rssKb / 1024, hwmMb: m.hwmKb / 1024, loadMs, readyMs: Date.now() - started - 2000 }
    } finally {
      await d.stop()
    }
  }
  const full = await measure("full")
  const cache = await measure("cache")
  const f = (n: number) => n.toFixed(0)
  console.log(`table.mode full : RSS ${f(full.rssMb)} MiB (peak ${f(full.hwmMb)} MiB), table loaded in ${full.loadMs} ms`)
  console.log(`table.mode cache: RSS ${f(cache.rssMb)} MiB (peak ${f(cache.hwmMb)} MiB)`)
  console.log(`table cost: ${f(full.rssMb - cache.rssMb)} MiB for ${users} users (${((full.rssMb - cache.rssMb) * 1024 * 1024 / users).toFixed(0)} bytes/user); RSS ratio full/cache ${(full.rssMb / cache.rssMb).toFixed(2)}`)
} finally {
  await db.drop()
  await tmp.cleanup()
}
