/**
 * doveroute's migrations over the Lua director's tables. Every step is additive: a database made by
 * the scripts keeps its rows, and a user stays on the backend they were on.
 *
 * - `0001_lua_director_tables`: create `backends` / `user_backend` when missing; refuse a
 *   `user_backend` of the other strategy; add `backends.state` when missing (the documented shard
 *   schema lacks it: defect 8).
 * - `0002_unique_route_key`: one row per user (or shard), so first assignment is race-safe.
 * - `0003_backend_hostname_index`: an index on `backends.hostname` (admin lookups by name).
 * - `0004`–`0006`: operator schema (weight, health columns, routes version triggers, move holds):
 *   see Operations.ts.
 * - `0007_change_feed`: `doveroute_changes` and the triggers that fill it (the daemons' routing
 *   tables follow it): see ChangeFeed.ts.
 * - `0008_backend_check_port`: `backends.check_port INT NULL`, the per-backend health-check port
 *   (CheckPort.ts).
 * - `0009_daemon_ring`: `doveroute_daemons`, one heartbeat row per daemon: see Ring.ts.
 * - `0010_change_feed_ids`: on PostgreSQL `doveroute_changes.id` always comes from its sequence,
 *   even when a row is written by hand with an explicit id: see ChangeFeed.ts.
 * - `0011_tags`: `backends.tag` (nullable), `doveroute_user_tags` and the feed trigger watching the
 *   tag: see TagsTable.ts.
 *
 * Duplicate rows (one user on several backends, possible with the scripts' documented key) are
 * **reported, not fixed**: {@link migrate} checks for them before any step and fails listing them,
 * leaving the database exactly as it was. The one exception is a row naming a deleted backend
 * beside another row of the same key (what the scripts leave when a backend was deleted by hand:
 * they place the user anew and add a row): that row is removed and logged.
 *
 * Migrations run through `@effect/sql` `Migrator` with the table `doveroute_migrations`, under a
 * per-database lock so that processes starting together (two daemons, `serve` + `migrate`) do not
 * fail and do not return before the schema is complete; every step is idempotent.
 *
 * @since 0.1.0
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Strategy } from "@doveroute/routing"
import { Clock, Effect } from "effect"
import { createBackends, createUserBackend, indexExists, keyColumn, tableColumns } from "./Schema.js"
import { settleJournal } from "./Journal.js"
import { CHECK_PORT_MIGRATION } from "./CheckPort.js"
import { OPERATION_MIGRATIONS } from "./Operations.js"
import { FEED_ID_MIGRATION, m0007 } from "./ChangeFeed.js"
import { RING_MIGRATIONS } from "./Ring.js"
import { TAGS_MIGRATION } from "./TagsTable.js"
import { SchemaError } from "./SchemaError.js"

export { SchemaError } from "./SchemaError.js"

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

/** A key with more than one `user_backend` row, and the backends those rows name. */
export interface DuplicateKey {
  readonly key: string | number
  readonly backendIds: ReadonlyArray<number>
  /** Those of `backendIds` that name no `backends` row (a backend deleted by hand). */
  readonly deletedBackendIds: ReadonlyArray<number>
}

/**
 * Key values with more than one row (at most `limit`), with their backend ids. `conflictsOnly`:
 * only keys with more than one row naming an existing backend (rows naming deleted backends beside
 * one live row are resolved by {@link removeDanglingDuplicates}).
 */
export const findDuplicates = (strategy: Strategy, limit = 20, conflictsOnly = false) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const lim = sql.literal(String(Math.max(1, Math.floor(limit))))
    const keys = conflictsOnly
      ? yield* sql<{ k: string | number }>`SELECT ub.${col} AS k FROM user_backend ub JOIN backends b ON b.id = ub.backend_id
          GROUP BY ub.${col} HAVING COUNT(*) > 1 ORDER BY ub.${col} LIMIT ${lim}`
      : yield* sql<{ k: string | number }>`SELECT ${col} AS k FROM user_backend
          GROUP BY ${col} HAVING COUNT(*) > 1 ORDER BY ${col} LIMIT ${lim}`
    if (keys.length === 0) return [] as ReadonlyArray<DuplicateKey>
    const rows = yield* sql<{ k: string | number; b: number | string; live: number | string | null }>`SELECT ub.${col} AS k,
      ub.backend_id AS b, b.id AS live FROM user_backend ub LEFT JOIN backends b ON b.id = ub.backend_id
      WHERE ${sql.in(`ub.${keyColumn(strategy)}`, keys.map((r) => r.k))} ORDER BY ub.${col}, ub.backend_id`
    const byKey = new Map<string, { key: string | number; backendIds: Array<number>; deletedBackendIds: Array<number> }>()
    for (const r of keys) byKey.set(String(r.k), { key: strategy === "shard" ? Number(r.k) : r.k, backendIds: [], deletedBackendIds: [] })
    for (const r of rows) {
      const d = byKey.get(String(r.k))
      d?.backendIds.push(Number(r.b))
      if (r.live === null || r.live === undefined) d?.deletedBackendIds.push(Number(r.b))
    }
    return [...byKey.values()] as ReadonlyArray<DuplicateKey>
  })

const DUPLICATES_SHOWN = 20

/** The operator message for duplicate rows. */
export const duplicatesMessage = (strategy: Strategy, dups: ReadonlyArray<DuplicateKey>): string =>
  `user_backend holds more than one row for ${dups.length}${dups.length >= DUPLICATES_SHOWN ? "+" : ""} ` +
  `${strategy === "shard" ? "shard(s)" : "user(s)"}: ` +
  dups.map((d) =>
    `${JSON.stringify(d.key)} (backends ${
      d.backendIds.map((b) => (d.deletedBackendIds.includes(b) ? `${b} (deleted)` : String(b))).join(", ")
    })`
  ).join(", ") +
  `. Nothing was changed. Decide which backend each keeps (delete the other rows), then run "doveroute migrate" again`

/** A row {@link removeDanglingDuplicates} deleted. */
export interface RemovedRow {
  readonly key: string | number
  readonly backendId: number
}

/**
 * Delete the rows that name a deleted backend from keys that have more than one row, and log
 * each. This is what the published scripts leave when a user's backend was deleted by hand: their
 * lookup joins `backends`, does not see the old row and adds a second one. A key then keeps its
 * one live row; a key whose rows all name deleted backends keeps none (its next login places it
 * anew, as the scripts did). Runs only when no key has two live rows ({@link migrate} refuses
 * those first), in one transaction.
 */
export const removeDanglingDuplicates = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = keyColumn(strategy)
    const col = sql(name)
    const rows = yield* sql<{ k: string | number; b: number | string }>`SELECT ub.${col} AS k, ub.backend_id AS b
      FROM user_backend ub
      WHERE NOT EXISTS (SELECT 1 FROM backends b WHERE b.id = ub.backend_id)
        AND ub.${col} IN (SELECT d.${col} FROM user_backend d GROUP BY d.${col} HAVING COUNT(*) > 1)
      ORDER BY ub.${col}, ub.backend_id`
    if (rows.length === 0) return [] as ReadonlyArray<RemovedRow>
    const removed: ReadonlyArray<RemovedRow> = rows.map((r) => ({ key: strategy === "shard" ? Number(r.k) : r.k, backendId: Number(r.b) }))
    yield* sql.withTransaction(
      Effect.forEach(removed, (r) =>
        sql`DELETE FROM user_backend WHERE ${col} = ${r.key} AND backend_id = ${r.backendId}
          AND NOT EXISTS (SELECT 1 FROM backends WHERE id = ${r.backendId})`, { discard: true })
    )
    yield* Effect.logWarning("removed rows naming deleted backends from users (or shards) that had another row").pipe(
      Effect.annotateLogs({
        removed: removed.length,
        rows: removed.slice(0, 50).map((r) => `${JSON.stringify(r.key)}->${r.backendId}`).join(",") +
          (removed.length > 50 ? ",…" : "")
      })
    )
    return removed
  })

/**
 * Fails with `Duplicates` when `user_backend` (of this strategy) holds several rows for one key.
 * Runs before any migration step, so a refused database is left exactly as it was.
 */
export const assertNoDuplicates = (strategy: Strategy) =>
  Effect.gen(function*() {
    const exists = yield* checkVariant(strategy)
    if (!exists) return
    // with migration 0002's unique index no key can have two rows: skip the scan of every row
    // (it ran at every admin command and daemon start)
    if (yield* indexExists("user_backend", KEY_INDEX)) return
    const dups = yield* findDuplicates(strategy, DUPLICATES_SHOWN)
    if (dups.length > 0) return yield* new SchemaError({ reason: "Duplicates", detail: duplicatesMessage(strategy, dups) })
  })

/**
 * Before any step: refuse true conflicts (a key with two rows naming existing backends), listing
 * them, with nothing changed; otherwise remove the rows naming deleted backends beside another row
 * ({@link removeDanglingDuplicates}), then check that no key has two rows.
 */
const resolveDuplicates = (strategy: Strategy) =>
  Effect.gen(function*() {
    const exists = yield* checkVariant(strategy)
    if (!exists) return
    const conflicts = yield* findDuplicates(strategy, DUPLICATES_SHOWN, true)
    if (conflicts.length > 0) {
      return yield* new SchemaError({ reason: "Duplicates", detail: duplicatesMessage(strategy, conflicts) })
    }
    yield* removeDanglingDuplicates(strategy)
    yield* assertNoDuplicates(strategy)
  })

/** Name of the unique index migration 0002 adds on the key column. */
export const KEY_INDEX = "doveroute_user_backend_key"

// Every step is idempotent: on MySQL DDL commits implicitly, so a failed run may have to repeat steps.
const m0002 = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* assertNoDuplicates(strategy)
    if (yield* indexExists("user_backend", KEY_INDEX)) return
    const col = sql(keyColumn(strategy))
    yield* sql`CREATE UNIQUE INDEX ${sql(KEY_INDEX)} ON user_backend (${col})`
  })

const m0003 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if (yield* indexExists("backends", "doveroute_backends_hostname")) return
  yield* sql`CREATE INDEX doveroute_backends_hostname ON backends (hostname)`
})

const MIGRATIONS = (strategy: Strategy) => ({
  "0001_lua_director_tables": m0001(strategy),
  "0002_unique_route_key": m0002(strategy),
  "0003_backend_hostname_index": m0003,
  ...OPERATION_MIGRATIONS,
  "0007_change_feed": m0007(strategy),
  ...CHECK_PORT_MIGRATION,
  ...RING_MIGRATIONS,
  ...FEED_ID_MIGRATION,
  ...TAGS_MIGRATION(strategy)
})

/** Every migration as `NNNN_name`, in order. */
export const MIGRATION_NAMES: ReadonlyArray<string> = Object.keys(MIGRATIONS("mapping")).sort()

/** The id of the newest migration. */
export const LATEST_MIGRATION = Math.max(...MIGRATION_NAMES.map((k) => parseInt(k, 10)))

/** The migration loader for a strategy. */
export const loader = (strategy: Strategy) => Migrator.fromRecord(MIGRATIONS(strategy))

/** The migrations table doveroute uses (beside the scripts' tables). */
export const MIGRATIONS_TABLE = "doveroute_migrations"

const runMigrator = Migrator.make({})

/** One Migrator run, its failures turned into {@link SchemaError}. */
const migrateOnce = (strategy: Strategy) =>
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

/** The newest migration id recorded in the database, 0 when there is none (or no table yet). */
export const latestRecorded = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const cols = yield* tableColumns(MIGRATIONS_TABLE)
  if (cols.length === 0) return 0
  const rows = yield* sql<{ m: number | string | null }>`SELECT MAX(migration_id) AS m FROM ${sql(MIGRATIONS_TABLE)}`
  return Number(rows[0]?.m ?? 0)
})

/** PostgreSQL advisory lock key for migrations ("dove"); advisory locks are per database. */
export const PG_LOCK_KEY = 0x646f7665
/** How long a MySQL migration waits for another one to finish. */
export const LOCK_WAIT_SECONDS = 60

/**
 * Run `effect` while holding the database's migration lock, so that processes starting together
 * migrate one after the other:
 * - PostgreSQL: one transaction (DDL is transactional) that first takes `pg_advisory_xact_lock`
 *   and creates the migrations table (a bare concurrent `CREATE TABLE` races on `pg_type`);
 *   the Migrator's own transaction becomes a savepoint in it; any failure rolls everything back.
 * - MySQL/MariaDB: `GET_LOCK` (named after the database) on a reserved connection. DDL commits
 *   implicitly, so after a failure the migration rows this run recorded are deleted again (every
 *   step is idempotent and runs again next time).
 * - SQLite: the file's write lock; a run that finds another one in progress retries ({@link migrate}).
 */
const withMigrationLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.onDialectOrElse({
      pg: () =>
        sql.withTransaction(
          sql`SELECT pg_advisory_xact_lock(${PG_LOCK_KEY})`.pipe(
            Effect.zipRight(sql`CREATE TABLE IF NOT EXISTS ${sql(MIGRATIONS_TABLE)} (
              migration_id integer primary key,
              created_at timestamp with time zone not null default now(),
              name text not null)`),
            Effect.zipRight(effect)
          )
        ),
      mysql: () =>
        Effect.scoped(
          Effect.gen(function*() {
            const conn = yield* sql.reserve
            const lockName = "CONCAT('doveroute:', MD5(DATABASE()))"
            const got = yield* conn.executeUnprepared(`SELECT GET_LOCK(${lockName}, ${LOCK_WAIT_SECONDS}) AS got`, [], undefined)
            if (Number((got[0] as { got?: unknown } | undefined)?.got) !== 1) {
              return yield* new SchemaError({
                reason: "Migration",
                detail: `another doveroute migration has held the migration lock for ${LOCK_WAIT_SECONDS} s; try again`
              })
            }
            const before = yield* latestRecorded
            return yield* effect.pipe(
              Effect.onError(() =>
                sql`DELETE FROM ${sql(MIGRATIONS_TABLE)} WHERE migration_id > ${before}`.pipe(
                  Effect.whenEffect(Effect.map(tableColumns(MIGRATIONS_TABLE), (c) => c.length > 0)),
                  Effect.ignore
                )
              ),
              Effect.ensuring(Effect.ignore(conn.executeUnprepared(`SELECT RELEASE_LOCK(${lockName})`, [], undefined)))
            )
          })
        ),
      orElse: () => effect
    })
  })

/** How long {@link migrate} waits for a migration run by another process (SQLite). */
const CONCURRENT_WAIT_MS = 30_000

/**
 * Apply pending migrations; returns the ones applied as `[id, name]`. Safe when several processes
 * start at once (see `withMigrationLock`): each returns only after every migration is recorded.
 * A database with duplicate rows is refused before anything is changed (rows naming deleted
 * backends beside a live row excepted: {@link removeDanglingDuplicates}). Then the SQLite journal
 * ({@link settleJournal}): WAL for a store these migrations created, and a file an earlier version
 * left in WAL goes back to the rollback journal.
 * Fails with {@link SchemaError} (`Duplicates`, `WrongStrategy`, …) with an operator-readable message.
 */
export const migrate = (strategy: Strategy) =>
  Effect.gen(function*() {
    const applied: Array<readonly [number, string]> = []
    const deadline = (yield* Clock.currentTimeMillis) + CONCURRENT_WAIT_MS
    // no backends table yet: this store is doveroute's own (no Lua passdb has used it)
    const created = (yield* tableColumns("backends")).length === 0
    while (true) {
      const done = yield* withMigrationLock(
        Effect.gen(function*() {
          yield* resolveDuplicates(strategy)
          applied.push(...(yield* migrateOnce(strategy)))
          return (yield* latestRecorded) >= LATEST_MIGRATION
        })
      )
      if (done) {
        yield* settleJournal(created)
        return applied as ReadonlyArray<readonly [number, string]>
      }
      // the Migrator reports "locked" (another process is migrating) as success with nothing applied
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* new SchemaError({
          reason: "Migration",
          detail: `migrations are still incomplete after ${CONCURRENT_WAIT_MS / 1000} s (another process migrating?)`
        })
      }
      yield* Effect.sleep("100 millis")
    }
  })

/**
 * For read-only use (admin commands that only look): fails with `NeedsMigration` unless every
 * migration is recorded, and with `WrongStrategy` for the other strategy's table. Changes nothing.
 */
export const assertMigrated = (strategy: Strategy) =>
  Effect.gen(function*() {
    yield* checkVariant(strategy)
    const recorded = yield* latestRecorded
    if (recorded < LATEST_MIGRATION) {
      return yield* new SchemaError({
        reason: "NeedsMigration",
        detail: recorded === 0
          ? "the database has no doveroute schema yet (no doveroute_migrations table); run doveroute migrate"
          : `the database needs migration (schema ${recorded}, this doveroute needs ${LATEST_MIGRATION}); run doveroute migrate`
      })
    }
  })

const describe = (d: unknown): string => {
  if (d instanceof Migrator.MigrationError) {
    const c = d.cause as { message?: unknown } | undefined
    return `${d.message}${typeof c?.message === "string" ? ": " + c.message : ""}`
  }
  return d instanceof Error ? d.message : String(d)
}
