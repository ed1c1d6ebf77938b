// `doveroute migrate` as separate processes:
// - two processes started at once on an empty SQLite file both succeed, and each migration is
//   applied by exactly one of them (for PostgreSQL and MariaDB, two `serve` processes starting at
//   once on an empty database are in store-multi-daemon.test.ts; in-process races on separate pools
//   for all three are in packages/store/test/dialects.test.ts);
// - on a database of the Lua scripts holding duplicate rows it fails with a message listing them and
//   changes nothing (PostgreSQL, MariaDB);
// - `--journal wal|delete` switches a SQLite file's journal mode and reports it; other stores refuse it.
import { describe, expect, it } from "vitest"
import { freshMysql, freshPostgres, freshSqlite, makeTempDir, runCli, type FreshDatabase } from "@doveroute/testkit"
import { Migrations } from "@doveroute/store"
import { query } from "./store-support.js"

const KINDS = [
  ["SQLite", (dir: string) => freshSqlite(dir)],
  ["PostgreSQL", () => freshPostgres()],
  ["MariaDB", () => freshMysql()]
] as const

describe.concurrent.each(KINDS.slice(0, 1))("doveroute migrate on %s", (name, fresh) => {
  it("two processes at once on an empty database: both exit 0, every migration applied once", async () => {
    const tmp = makeTempDir()
    let db: FreshDatabase | undefined
    try {
      db = await fresh(tmp.path)
      const runs = await Promise.all([0, 1].map(() => runCli(["migrate", "--store", db!.url, "--json"], { timeoutMs: 100_000 })))
      for (const r of runs) expect(r.code, `${r.stdout}${r.stderr}`).toBe(0)
      const applied = runs.flatMap((r) => (JSON.parse(r.stdout.trim().split("\n").pop()!) as { applied: Array<string> }).applied).sort()
      expect(applied).toEqual(Migrations.MIGRATION_NAMES)
      if (name !== "SQLite") {
        const rows = await query<{ migration_id: number }>(db.url, "SELECT migration_id FROM doveroute_migrations ORDER BY migration_id")
        expect(rows.map((r) => Number(r.migration_id))).toEqual(Migrations.MIGRATION_NAMES.map((n) => parseInt(n, 10)))
      }
    } finally {
      await db?.drop()
      await tmp.cleanup()
    }
  })
})

describe("doveroute migrate --journal", () => {
  it("SQLite: --journal wal, then --journal delete, each reported; PostgreSQL: refused (exit 1)", async () => {
    const tmp = makeTempDir()
    let db: FreshDatabase | undefined
    let pg: FreshDatabase | undefined
    try {
      db = await freshSqlite(tmp.path)
      const run = async (args: ReadonlyArray<string>) => {
        const r = await runCli(["migrate", "--store", db!.url, "--json", ...args], { timeoutMs: 100_000 })
        expect(r.code, `${r.stdout}${r.stderr}`).toBe(0)
        return JSON.parse(r.stdout.trim().split("\n").pop()!) as { journal_mode?: string }
      }
      // a store doveroute creates starts in WAL, recorded as chosen
      expect((await run([])).journal_mode).toBe("wal")
      expect((await run(["--journal", "delete"])).journal_mode).toBe("delete")
      expect((await run([])).journal_mode, "the rollback journal is kept once chosen").toBe("delete")
      expect((await run(["--journal", "wal"])).journal_mode).toBe("wal")
      expect((await run([])).journal_mode, "a chosen WAL is kept").toBe("wal")
      expect((await run(["--journal", "delete"])).journal_mode).toBe("delete")
      const bad = await runCli(["migrate", "--store", db.url, "--journal", "memory"], { timeoutMs: 100_000 })
      expect(bad.code).toBe(2)
      pg = await freshPostgres()
      const r = await runCli(["migrate", "--store", pg.url, "--journal", "wal"], { timeoutMs: 100_000 })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("SQLite stores only")
    } finally {
      await db?.drop()
      await pg?.drop()
      await tmp.cleanup()
    }
  })
})

describe.concurrent.each(KINDS.slice(1))("doveroute migrate on a %s database of the Lua scripts with duplicates", (name, fresh) => {
  it("fails with exit 1 and a message listing the duplicates; the data is untouched", async () => {
    let db: FreshDatabase | undefined
    try {
      db = await fresh("")
      const user = name === "PostgreSQL" ? `"user"` : "`user`"
      await query(db.url, "CREATE TABLE backends (id INT NOT NULL PRIMARY KEY, hostname VARCHAR(255) NOT NULL UNIQUE, hostip VARCHAR(255), state SMALLINT NOT NULL DEFAULT 0)")
      await query(db.url, `CREATE TABLE user_backend (backend_id INT NOT NULL, ${user} VARCHAR(255) NOT NULL, PRIMARY KEY (backend_id, ${user}))`)
      await query(db.url, "INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'backend1.test', '127.0.0.2', 0), (2, 'backend2.test', NULL, 0)")
      await query(db.url, `INSERT INTO user_backend (backend_id, ${user}) VALUES (1, 'alice'), (2, 'alice'), (2, 'bob'), (1, 'carol'), (2, 'carol')`)
      const snapshot = () =>
        Promise.all([
          query(db!.url, `SELECT backend_id, ${user} AS u FROM user_backend ORDER BY ${user}, backend_id`),
          query(db!.url, "SELECT * FROM backends ORDER BY id"),
          query(db!.url, name === "PostgreSQL"
            ? "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            : "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1")
        ]).then((x) => JSON.stringify(x))
      const before = await snapshot()

      const r = await runCli(["migrate", "--store", db.url], { timeoutMs: 100_000 })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(
        `doveroute: error: user_backend holds more than one row for 2 user(s): "alice" (backends 1, 2), "carol" (backends 1, 2). ` +
          `Nothing was changed.`
      )
      expect(await snapshot()).toBe(before)
    } finally {
      await db?.drop()
    }
  })
})
