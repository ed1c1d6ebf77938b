/**
 * The Lua director's tables, created when missing and checked when present.
 *
 * `backends(id, hostname, hostip, state)` and, per strategy, `user_backend(backend_id, user)` or
 * `user_backend(backend_id, user_hash)` (docs/lua-director.md §1). The column `user` is quoted
 * on every dialect (a reserved word on PostgreSQL: defect 4).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Strategy } from "@doveroute/routing"
import { Effect } from "effect"

/** `backends.tag` and the per-user tags table (migration 0011, TagsTable.ts). */
export const TAG_COLUMN = "tag"
export const USER_TAGS_TABLE = "doveroute_user_tags"

/** The key column of `user_backend` for a strategy. */
export const keyColumn = (strategy: Strategy): "user" | "user_hash" => strategy === "shard" ? "user_hash" : "user"

/** Column names of a table (lower case), empty when the table does not exist. */
export const tableColumns = (table: string): Effect.Effect<ReadonlyArray<string>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      pg: () =>
        sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = ${table}`,
      mysql: () =>
        sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = DATABASE() AND table_name = ${table}`,
      orElse: () => sql<{ name: string }>`SELECT name FROM pragma_table_info(${table})`
    })
    return rows.map((r) => String(r.name ?? (r as Record<string, unknown>)["NAME"]).toLowerCase())
  })

/** Create `backends` as the documented schema, with an auto-increment id per dialect. */
export const createBackends = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    pg: () =>
      sql`CREATE TABLE backends (
        id SERIAL PRIMARY KEY,
        hostname VARCHAR(255) NOT NULL,
        hostip VARCHAR(255),
        state SMALLINT NOT NULL DEFAULT 0)`,
    mysql: () =>
      sql`CREATE TABLE backends (
        id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        hostname VARCHAR(255) NOT NULL,
        hostip VARCHAR(255),
        state SMALLINT NOT NULL DEFAULT 0)`,
    orElse: () =>
      sql`CREATE TABLE backends (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hostname VARCHAR(255) NOT NULL,
        hostip VARCHAR(255),
        state SMALLINT NOT NULL DEFAULT 0)`
  })
})

/** Create `user_backend` for a strategy with the documented primary key `(backend_id, key)`. */
export const createUserBackend = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const type = strategy === "shard" ? sql.literal("INT") : sql.literal("VARCHAR(255)")
    yield* sql`CREATE TABLE user_backend (
      backend_id INT NOT NULL,
      ${col} ${type} NOT NULL,
      PRIMARY KEY (backend_id, ${col}))`
  })

/** Whether an index of that name exists on the table. */
export const indexExists = (table: string, index: string): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      pg: () =>
        sql<{ n: unknown }>`SELECT 1 AS n FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = ${table} AND indexname = ${index}`,
      mysql: () =>
        sql<{ n: unknown }>`SELECT 1 AS n FROM information_schema.statistics
          WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name = ${index} LIMIT 1`,
      orElse: () => sql<{ n: unknown }>`SELECT 1 AS n FROM sqlite_master WHERE type = 'index' AND tbl_name = ${table} AND name = ${index}`
    })
    return rows.length > 0
  })

/**
 * The per-user tags (`doveroute_user_tags`) of `keys`, keyed by each key as asked. On MySQL/MariaDB
 * `user_name` compares in its column's collation (case-insensitive by default, as `user_backend`'s
 * key): the tag stored for `alice@x` is the tag of `Alice@x`, and the row comes back under the
 * stored spelling. A key asked in another spelling than a row found is then looked up once more,
 * each with its own spelling echoed back, so no key loses its tag (the common case, no tagged row
 * among the keys, stays one query).
 */
export const readUserTags = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, string>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = [...new Set(keys)]
    const out = new Map<string, string>()
    if (wanted.length === 0) return out
    const table = sql(USER_TAGS_TABLE)
    const rows = yield* sql<{ k: string; t: string }>`SELECT user_name AS k, tag AS t FROM ${table} WHERE user_name IN ${sql.in(wanted)}`
    const asked = new Set(wanted)
    for (const r of rows) if (asked.has(String(r.k))) out.set(String(r.k), String(r.t))
    const caseFolding = sql.onDialectOrElse({ mysql: () => true, orElse: () => false })
    const missing = wanted.filter((k) => !out.has(k))
    if (!caseFolding || rows.length === 0 || missing.length === 0) return out
    const echoed = yield* sql<{ k: string; t: string }>`${
      sql.join(" UNION ALL ", false)(missing.map((k) => sql`SELECT ${k} AS k, tag AS t FROM ${table} WHERE user_name = ${k}`))
    }`
    for (const r of echoed) out.set(String(r.k), String(r.t))
    return out
  })
