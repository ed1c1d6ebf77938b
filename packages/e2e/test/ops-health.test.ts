// The health checker and the metrics endpoint against a real Dovecot 2.3 backend and small banner
// servers, with `doveroute serve` as a child process on a SQLite store:
// - a backend whose IMAP port stops is marked state 3 and new users avoid it; restarted, state 0;
// - an admin-down backend (state 1) on a healthy Dovecot stays 1, a never-answering one goes 3;
// - metrics are scraped over HTTP, parsed, and follow the lookups.
import { describe, expect, it } from "vitest"
import {
  dovecot23Available,
  freePort,
  makeTempDir,
  seedSqliteStore,
  startBackend23,
  startDaemon,
  startDovecot23,
  type Dovecot,
  type RunningDaemon
} from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { backends, bannerServer, hasHealthColumns, httpGet, metric, parseProm, startHealthDaemon, waitUntil, type BannerServer } from "./ops-support.js"
import { DictClient, hostOf } from "./store-support.js"

const stateOf = async (db: string, id: number) => (await backends(db)).get(id)?.state

describe("health checker with a real Dovecot 2.3 backend", () => {
  it("marks a stopped backend 3, avoids it for new users, brings it back to 0; never touches an admin-down backend", async () => {
    // a missing Dovecot is a failure, never a skip
    expect(dovecot23Available(), "Dovecot 2.3 (/usr/sbin/dovecot) is missing: run scripts/install-deps.sh").toBe(true)
    const tmp = makeTempDir()
    const db = tmp.join("store.db")
    let dovecot: Dovecot | undefined
    let daemon: RunningDaemon | undefined
    let banner: BannerServer | undefined
    try {
      const be = await startBackend23(tmp.path, { listen: ["127.0.0.2", "127.0.0.3"] })
      dovecot = be.dovecot
      const port = be.imapPort
      banner = await bannerServer("127.0.0.5", port)
      // 1: real Dovecot; 2: the same Dovecot but admin-down; 3: nothing listens; 4: banner server
      await seedSqliteStore(db, {
        backends: [
          { hostname: "b1.test", hostip: "127.0.0.2" },
          { hostname: "b2.test", hostip: "127.0.0.3", state: 1 },
          { hostname: "b3.test", hostip: "127.0.0.4" },
          { hostname: "b4.test", hostip: "127.0.0.5" }
        ]
      })
      const started = await startHealthDaemon(tmp, db, { enabled: true, protocol: "imap", port, interval: "200 millis", timeout: "1 second", fall: 2, rise: 2 })
      daemon = started.daemon
      const { metricsPort, sock } = started
      const columns = await hasHealthColumns(db)

      // nothing on 127.0.0.4: down by health; the real Dovecot and the banner: up
      await waitUntil("b3 state 3", async () => (await stateOf(db, 3)) === 3 ? true : undefined)
      if (columns) {
        await waitUntil("b1 and b2 health recorded", async () => {
          const rows = await backends(db)
          return /^ok .*\* OK/.test(rows.get(1)?.lastHealth ?? "") && /^ok /.test(rows.get(2)?.lastHealth ?? "") ? true : undefined
        })
      }
      let rows = await backends(db)
      expect([...rows.values()].map((b) => b.state)).toEqual([0, 1, 3, 0])
      const scrape = async () => parseProm((await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body)
      const m0 = await waitUntil("health gauges", async () => {
        const s = await scrape()
        // backend_state comes from the routing table, which follows the store within cache.refresh
        return metric(s, "doveroute_backend_health_up", { backend: "b3.test" }) === 0 &&
            metric(s, "doveroute_backend_state", { backend: "b3.test" }) === 3 &&
            s.some((x) => x.name === "doveroute_backend_health_up" && x.labels["backend"] === "b1.test" && x.value === 1)
          ? s
          : undefined
      })
      expect(metric(m0, "doveroute_backend_state", { backend: "b2.test" })).toBe(1)
      expect(metric(m0, "doveroute_backend_state", { backend: "b3.test" })).toBe(3)

      // stop the Dovecot: b1 goes 3, b2 (admin down) stays 1
      await dovecot.stop()
      dovecot = undefined
      await waitUntil("b1 state 3", async () => (await stateOf(db, 1)) === 3 ? true : undefined)
      if (columns) expect((await backends(db)).get(1)?.lastHealth).toMatch(/^fail/)
      expect(await stateOf(db, 2)).toBe(1)

      // new users avoid it: every one lands on the banner backend (the only state-0 one)
      const client = await DictClient.connect(sock)
      try {
        const hosts = new Set<string | undefined>()
        for (let i = 0; i < 20; i++) hosts.add(hostOf((await client.lookup(`new${i}@example.com`)).line))
        expect([...hosts]).toEqual(["b4.test"])
      } finally {
        client.close()
      }

      // restart the same Dovecot (same config, same port): b1 back to 0, b2 still 1 although healthy
      dovecot = await startDovecot23({
        dir: path.join(tmp.path, "backend"),
        config: fs.readFileSync(path.join(tmp.path, "backend", "dovecot.conf"), "utf8"),
        tcp: [{ host: "127.0.0.2", port }, { host: "127.0.0.3", port }]
      })
      await waitUntil("b1 state 0", async () => (await stateOf(db, 1)) === 0 ? true : undefined)
      if (columns) {
        await waitUntil("b2 healthy again", async () => /^ok /.test((await backends(db)).get(2)?.lastHealth ?? "") ? true : undefined)
      } else {
        await new Promise((r) => setTimeout(r, 1500))
      }
      rows = await backends(db)
      expect(rows.get(2)?.state).toBe(1)
      expect(rows.get(3)?.state).toBe(3)
      expect(daemon.logs()).toMatch(/marked down by the health checker/)
      expect(daemon.logs()).toMatch(/marked up by the health checker/)
      expect(await daemon.stop()).toBe(0)
      daemon = undefined
    } finally {
      await daemon?.stop()
      await banner?.close()
      await dovecot?.stop()
      tmp.cleanup()
    }
  })
})

describe("metrics endpoint", () => {
  it("serves Prometheus text on loopback; lookup counters, latency, cache and users per backend follow the lookups", async () => {
    const tmp = makeTempDir()
    const db = tmp.join("store.db")
    let daemon: RunningDaemon | undefined
    try {
      await seedSqliteStore(db, {
        backends: [{ hostname: "m1.test", hostip: "127.0.0.2" }, { hostname: "m2.test", hostip: "127.0.0.3", state: 2 }],
        mappings: { "old@example.com": 2 }
      })
      const metricsPort = await freePort()
      const sock = tmp.join("dict.sock")
      daemon = await startDaemon({
        args: ["--store", `sqlite:${db}`, "--dict-socket", sock],
        env: { DOVEROUTE_METRICS_LISTEN: `127.0.0.1:${metricsPort}` },
        waitFor: [sock],
        waitForTcp: [{ host: "127.0.0.1", port: metricsPort }]
      })
      const scrape = async () => {
        const r = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)
        expect(r.status).toBe(200)
        return parseProm(r.body)
      }
      const before = await scrape()
      expect(metric(before, "doveroute_lookups_total")).toBe(0)
      expect(metric(before, "doveroute_backend_users", { backend: "m2.test" })).toBe(1)
      expect(metric(before, "doveroute_backend_state", { backend: "m2.test" })).toBe(2)
      expect(before.some((s) => s.name === "doveroute_backend_health_up")).toBe(false)

      const client = await DictClient.connect(sock)
      try {
        for (let i = 0; i < 10; i++) expect((await client.lookup(`u${i}@example.com`)).line).toMatch(/^O/)
        for (let i = 0; i < 5; i++) expect((await client.lookup(`u${i}@example.com`)).line).toMatch(/^O/)
        expect((await client.lookup("old@example.com")).line).toMatch(/^O/)
        // a control character never reaches routing (the request field check answers F first):
        // no lookup is counted for it
        expect((await client.lookup("bad\u0000user")).line).toMatch(/^F/)
      } finally {
        client.close()
      }
      const after = await waitUntil("users per backend refreshed", async () => {
        const s = await scrape()
        return metric(s, "doveroute_backend_users", { backend: "m1.test" }) === 10 ? s : undefined
      }, 15_000)
      expect(metric(after, "doveroute_lookups_total", { frontend: "dict", result: "ok" })).toBe(16)
      expect(metric(after, "doveroute_lookups_total")).toBe(16)
      expect(metric(after, "doveroute_lookup_duration_seconds_count", { frontend: "dict" })).toBe(16)
      expect(metric(after, "doveroute_lookup_duration_seconds_bucket", { frontend: "dict", le: "+Inf" })).toBe(16)
      expect(metric(after, "doveroute_store_errors_total")).toBe(0)
      expect(after.some((s) => s.name === "doveroute_cache_hits_total")).toBe(true)
      expect(after.some((s) => s.name === "process_resident_memory_bytes")).toBe(true)
      expect((await httpGet(`http://127.0.0.1:${metricsPort}/nope`)).status).toBe(404)
      expect(await daemon.stop()).toBe(0)
      daemon = undefined
    } finally {
      await daemon?.stop()
      tmp.cleanup()
    }
  })

  it("refuses a non-loopback metrics address", async () => {
    const tmp = makeTempDir()
    try {
      await expect(startDaemon({
        args: ["--store", `sqlite:${tmp.join("s.db")}`, "--dict-socket", tmp.join("d.sock")],
        env: { DOVEROUTE_METRICS_LISTEN: "0.0.0.0:9180" },
        waitFor: [tmp.join("d.sock")],
        timeoutMs: 15_000
      })).rejects.toThrow(/loopback/)
    } finally {
      tmp.cleanup()
    }
  })
})
