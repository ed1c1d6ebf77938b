/**
 * doveroute's migrations over the Lua director's tables. Every step is additive: a database made by
 * the scripts keeps its rows, and a user stays on the backend they were on.
 *
 * - `0001_lua_director_tables`: create `backends` / `user_backend` when missing; refuse a
 *   `user_backend` of the other strategy; add `backends.state` when missing (the documented shard
 *   schema lacks it: defect 8).
 * - `0002_unique_route_key`: one row per user (or shard), so first assignment is race-safe.
 *   Duplicate rows are **reported, not fixed**: the migration fails listing them.
 * - `0003_backend_hostname_index`: an index on `backends.hostname` (admin lookups by name).
 *
 * Migrations run through `@effect/sql` `Migrator` with the table `doveroute_migrations`.
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Strategy } from "@doveroute/routing"
import { Data, Effect } from "effect"
import { createBackends, createUserBackend, keyColumn, tableColumns } from "./Schema.js"

/** The schema cannot be used as it is; the message says what to do. */
export class SchemaError extends Data.TaggedError("SchemaError")<{
  readonly reason: "WrongStrategy" | "Duplicates" | "MissingColumn" | "Migration"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

const other = (s: Strategy): Strategy => (s === "shard" ? "mapping" : "shard")

/** Fails with `WrongStrategy` when `user_backend` exists without the strategy's key column. */
export const checkVariant = (strategy: Strategy) =>
  Effect.gen(function*() {
    const cols = yield* tableColumns("user_backend")
    if (cols.length === 0) return false
    const want = keyColumn(strategy)
    if (!cols.includes(want)) {
      const otherCol = keyColumn(other(strategy))
      return yield* new SchemaError({
        reason: "WrongStrategy",
        detail: cols.includes(otherCol)
          ? `user_backend has column ${otherCol} (strategy ${other(strategy)}) but strategy is ${strategy}; ` +
            `use --strategy ${other(strategy)} or a separate database`
          : `user_backend exists without a ${want} column (columns: ${cols.join(", ")})`
      })
    }
    return true
  })

const m0001 = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const backendCols = yield* tableColumns("backends")
    if (backendCols.length === 0) yield* createBackends
    else {
      for (const c of ["id", "hostname", "hostip"]) {
        if (!backendCols.includes(c)) {
          return yield* new SchemaError({ reason: "MissingColumn", detail: `backends has no ${c} column` })
        }
      }
      if (!backendCols.includes("state")) {
        yield* sql`ALTER TABLE backends ADD COLUMN state SMALLINT NOT NULL DEFAULT 0`
      }
    }
    const exists = yield* checkVariant(strategy)
    if (!exists) yield* createUserBackend(strategy)
  })

/** Key values that have more than one row, at most `limit`. */
export const findDuplicates = (strategy: Strategy, limit = 20) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const rows = yield* sql<{ k: string | number; n: number | string }>`SELECT ${col} AS k, COUNT(*) AS n
      FROM user_backend GROUP BY ${col} HAVING COUNT(*) > 1 ORDER BY ${col} LIMIT ${limit}`
    return rows.map((r) => ({ key: r.k, rows: Number(r.n) }))
  })

const m0002 = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dups = yield* findDuplicates(strategy)
    if (dups.length > 0) {
      return yield* new SchemaError({
        reason: "Duplicates",
        detail: `user_backend holds more than one row for ${dups.length}${dups.length === 20 ? "+" : ""} ` +
          `${strategy === "shard" ? "shard(s)" : "user(s)"}: ` +
          dups.map((d) => `${d.key} (${d.rows} rows)`).join(", ") +
          `; decide which backend each keeps (delete the other rows), then run "doveroute migrate" again`
      })
    }
    const col = sql(keyColumn(strategy))
    yield* sql`CREATE UNIQUE INDEX doveroute_user_backend_key ON user_backend (${col})`
  })

const m0003 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX doveroute_backends_hostname ON backends (hostname)`
})

/** The migration loader for a strategy. */
export const loader = (strategy: Strategy) =>
  Migrator.fromRecord({
    "0001_lua_director_tables": m0001(strategy),
    "0002_unique_route_key": m0002(strategy),
    "0003_backend_hostname_index": m0003
  })

/** The migrations table doveroute uses (beside the scripts' tables). */
export const MIGRATIONS_TABLE = "doveroute_migrations"

const runMigrator = Migrator.make({})

/**
 * Apply pending migrations; returns the ones applied as `[id, name]`.
 * Fails with {@link SchemaError} (`Duplicates`, `WrongStrategy`, …) with an operator-readable message.
 */
export const migrate = (strategy: Strategy) =>
  runMigrator({ loader: loader(strategy), table: MIGRATIONS_TABLE }).pipe(
    // Migrator turns a failing migration into a defect (MigrationError with our error as cause)
    Effect.catchAllDefect((d) =>
      Effect.fail(
        d instanceof Migrator.MigrationError && d.cause instanceof SchemaError
          ? d.cause
          : new SchemaError({ reason: "Migration", detail: `migration failed: ${describe(d)}` })
      )
    ),
    Effect.catchTag("MigrationError", (e) =>
      Effect.fail(new SchemaError({ reason: "Migration", detail: `migration failed: ${e.message}` }))
    )
  )

const describe = (d: unknown): string => {
  if (d instanceof Migrator.MigrationError) {
    const c = d.cause as { message?: unknown } | undefined
    return `${d.message}${typeof c?.message === "string" ? ": " + c.message : ""}`
  }
  return d instanceof Error ? d.message : String(d)
}
