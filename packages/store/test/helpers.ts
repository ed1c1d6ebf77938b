// Fresh databases for the store tests on the machine's servers (127.0.0.1:5432 and :3306, see
// @doveroute/testkit Databases), each dropped after its test:
// - MariaDB: a fresh database per test (CREATE DATABASE is cheap there);
// - PostgreSQL: one fresh database per test file and a fresh schema per test in it, reached through
//   the URL's `options=-c search_path=<schema>` (CREATE DATABASE costs about a second on this
//   server; a schema is as isolated for doveroute, whose statements all follow the search path);
// - SQLite: a new file.
import { freshMysql, freshPostgres, freshSqlite, type FreshDatabase } from "@doveroute/testkit"
import { Effect, Logger, LogLevel } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

export type StoreKind = "sqlite" | "postgres" | "mysql"
export const KINDS: ReadonlyArray<StoreKind> = ["sqlite", "postgres", "mysql"]

interface PgClientLike {
  connect(): Promise<void>
  query(text: string): Promise<unknown>
  end(): Promise<void>
}
const pg = createRequire(import.meta.url)("pg") as { Client: new(options: object) => PgClientLike }

let fileDatabase: Promise<FreshDatabase> | undefined

/** Call at the top of a test file that uses PostgreSQL: drops the file's database after its tests. */
export const dropFileDatabaseAfterAll = () =>
  afterAll(async () => {
    const db = fileDatabase
    fileDatabase = undefined
    if (db !== undefined) await (await db).drop()
  })

const pgExec = async (url: string, text: string) => {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  await c.connect()
  try {
    await c.query(text)
  } finally {
    await c.end()
  }
}

/** A fresh schema in this file's fresh PostgreSQL database; the URL selects it as search path. */
export async function freshPostgresSchema(): Promise<FreshDatabase> {
  const db = await (fileDatabase ??= freshPostgres())
  const name = `s_${randomBytes(5).toString("hex")}`
  await pgExec(db.url, `CREATE SCHEMA ${name}`)
  return {
    name,
    url: `${db.url}?options=${encodeURIComponent(`-c search_path=${name}`)}`,
    drop: () => pgExec(db.url, `DROP SCHEMA IF EXISTS ${name} CASCADE`)
  }
}

/** A fresh, empty database of each kind. */
export const freshDatabase = (kind: StoreKind): Promise<FreshDatabase> =>
  kind === "postgres"
    ? freshPostgresSchema()
    : kind === "mysql"
    ? freshMysql()
    : freshSqlite(fs.mkdtempSync(path.join(os.tmpdir(), "dvr-store-")))

/** Run `f` with the URL of a fresh database of `kind` (logs below warning muted); dropped afterwards. */
export const withDatabase = <A, E, R>(kind: StoreKind, f: (url: string) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Effect.promise(() => freshDatabase(kind)),
    (db) => f(db.url).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)),
    (db) => Effect.promise(() => db.drop())
  )
