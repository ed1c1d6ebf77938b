// The in-memory routing table (table.mode full, the default) with two `doveroute serve` processes on
// one store (SQLite file, PostgreSQL database, MariaDB database), health checks every second against banner servers:
// - known users are answered from memory: the hit counter grows by every lookup, no miss, no
//   reload, although every health check writes `backends` (last_health / last_health_at);
// - a `doveroute user move --no-wait` and a hand-written SQL UPDATE reach the other daemon within
//   cache.refresh plus one query (polled, the time printed and bounded);
// - a first login through one daemon is answered from memory by the other after the feed carried it.
import { describe, expect, it } from "vitest"
import { freePort, makeTempDir, sleep, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import * as fs from "node:fs"
import { ADMIN_STORES, adminStore } from "./admin-support.js"
import { bannerServer, httpGet, metric, parseProm, type BannerServer } from "./ops-support.js"
import { DictClient, hostOf } from "./store-support.js"

const REFRESH_MS = 300
/** One feed query and the lookup on a loaded 2-core machine. */
const QUERY_SLACK_MS = 700
const USERS = 200

describe.each(ADMIN_STORES)("routing table with two daemons on %s", { timeout: 300_000 }, (kind) => {
  it("known users hit memory while health checks write every second; moves reach the other daemon within refresh + one query", async () => {
    const s = await adminStore(kind, { cache: { refresh: `${REFRESH_MS} millis` } })
    const tmp = makeTempDir()
    const daemons: Array<RunningDaemon> = []
    const clients: Array<DictClient> = []
    const banners: Array<BannerServer> = []
    try {
      const port = await freePort()
      banners.push(await bannerServer("127.0.0.2", port), await bannerServer("127.0.0.3", port))
      await s.json(["backend", "add", "b1.test", "--hostip", "127.0.0.2"])
      await s.json(["backend", "add", "b2.test", "--hostip", "127.0.0.3"])
      const col = kind === "postgres" ? `"user"` : kind === "mysql" ? "`user`" : "user"
      const users = Array.from({ length: USERS }, (_, i) => `user${i}@example.com`)
      await s.sql(`INSERT INTO user_backend (backend_id, ${col}) VALUES ${users.map((u, i) => `(${(i % 2) + 1}, '${u}')`).join(", ")}`)
      const metricsPorts = [await freePort(), await freePort()]
      const sockets = [tmp.join("a.sock"), tmp.join("b.sock")]
      daemons.push(...await Promise.all(sockets.map((sock, i) => {
        const config = tmp.join(`d${i}.json`)
        fs.writeFileSync(config, JSON.stringify({
          ...JSON.parse(fs.readFileSync(s.config, "utf8")),
          dict: { socket: sock },
          metrics: { listen: `127.0.0.1:${metricsPorts[i]}` },
          health: { enabled: true, protocol: "imap", port, interval: "1 second", timeout: "1 second", fall: 2, rise: 2 }
        }))
        return startDaemon({
          args: ["--config", config, "--log-level", "warning"],
          waitFor: [sock],
          waitForTcp: [{ host: "127.0.0.1", port: metricsPorts[i]! }],
          timeoutMs: 60_000
        })
      })))
      clients.push(...await Promise.all(sockets.map((sock) => DictClient.connect(sock))))
      const scrape = async (i: number) => parseProm((await httpGet(`http://127.0.0.1:${metricsPorts[i]}/metrics`)).body)
      const host = async (i: number, user: string) => hostOf((await clients[i]!.lookup(user)).line)
      // both tables loaded
      for (const i of [0, 1]) {
        const end = Date.now() + 20_000
        while (metric(await scrape(i), "doveroute_cache_entries") !== USERS && Date.now() < end) await sleep(100)
        expect(metric(await scrape(i), "doveroute_cache_entries"), `daemon ${i} loaded the table`).toBe(USERS)
      }

      // 4 s of lookups of known users through both daemons while the checkers write every second
      const before = await Promise.all([0, 1].map(scrape))
      const healthAt = async () => (await s.sql<{ t: unknown }>("SELECT MAX(last_health_at) AS t FROM backends"))[0]?.t
      const health0 = String(await healthAt())
      let lookups = 0
      const end = Date.now() + 4000
      while (Date.now() < end) {
        for (const i of [0, 1]) {
          const u = users[lookups % USERS]!
          expect(await host(i, u)).toBe(lookups % USERS % 2 === 0 ? "b1.test" : "b2.test")
        }
        lookups++
      }
      expect(String(await healthAt()), "the health checkers kept writing backends").not.toBe(health0)
      const after = await Promise.all([0, 1].map(scrape))
      for (const i of [0, 1]) {
        const d = (name: string) => metric(after[i]!, name) - metric(before[i]!, name)
        expect(d("doveroute_cache_hits_total"), `daemon ${i}: every lookup hit memory`).toBe(lookups)
        expect(d("doveroute_cache_misses_total"), `daemon ${i}: no miss`).toBe(0)
        expect(metric(after[i]!, "doveroute_table_reloads_total"), `daemon ${i}: loaded once, never reloaded`).toBe(1)
        expect(metric(after[i]!, "doveroute_store_up")).toBe(1)
      }

      // a move by the CLI (no wait) and hand-written SQL reach daemon b within refresh + one query
      const reach = async (user: string, want: string) => {
        const t0 = Date.now()
        while ((await host(1, user)) !== want && Date.now() - t0 < 10_000) await sleep(10)
        return Date.now() - t0
      }
      expect(await host(1, users[0]!)).toBe("b1.test")
      await s.json(["user", "move", users[0]!, "b2.test", "--no-wait"])
      const tMove = await reach(users[0]!, "b2.test")
      expect(tMove, "user move seen by the other daemon").toBeLessThanOrEqual(REFRESH_MS + QUERY_SLACK_MS)
      await s.sql(`UPDATE user_backend SET backend_id = 1 WHERE ${col} = '${users[1]}'`)
      const tSql = await reach(users[1]!, "b1.test")
      expect(tSql, "hand-written UPDATE seen by the other daemon").toBeLessThanOrEqual(REFRESH_MS + QUERY_SLACK_MS)

      // a first login through daemon a: daemon b answers it from memory once the feed carried it
      const first = hostOf((await clients[0]!.lookup("newcomer@example.com")).line)
      expect(first).toMatch(/^b[12]\.test$/)
      await sleep(REFRESH_MS + QUERY_SLACK_MS)
      const m0 = metric(await scrape(1), "doveroute_cache_hits_total")
      expect(await host(1, "newcomer@example.com")).toBe(first)
      expect(metric(await scrape(1), "doveroute_cache_hits_total"), "answered from daemon b's table").toBe(m0 + 1)
      for (const i of [0, 1]) expect(metric(await scrape(i), "doveroute_table_reloads_total")).toBe(1)
      console.log(`${kind}: ${2 * lookups} lookups all from memory; user move seen after ${tMove} ms, SQL UPDATE after ${tSql} ms`)
    } finally {
      for (const c of clients) c.close()
      await Promise.all(daemons.map((d) => d.stop()))
      for (const b of banners) await b.close()
      await s.drop()
      await tmp.cleanup()
    }
  })
})
