// The ring view on SQLite, PostgreSQL and MariaDB: two real daemons sharing a store record their
// heartbeats in doveroute_daemons; `doveroute status --json` lists both (pid, version, lookup table
// size); a store error a daemon met (user_backend renamed away under it) shows as its last store
// error; a clean stop removes the row; a daemon no longer seen is marked.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeTempDir, startDaemon, type RunningDaemon, type TempDir } from "@doveroute/testkit"
import * as os from "node:os"
import { ADMIN_STORES, adminStore, type AdminStore } from "./admin-support.js"
import { DictClient } from "./store-support.js"

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

interface Daemon {
  host: string
  pid: number
  version: string
  stale: boolean
  tableSize: number | null
  lastStoreError: string | null
  lastStoreErrorAt: number | null
}

describe.each(ADMIN_STORES)("the ring on %s", { timeout: 300_000 }, (kind) => {
  let s: AdminStore
  let tmp: TempDir
  const daemons: Array<RunningDaemon> = []
  const sockets: Array<string> = []
  const ring = async () => (await s.json<{ daemons: Array<Daemon> }>(["status"])).daemons
  /** Polls `status` until `ok` holds (a heartbeat every 300 ms). */
  const until = async (ok: (d: Array<Daemon>) => boolean) => {
    let last: Array<Daemon> = []
    for (let i = 0; i < 60; i++) {
      last = await ring()
      if (ok(last)) return last
      await sleep(300)
    }
    throw new Error(`ring never reached the expected state: ${JSON.stringify(last)}`)
  }

  beforeAll(async () => {
    s = await adminStore(kind, { heartbeat_interval: "300 millis", log_level: "warning" })
    tmp = makeTempDir()
    await s.json(["backend", "add", "b1.test", "--hostip", "127.0.0.2"])
    for (const n of [0, 1]) {
      sockets.push(tmp.join(`dict${n}.sock`))
      daemons.push(await startDaemon({ args: ["--config", s.config, "--dict-socket", sockets[n]!], waitFor: [sockets[n]!], timeoutMs: 60_000 }))
    }
  })
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()))
    await tmp?.cleanup()
    await s?.drop()
  })

  it("lists every daemon sharing the store, with its lookup table size and last store error", async () => {
    const both = await until((d) => d.length === 2)
    expect(both.map((d) => d.pid).sort()).toEqual(daemons.map((d) => d.pid).sort())
    for (const d of both) expect(d).toMatchObject({ host: os.hostname(), version: "0.1.0", stale: false, lastStoreError: null })

    const c = await DictClient.connect(sockets[0]!)
    try {
      expect((await c.lookup("alice")).line).toMatch(/^O/)
      await until((d) => (d.find((x) => x.pid === daemons[0]!.pid)?.tableSize ?? 0) >= 1)

      // a real store error: the table is gone for a moment under the daemon
      await s.sql(kind === "mysql" ? "RENAME TABLE user_backend TO ub_away" : "ALTER TABLE user_backend RENAME TO ub_away")
      try {
        expect((await c.lookup("bob")).line).toMatch(/^F/)
      } finally {
        await s.sql(kind === "mysql" ? "RENAME TABLE ub_away TO user_backend" : "ALTER TABLE ub_away RENAME TO user_backend")
      }
      const after = await until((d) => d.find((x) => x.pid === daemons[0]!.pid)?.lastStoreError !== null)
      const a = after.find((x) => x.pid === daemons[0]!.pid)!
      expect(a.lastStoreError).toMatch(/user_backend|ub_away|no such table|does not exist|doesn't exist/i)
      expect(a.lastStoreErrorAt).toBeGreaterThan(Date.now() - 120_000)
      expect(after.find((x) => x.pid === daemons[1]!.pid)!.lastStoreError).toBeNull()
      expect((await c.lookup("bob")).line).toMatch(/^O/)
    } finally {
      c.close()
    }
  })

  it("a clean stop removes the row; a daemon not seen for three heartbeats is marked", async () => {
    expect(await daemons[1]!.stop()).toBe(0)
    const one = await until((d) => d.length === 1)
    expect(one[0]!.pid).toBe(daemons[0]!.pid)

    const seen = Date.now() - 60_000
    await s.sql(`INSERT INTO doveroute_daemons (host, pid, version, started_at, last_seen, interval_ms) VALUES ('gone.example', 4242, '0.0.9', ${seen - 1000}, ${seen}, 1000)`)
    const listed = await ring()
    expect(listed.find((d) => d.host === "gone.example")).toMatchObject({ pid: 4242, stale: true, ageMs: expect.any(Number) })
    expect(listed.find((d) => d.pid === daemons[0]!.pid)!.stale).toBe(false)
    const text = await s.cli(["status"])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^gone\.example\t4242\t0\.0\.9\t.*\t\d+s ago NOT SEEN RECENTLY\t-\t-$/m)
    expect(text.stdout).toContain("2 daemons, 1 not seen recently")
  })
})
