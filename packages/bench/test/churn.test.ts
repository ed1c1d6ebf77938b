/**
 * `bench --churn`: what it claims to do while the runs go, checked on a real `doveroute serve`
 * (the bundle) over a SQLite store:
 * - the IMAP greeting servers on both bench backends answer the daemon's health checks (every
 *   second), and the backends stay up;
 * - the mover makes one `doveroute user move` per second, alternating backends, and every move is
 *   seen by the daemon (its dict answer names the new host) without a restart;
 * - the measured pool is untouched: every warm user still gets the host of its row.
 */
import Database from "better-sqlite3"
import { describe, expect, it } from "vitest"
import { churnUsers, startImapBanners, startMover } from "../src/Churn.js"
import { bulkMap } from "../src/BulkMap.js"
import { runLoad } from "../src/LoadGen.js"
import { addBackends, ensureBundle, startDoveroute } from "../src/Servers.js"
import { describeTempDir } from "./support.js"

const HOSTS = ["127.0.0.2", "127.0.0.3"]

describe("bench --churn on a real doveroute serve", () => {
  const tmp = describeTempDir("dvbc-")

  it("health checks are answered, moves land once a second and the daemon follows them; warm users keep their rows", async () => {
    await ensureBundle(true)
    const file = tmp().join("routes.db")
    const store = `sqlite:${file}`
    await addBackends(store, HOSTS)
    const movers = churnUsers(3)
    await bulkMap({ kind: "sqlite", file }, movers)
    const warm = Array.from({ length: 200 }, (_, i) => `warm${i}`)
    const expected = await bulkMap({ kind: "sqlite", file }, warm)

    const banners = await startImapBanners(HOSTS)
    const dictSocket = tmp().join("dict.sock")
    const d = await startDoveroute({
      store,
      dictSocket,
      env: {
        DOVEROUTE_HEALTH_ENABLED: "true",
        DOVEROUTE_HEALTH_PORT: String(banners.port),
        DOVEROUTE_HEALTH_INTERVAL: "1 second",
        DOVEROUTE_HEALTH_TIMEOUT: "1 second",
        DOVEROUTE_CACHE_REFRESH: "1 second"
      }
    })
    try {
      const mover = startMover(store, movers, HOSTS, 1000)
      await new Promise((r) => setTimeout(r, 4500))
      const stats = await mover.stop()
      expect(stats.failed, stats.firstError).toBe(0)
      expect(stats.moves).toBeGreaterThanOrEqual(3)
      // at least one check per backend per second, and both backends still up
      expect(banners.checks()).toBeGreaterThanOrEqual(4)
      const db = new Database(file, { readonly: true })
      try {
        const states = db.prepare("SELECT hostname, state FROM backends ORDER BY hostname").all() as Array<{ hostname: string; state: number }>
        expect(states).toEqual(HOSTS.map((h) => ({ hostname: h, state: 0 })))
        // the rows the mover wrote, as the daemon must see them after its next refresh
        const rows = new Map(
          (db.prepare("SELECT u.user AS user, b.hostname AS host FROM user_backend u JOIN backends b ON b.id = u.backend_id WHERE u.user LIKE 'churn%'").all() as Array<{ user: string; host: string }>)
            .map((r) => [r.user, r.host] as const)
        )
        expect(rows.size).toBe(movers.length)
        await new Promise((r) => setTimeout(r, 1800))
        const seen = await runLoad({ mode: "dict", socket: dictSocket, connections: 2, users: movers, expected: rows, sequential: true })
        expect(seen.errors, JSON.stringify(seen.errorSamples)).toBe(0)
        expect(seen.replies).toBe(movers.length)
      } finally {
        db.close()
      }
      const r = await runLoad({ mode: "dict", socket: dictSocket, connections: 4, users: warm, expected, sequential: true })
      expect(r.errors, JSON.stringify(r.errorSamples)).toBe(0)
      expect(r.replies).toBe(warm.length)
    } finally {
      await d.stop()
      await banners.close()
    }
  }, 120_000)
})
