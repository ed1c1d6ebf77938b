// Two `doveroute serve` processes on one PostgreSQL database and on one MariaDB database (the
// machine's servers, fresh database each). Both start at the same moment on the empty database
// (concurrent start-up migrations), then 1000 users log in for the first time through both daemons
// at once over many dict connections each: exactly one user_backend row per user, and both daemons
// answer the same host for every user.
import { describe, expect, it } from "vitest"
import { freshMysql, freshPostgres, makeTempDir, startDaemon, type FreshDatabase, type RunningDaemon } from "@doveroute/testkit"
import { Migrations } from "@doveroute/store"
import { DictClient, hostOf, mappings, query, seedBackends, type DictReply } from "./store-support.js"

const USERS = 1000
const CONNECTIONS = 16

/**
 * Every user looked up for the first time through both daemons at the same moment: `CONNECTIONS`
 * workers, each with one dict connection to each daemon, send user `u` to both at once and wait for
 * both replies (one request in flight per connection, like Dovecot's auth workers).
 */
async function raceAll(sockets: readonly [string, string], users: ReadonlyArray<string>): Promise<[Array<DictReply>, Array<DictReply>]> {
  const a: Array<DictReply> = []
  const b: Array<DictReply> = []
  const worker = async (w: number) => {
    const [ca, cb] = await Promise.all([DictClient.connect(sockets[0]), DictClient.connect(sockets[1])])
    try {
      for (let i = w; i < users.length; i += CONNECTIONS) {
        const [ra, rb] = await Promise.all([ca.lookup(users[i]!), cb.lookup(users[i]!)])
        a[i] = ra
        b[i] = rb
      }
    } finally {
      ca.close()
      cb.close()
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)))
  return [a, b]
}

describe.each([
  ["PostgreSQL", freshPostgres],
  ["MariaDB", freshMysql]
] as const)("two daemons on one %s database", (_name, fresh) => {
  it("start together, then 1000 concurrent first logins through both: one row per user, one host per user", async () => {
    const tmp = makeTempDir()
    let db: FreshDatabase | undefined
    const daemons: Array<RunningDaemon> = []
    try {
      db = await fresh()
      const url = db.url
      // test-only: this server's disk makes every commit slow; the race is about ordering, not durability
      if (url.startsWith("postgres")) await query(url, `ALTER DATABASE ${db.name} SET synchronous_commit = off`)
      const sockets = [tmp.join("a.sock"), tmp.join("b.sock")]
      // both start on the empty database at the same moment: both migrate
      daemons.push(...await Promise.all(sockets.map((s) =>
        startDaemon({
          args: ["--store", url, "--dict-socket", s, "--log-level", "warning"],
          waitFor: [s],
          timeoutMs: 60_000
        })
      )))
      const recorded = await query<{ migration_id: number }>(url, "SELECT migration_id FROM doveroute_migrations ORDER BY migration_id")
      expect(recorded.map((r) => Number(r.migration_id))).toEqual(Migrations.MIGRATION_NAMES.map((n) => parseInt(n, 10)))
      await seedBackends(url, 4)
      await query(url, "UPDATE backends SET state = 1 WHERE hostname = 'backend4.test'")

      const users = Array.from({ length: USERS }, (_, i) => `user${String(i).padStart(4, "0")}@example.com`)
      const started = Date.now()
      const [a, b] = await raceAll([sockets[0]!, sockets[1]!], users)
      const elapsed = Date.now() - started

      const bad = [...a, ...b].filter((r) => !r.line.startsWith("O"))
      expect(bad.slice(0, 5), `${bad.length} replies were not O`).toEqual([])
      const differ = users.filter((_, i) => hostOf(a[i]!.line) !== hostOf(b[i]!.line))
      expect(differ.slice(0, 5), `${differ.length} users got different hosts from the two daemons`).toEqual([])

      const rows = await mappings(url)
      expect(rows.size).toBe(USERS)
      const dup = [...rows].filter(([, hosts]) => hosts.length !== 1)
      expect(dup.slice(0, 5)).toEqual([])
      const stored = users.filter((u, i) => rows.get(u)?.[0] !== hostOf(a[i]!.line))
      expect(stored.slice(0, 5), "the stored backend is the one answered").toEqual([])
      expect(new Set([...rows.values()].map(([h]) => h))).not.toContain("backend4.test")
      // placement spread over the three up backends
      expect(new Set([...rows.values()].map(([h]) => h)).size).toBe(3)
      console.log(`${_name}: ${2 * USERS} first lookups through two daemons in ${elapsed} ms`)

      const codes = await Promise.all(daemons.splice(0).map((d) => d.stop()))
      expect(codes).toEqual([0, 0])
    } finally {
      await Promise.all(daemons.map((d) => d.stop()))
      await db?.drop()
      await tmp.cleanup()
    }
  })
})
