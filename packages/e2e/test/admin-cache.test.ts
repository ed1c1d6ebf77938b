// Admin changes across two daemons, with the routing table (table.mode full, the default: the change
// feed) and with the lookup cache (table.mode cache: routes version): both answer alice's route from
// memory (cache.ttl 10 min), the CLI moves her; once `doveroute user move` has returned, the next
// lookup on either daemon answers the new backend. Also: hand-written SQL reaches both within
// cache.refresh (+ one query).
import { describe, expect, it } from "vitest"
import { makeTempDir, startDaemon, sleep, type RunningDaemon } from "@doveroute/testkit"
import { ADMIN_STORES, adminStore } from "./admin-support.js"
import { DictClient, hostOf } from "./store-support.js"

const CASES = ADMIN_STORES.flatMap((kind) => (["full", "cache"] as const).map((mode) => [kind, mode] as const))

describe.each(CASES)("two daemons on %s, table.mode %s", { timeout: 300_000 }, (kind, mode) => {
  it("a move by the CLI is seen by both daemons' next lookups once the command returned", async () => {
    const s = await adminStore(kind, { cache: { refresh: "500 millis", ttl: "10 minutes" }, table: { mode } })
    const tmp = makeTempDir()
    const daemons: Array<RunningDaemon> = []
    const clients: Array<DictClient> = []
    try {
      await s.json(["backend", "add", "b1.test", "--hostip", "127.0.0.2"])
      await s.json(["backend", "add", "b2.test", "--hostip", "127.0.0.3"])
      await s.json(["user", "move", "alice", "b1.test", "--no-wait"])
      await s.json(["user", "move", "bob", "b1.test", "--no-wait"])
      const sockets = [tmp.join("a.sock"), tmp.join("b.sock")]
      daemons.push(...await Promise.all(sockets.map((sock) =>
        startDaemon({ args: ["--config", s.config, "--dict-socket", sock, "--log-level", "warning"], waitFor: [sock], timeoutMs: 60_000 }))))
      clients.push(...await Promise.all(sockets.map((sock) => DictClient.connect(sock))))
      const hosts = async (user: string) => Promise.all(clients.map(async (c) => hostOf((await c.lookup(user)).line)))
      expect(await hosts("alice")).toEqual(["b1.test", "b1.test"])
      expect(await hosts("alice")).toEqual(["b1.test", "b1.test"]) // now cached in both

      const moved = await s.json(["user", "move", "alice", "b2.test"])
      expect(moved).toMatchObject({ changed: true, to: 2 })
      // no sleep: the command's own wait is the bound
      expect(await hosts("alice")).toEqual(["b2.test", "b2.test"])

      // hand-written SQL (routes-version triggers) reaches both within cache.refresh + one query
      expect(await hosts("bob")).toEqual(["b1.test", "b1.test"])
      const col = s.userCol
      await s.sql(`UPDATE user_backend SET backend_id = 2 WHERE ${col} = 'bob'`)
      await sleep(1000)
      expect(await hosts("bob")).toEqual(["b2.test", "b2.test"])
    } finally {
      for (const c of clients) c.close()
      await Promise.all(daemons.map((d) => d.stop()))
      await s.drop()
      await tmp.cleanup()
    }
  })

  it("without the move's wait (--no-wait) a daemon may still answer the old route from memory (the test can fail)", async () => {
    const s = await adminStore(kind, { cache: { refresh: "20 seconds", ttl: "10 minutes" }, table: { mode } })
    const tmp = makeTempDir()
    let d: RunningDaemon | undefined
    let c: DictClient | undefined
    try {
      await s.json(["backend", "add", "b1.test"])
      await s.json(["backend", "add", "b2.test"])
      await s.json(["user", "move", "alice", "b1.test", "--no-wait"])
      const sock = tmp.join("a.sock")
      d = await startDaemon({ args: ["--config", s.config, "--dict-socket", sock, "--log-level", "warning"], waitFor: [sock], timeoutMs: 60_000 })
      c = await DictClient.connect(sock)
      expect(hostOf((await c.lookup("alice")).line)).toBe("b1.test")
      await s.json(["user", "move", "alice", "b2.test", "--no-wait"])
      expect(hostOf((await c.lookup("alice")).line)).toBe("b1.test") // stale: served from memory until the next refresh
    } finally {
      c?.close()
      await d?.stop()
      await s.drop()
      await tmp.cleanup()
    }
  })
})
