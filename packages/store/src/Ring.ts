/**
 * The ring view: every daemon sharing a store records that it is alive in `doveroute_daemons`, one
 * row per daemon (host, pid): version, start time, last heartbeat and its interval, the last store
 * error it met and the size of its in-memory lookup table. `doveroute status` lists the rows and
 * marks a daemon not seen for three intervals. A daemon removes its row when it stops cleanly; a
 * row not refreshed for {@link FORGET_AFTER_MS} is removed when a daemon starts.
 *
 * The migration is additive and idempotent; its id is {@link RING_MIGRATION_ID} (renumbering it is
 * that one edit).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { classifySqlError } from "./Classify.js"
import { tableColumns } from "./Schema.js"

export const DAEMONS_TABLE = "doveroute_daemons"

/** The id of the ring migration in Migrations.ts's record. */
export const RING_MIGRATION_ID = "0009_daemon_ring"

/** Rows of daemons not seen for a week are removed. */
export const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000

const mRing = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* tableColumns(DAEMONS_TABLE)).length > 0) return
  yield* sql`CREATE TABLE ${sql(DAEMONS_TABLE)} (
    host VARCHAR(255) NOT NULL,
    pid INT NOT NULL,
    version VARCHAR(64) NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    last_store_error VARCHAR(1000) NULL,
    last_store_error_at BIGINT NULL,
    table_size BIGINT NULL,
    PRIMARY KEY (host, pid))`
})

/** The ring migration, keyed like Migrations.ts's record. */
export const RING_MIGRATIONS = { [RING_MIGRATION_ID]: mRing } as const

/** What one heartbeat records (times in epoch ms). */
export interface DaemonBeat {
  readonly host: string
  readonly pid: number
  readonly version: string
  readonly startedAt: number
  readonly lastSeen: number
  readonly intervalMs: number
  readonly lastStoreError: string | null
  readonly lastStoreErrorAt: number | null
  readonly tableSize: number | null
}

/** A daemon as `status` shows it: `stale` when not seen for three intervals. */
export interface DaemonRow extends DaemonBeat {
  readonly stale: boolean
  readonly ageMs: number
}

const wrap = (what: string) => <A, R>(eff: Effect.Effect<A, SqlError, R>) => Effect.mapError(eff, classifySqlError(what))

/** Whether the table exists (a store not migrated yet has none). */
export const ringAvailable = Effect.map(tableColumns(DAEMONS_TABLE), (cols) => cols.length > 0).pipe(wrap("check daemons table"))

const UPDATED = ["version", "started_at", "last_seen", "interval_ms", "last_store_error", "last_store_error_at", "table_size"] as const

/**
 * Record one heartbeat: one insert-or-update of this daemon's row, so that daemons beating at the
 * same moment lock only their own rows (a delete-then-insert in a transaction deadlocks on InnoDB).
 */
export const beat = (b: DaemonBeat) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const row = sql.insert({
      host: b.host,
      pid: b.pid,
      version: b.version,
      started_at: b.startedAt,
      last_seen: b.lastSeen,
      interval_ms: b.intervalMs,
      last_store_error: b.lastStoreError === null ? null : b.lastStoreError.slice(0, 1000),
      last_store_error_at: b.lastStoreErrorAt,
      table_size: b.tableSize
    })
    const table = sql(DAEMONS_TABLE)
    yield* sql.onDialectOrElse({
      mysql: () => sql`INSERT INTO ${table} ${row} ON DUPLICATE KEY UPDATE ${sql.literal(UPDATED.map((c) => `${c} = VALUES(${c})`).join(", "))}`,
      orElse: () => sql`INSERT INTO ${table} ${row} ON CONFLICT (host, pid) DO UPDATE SET ${sql.literal(UPDATED.map((c) => `${c} = excluded.${c}`).join(", "))}`
    }).pipe(wrap("record heartbeat"))
  })

/** Remove the rows of daemons not seen for {@link FORGET_AFTER_MS} (a daemon does it at start). */
export const forgetGone = (now: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`DELETE FROM ${sql(DAEMONS_TABLE)} WHERE last_seen < ${now - FORGET_AFTER_MS}`.pipe(wrap("forget gone daemons"), Effect.asVoid))

/** Remove this daemon's row (a clean stop). */
export const leave = (host: string, pid: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`DELETE FROM ${sql(DAEMONS_TABLE)} WHERE host = ${host} AND pid = ${pid}`.pipe(wrap("remove heartbeat"), Effect.asVoid))

const num = (v: unknown): number | null => v === null || v === undefined ? null : Number(v)

/** Every daemon of the ring (null when the table is missing), ordered by host and pid. */
export const listDaemons = (now: number) =>
  Effect.gen(function*() {
    if (!(yield* ringAvailable)) return null
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Record<string, unknown>>`SELECT * FROM ${sql(DAEMONS_TABLE)} ORDER BY host, pid`.pipe(wrap("list daemons"))
    return rows.map((r): DaemonRow => {
      const lastSeen = Number(r["last_seen"])
      const intervalMs = Number(r["interval_ms"])
      return {
        host: String(r["host"]),
        pid: Number(r["pid"]),
        version: String(r["version"]),
        startedAt: Number(r["started_at"]),
        lastSeen,
        intervalMs,
        lastStoreError: r["last_store_error"] === null ? null : String(r["last_store_error"]),
        lastStoreErrorAt: num(r["last_store_error_at"]),
        tableSize: num(r["table_size"]),
        ageMs: Math.max(0, now - lastSeen),
        stale: now - lastSeen > 3 * intervalMs
      }
    })
  })
