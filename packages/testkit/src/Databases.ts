/**
 * Fresh per-test databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust) and
 * MariaDB (127.0.0.1:3306, root, no password), and SQLite files. Each returns a store URL for
 * doveroute (`--store URL`) and a `drop()` that removes the database again.
 */
import { randomBytes } from "node:crypto"
import { rm } from "node:fs/promises"
import path from "node:path"
import { createConnection } from "mysql2/promise"
import { runCommand } from "./Exec.js"

/** A fresh, empty database: doveroute store URL, database name, and `drop()` (idempotent). */
export interface FreshDatabase {
  readonly url: string
  readonly name: string
  drop(): Promise<void>
}

/** Connection settings; env overrides: DVR_PG_HOST/DVR_PG_PORT, DVR_MYSQL_HOST/DVR_MYSQL_PORT. */
export const PG = { host: process.env["DVR_PG_HOST"] ?? "127.0.0.1", port: Number(process.env["DVR_PG_PORT"] ?? 5432), user: "postgres" } as const
export const MYSQL = { host: process.env["DVR_MYSQL_HOST"] ?? "127.0.0.1", port: Number(process.env["DVR_MYSQL_PORT"] ?? 3306), user: "root" } as const

/** `dvr_` + 10 random lowercase hex characters. */
export const randomDbName = (): string => `dvr_${randomBytes(5).toString("hex")}`

/** A database whose `drop` runs at most once (later calls do nothing). */
const dropOnce = (name: string, url: string, drop: () => Promise<void>): FreshDatabase => {
  let dropped = false
  return {
    name,
    url,
    drop: async () => {
      if (dropped) return
      dropped = true
      await drop()
    }
  }
}

async function psql(sql: string): Promise<void> {
  const r = await runCommand("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG.host, "-p", String(PG.port), "-U", PG.user, "-d", "postgres", "-c", sql], { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`psql failed (${sql}): ${r.stderr}${r.stdout}\n(is PostgreSQL up on ${PG.host}:${PG.port}? run scripts/install-deps.sh)`)
}

/**
 * Creates database `dvr_<random>` on PostgreSQL via `psql`; URL
 * `postgres://postgres@127.0.0.1:5432/dvr_x`. `drop()` uses `DROP DATABASE … WITH (FORCE)`.
 */
export async function freshPostgres(): Promise<FreshDatabase> {
  const name = randomDbName()
  await psql(`CREATE DATABASE ${name}`)
  return dropOnce(name, `postgres://${PG.user}@${PG.host}:${PG.port}/${name}`, () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
}

async function mysqlExec(sql: string): Promise<void> {
  let conn
  try {
    conn = await createConnection({ host: MYSQL.host, port: MYSQL.port, user: MYSQL.user, connectTimeout: 10_000 })
  } catch (e) {
    throw new Error(`cannot connect to MariaDB on ${MYSQL.host}:${MYSQL.port} as root: ${e instanceof Error ? e.message : String(e)} (run scripts/install-deps.sh)`)
  }
  try {
    await conn.query(sql)
  } finally {
    await conn.end().catch(() => undefined)
  }
}

/** Creates database `dvr_<random>` on MariaDB via mysql2; URL `mysql://root@127.0.0.1:3306/dvr_x`. */
export async function freshMysql(): Promise<FreshDatabase> {
  const name = randomDbName()
  await mysqlExec(`CREATE DATABASE \`${name}\``)
  return dropOnce(name, `mysql://${MYSQL.user}@${MYSQL.host}:${MYSQL.port}/${name}`, async () => {
    // MariaDB can answer errno 39 ("Directory not empty") while a connection of the test that
    // just ended is still closing its tables; the drop is retried a few times, then it fails
    for (let attempt = 1; ; attempt++) {
      try {
        await mysqlExec(`DROP DATABASE IF EXISTS \`${name}\``)
        return
      } catch (e) {
        if (attempt >= 5 || !/errno: 39|Directory not empty/.test(String(e))) throw e
        await new Promise((r) => setTimeout(r, 200 * attempt))
      }
    }
  })
}

/** A new SQLite file name in `dir` (not created); URL `sqlite:/dir/dvr_x.db`; drop removes it (+ -wal/-shm). */
export async function freshSqlite(dir: string): Promise<FreshDatabase> {
  const name = randomDbName()
  const file = path.join(dir, `${name}.db`)
  return {
    name,
    url: `sqlite:${file}`,
    drop: async () => {
      await Promise.all(["", "-wal", "-shm", "-journal"].map((s) => rm(file + s, { force: true })))
    }
  }
}
