/**
 * The {@link RouteStore} over any `@effect/sql` client (SQLite, PostgreSQL, MySQL/MariaDB): one code
 * path for all three dialects, on the Lua director's tables.
 *
 * - `findAssigned`: `user_backend LEFT JOIN backends` on the key (Q1 + Q4 of the scripts in one query).
 *   A row whose `backend_id` names no backend (deleted by hand) counts as no row: `assign` then
 *   replaces it with one compare-and-set UPDATE, so the key never has two rows.
 * - `assign`: insert-ignore, then read (`ON CONFLICT DO NOTHING` on PostgreSQL/SQLite,
 *   `ON DUPLICATE KEY UPDATE key = key` on MySQL), relying on the unique index of migration 0002.
 * - `assignMany` (a group of first logins, Router.ts): one multi-row insert-ignore and one read of
 *   the stored rows; on PostgreSQL both are one statement (`WITH ins AS (INSERT … RETURNING)`).
 * - `userTags`: the per-user tags of `doveroute_user_tags` (migration 0011), one query per group.
 * - SQLite in the daemon: a group's reads (`groupReads`) and `assignMany` through the daemon's own
 *   better-sqlite3 connection when it has one (`direct`, SqliteDirect.ts).
 * - Every query has a timeout; driver errors are classified once ({@link classifySqlError}).
 * - A deadlock between concurrent first inserts (InnoDB, two unique keys) is retried.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { type Backend, type RouteKey, type RouteStoreService, StoreError, type Strategy } from "@doveroute/routing"
import { Duration, Effect, Option, Schedule } from "effect"
import { classifySqlError, isRetryableConflict, isSqliteBusy } from "./Classify.js"
import { keyColumn, readUserTags } from "./Schema.js"

/** Options of the SQL route store. */
export interface SqlRouteStoreOptions {
  readonly strategy: Strategy
  /** Timeout of each query (default 5 seconds). */
  readonly queryTimeout?: Duration.DurationInput
  /**
   * SQLite, the daemon: a group's reads and its `assignMany` through the daemon's own
   * better-sqlite3 connection (SqliteDirect.ts) instead of `@effect/sql`.
   */
  readonly direct?: {
    readonly groupReads: NonNullable<RouteStoreService["groupReads"]>
    readonly assignMany: NonNullable<RouteStoreService["assignMany"]>
  }
}

interface BackendRow {
  readonly id: number | string
  readonly hostname: string
  readonly hostip: string | null
  readonly state: number | string | null
  /** `backends.tag` (migration 0011); absent in rows read without it. */
  readonly tag?: string | null
}

/** What `user_backend` holds for one key. */
type KeyRow =
  | { readonly _tag: "None" }
  | { readonly _tag: "Live"; readonly backend: Backend }
  | { readonly _tag: "Dangling"; readonly backendId: number }

/** Normalise a driver row (ids may come back as strings or bigints); an untagged backend has no `tag`. */
export const toBackend = (r: BackendRow): Backend => ({
  id: Number(r.id),
  hostname: String(r.hostname),
  hostip: r.hostip === null || r.hostip === undefined ? null : String(r.hostip),
  state: r.state === null || r.state === undefined ? 0 : Number(r.state),
  ...(r.tag === null || r.tag === undefined ? {} : { tag: String(r.tag) })
})

/**
 * The race-safe first insert: `ON DUPLICATE KEY UPDATE key = key` on MySQL/MariaDB, `ON CONFLICT
 * DO NOTHING` elsewhere. The key column is an identifier, so every dialect quotes it
 * (`"user"` on PostgreSQL, where `user` is reserved: the scripts' defect 4).
 */
export const insertIgnoreStatement = (sql: SqlClient.SqlClient, strategy: Strategy, key: RouteKey, backendId: number) => {
  const col = sql(keyColumn(strategy))
  return sql.onDialectOrElse({
    mysql: () =>
      sql`INSERT INTO user_backend (backend_id, ${col}) VALUES (${backendId}, ${key})
        ON DUPLICATE KEY UPDATE ${col} = ${col}`,
    // no conflict target: two racing first logins that picked the same backend collide on the
    // primary key (backend_id, key) before the unique key index; both must be ignored
    orElse: () =>
      sql`INSERT INTO user_backend (backend_id, ${col}) VALUES (${backendId}, ${key})
        ON CONFLICT DO NOTHING`
  })
}

/**
 * Whether the client runs queries synchronously on the event loop (SQLite through better-sqlite3):
 * no deadline can interrupt such a query while it runs.
 */
export const runsSynchronously = (sql: SqlClient.SqlClient): boolean =>
  sql.onDialectOrElse({ sqlite: () => true, orElse: () => false })

/** Waits between tries of a statement SQLite refused for a lock (2 ms doubling, at most 100 ms, jittered). */
const lockRetry = Schedule.jittered(Schedule.union(Schedule.exponential("2 millis", 2), Schedule.spaced("100 millis")))

/**
 * What every query on the lookup path goes through: driver errors classified once, and an answer
 * by the deadline (`timeout`, the `query_timeout` setting).
 *
 * - PostgreSQL, MySQL: the query races the deadline (`Timeout`) even when the server hangs.
 *   Interrupting a query (pg sends a cancel request over a new connection) finishes in the
 *   background instead of delaying the temp failure.
 * - SQLite (`synchronous`, {@link runsSynchronously}): a statement runs synchronously and cannot be
 *   raced, so none is; the daemon's connection has `busy_timeout = 0` (StoreLayer `sqliteLocks: "retry"`), so a
 *   statement that meets another process's lock fails at once with `SQLITE_BUSY` and is tried again
 *   after a short async wait until the deadline (then `Unavailable`). The event loop is never held
 *   by a lock wait: cached and mapped users keep being answered while new users wait.
 */
export const guarded = (what: string, timeout: Duration.DurationInput, options: { readonly synchronous?: boolean } = {}) => {
  const d = Duration.decode(timeout)
  const classify = classifySqlError(what)
  if (options.synchronous === true) {
    const retry = { while: isSqliteBusy, schedule: Schedule.upTo(lockRetry, d) }
    return <A, R>(eff: Effect.Effect<A, SqlError, R>): Effect.Effect<A, StoreError, R> =>
      Effect.mapError(Effect.retry(eff, retry), classify)
  }
  return <A, R>(eff: Effect.Effect<A, SqlError, R>): Effect.Effect<A, StoreError, R> =>
    eff.pipe(
      Effect.mapError(classify),
      Effect.disconnect,
      Effect.timeoutFail({
        duration: d,
        onTimeout: () => new StoreError({ reason: "Timeout", detail: `${what}: no answer within ${Duration.format(d)}` })
      })
    )
}

/** A stored row of `user_backend` for a key, with its backend (`id` null: a deleted backend). */
/**
 * A group's rows in key order, for every statement that stores them: two groups (two daemons) lock
 * index entries in the same order, which keeps InnoDB and PostgreSQL deadlocks between them rare
 * (and retried).
 */
export const sortedRows = <R extends { readonly key: RouteKey }>(rows: ReadonlyArray<R>): Array<R> =>
  [...rows].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))

export type StoredRow = BackendRow & { readonly k: string | number; readonly bid: number | string }

/** Stored rows → `String(key)` → backend (`null`: names a deleted backend); a key seen twice with two ids is left out. */
export const storedMap = (rows: ReadonlyArray<StoredRow>): ReadonlyMap<string, Backend | null> => {
  const m = new Map<string, Backend | null>()
  const twice = new Set<string>()
  for (const r of rows) {
    const k = String(r.k)
    const b = r.id === null || r.id === undefined ? null : toBackend(r)
    const had = m.get(k)
    if (had !== undefined && (had === null || b === null || had.id !== b.id)) twice.add(k)
    m.set(k, b)
  }
  for (const k of twice) m.delete(k)
  return m
}

/** Build the store; needs a `SqlClient`. */
export const make = (options: SqlRouteStoreOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const timeout = Duration.decode(options.queryTimeout ?? "5 seconds")
    const col = sql(keyColumn(options.strategy))

    const synchronous = runsSynchronously(sql)
    const run = <A>(what: string, eff: Effect.Effect<A, SqlError>): Effect.Effect<A, StoreError> => guarded(what, timeout, { synchronous })(eff)

    /**
     * The key's row: none, live (its backend exists), or dangling (`backend_id` names no
     * `backends` row: a backend deleted by hand). Several rows for one key are an integrity error
     * (migration 0002's unique index makes them impossible).
     */
    const readRow = (key: RouteKey): Effect.Effect<KeyRow, StoreError> =>
      Effect.flatMap(
        run(
          "find mapping",
          sql<BackendRow & { bid: number | string }>`SELECT ub.backend_id AS bid, b.id, b.hostname, b.hostip, b.state, b.tag
            FROM user_backend ub LEFT JOIN backends b ON b.id = ub.backend_id
            WHERE ub.${col} = ${key}`
        ),
        (rows): Effect.Effect<KeyRow, StoreError> => {
          if (rows.length === 0) return Effect.succeed({ _tag: "None" })
          if (rows.length > 1) {
            return Effect.fail(
              new StoreError({ reason: "Integrity", detail: `user_backend holds ${rows.length} rows for ${String(key)}` })
            )
          }
          const r = rows[0]!
          return Effect.succeed(
            r.id === null || r.id === undefined
              ? { _tag: "Dangling", backendId: Number(r.bid) }
              : { _tag: "Live", backend: toBackend(r) }
          )
        }
      )

    // a row naming a deleted backend counts as no row: the user is placed anew (`assign`)
    const findAssigned = (key: RouteKey): Effect.Effect<Option.Option<Backend>, StoreError> =>
      Effect.map(readRow(key), (r) => (r._tag === "Live" ? Option.some(r.backend) : Option.none()))

    const listBackends = run(
      "list backends",
      sql<BackendRow>`SELECT id, hostname, hostip, state, tag FROM backends ORDER BY id`
    ).pipe(Effect.map((rows) => rows.map(toBackend)))

    const readBack = (key: RouteKey, what: string) =>
      Effect.flatMap(findAssigned(key), (o) =>
        Option.isSome(o)
          ? Effect.succeed(o.value)
          : Effect.fail(new StoreError({ reason: "Integrity", detail: `${what} for ${String(key)} left no row` })))

    const insertIgnore = (key: RouteKey, backendId: number) => insertIgnoreStatement(sql, options.strategy, key, backendId)

    // a deadlock between concurrent first inserts (InnoDB) is retried: the insert is idempotent
    const insertRetrying = (key: RouteKey, backendId: number) =>
      insertIgnore(key, backendId).pipe(
        Effect.retry({
          while: isRetryableConflict,
          times: 10,
          schedule: Schedule.jittered(Schedule.exponential("5 millis", 1.5))
        })
      )

    // The dangling row is replaced in one compare-and-set statement (never a second row); a
    // concurrent lookup that replaced it first wins, and both read its row.
    const replaceDangling = (key: RouteKey, danglingId: number, backendId: number) =>
      run(
        "replace mapping to a deleted backend",
        sql`UPDATE user_backend SET backend_id = ${backendId} WHERE ${col} = ${key} AND backend_id = ${danglingId}
          AND NOT EXISTS (SELECT 1 FROM backends WHERE id = ${danglingId})`
      )

    const assign = (key: RouteKey, backendId: number) =>
      Effect.zipRight(
        run("insert mapping", insertRetrying(key, backendId)),
        Effect.flatMap(readRow(key), (r) =>
          r._tag === "Live"
            ? Effect.succeed(r.backend)
            : r._tag === "Dangling"
            ? Effect.zipRight(replaceDangling(key, r.backendId, backendId), readBack(key, "replace"))
            : Effect.fail(new StoreError({ reason: "Integrity", detail: `insert for ${String(key)} left no row` })))
      )

    const reassign = (key: RouteKey, fromId: number, toId: number) =>
      Effect.zipRight(
        run(
          "move mapping",
          sql`UPDATE user_backend SET backend_id = ${toId} WHERE ${col} = ${key} AND backend_id = ${fromId}`
        ),
        readBack(key, "move")
      )


    const valuesOf = (rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>) =>
      sql.insert(rows.map((r) => ({ backend_id: r.backendId, [keyColumn(options.strategy)]: r.key })))

    const insertManyStatement = (rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>) => {
      const values = valuesOf(rows)
      return sql.onDialectOrElse({
        mysql: () => sql`INSERT INTO user_backend ${values} ON DUPLICATE KEY UPDATE ${col} = ${col}`,
        orElse: () => sql`INSERT INTO user_backend ${values} ON CONFLICT DO NOTHING`
      })
    }

    const retrying = <A>(eff: Effect.Effect<A, SqlError>) =>
      Effect.retry(eff, {
        while: isRetryableConflict,
        times: 10,
        schedule: Schedule.jittered(Schedule.exponential("5 millis", 1.5))
      })

    const readMany = (keys: ReadonlyArray<RouteKey>) =>
      run(
        "read mappings",
        sql<StoredRow>`SELECT ub.${col} AS k, ub.backend_id AS bid, b.id, b.hostname, b.hostip, b.state, b.tag
          FROM user_backend ub LEFT JOIN backends b ON b.id = ub.backend_id
          WHERE ub.${col} IN ${sql.in(keys)}`
      )

    const assignMany = (rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>) => {
      const sorted = sortedRows(rows)
      const keys = sorted.map((r) => r.key)
      const rowsEff: Effect.Effect<ReadonlyArray<StoredRow>, StoreError> = sql.onDialectOrElse({
        // one statement: the inserted rows from RETURNING, the rows that were there from the
        // statement's snapshot (which does not show its own inserts); a row another transaction
        // committed meanwhile is in neither, and the router reads it alone
        pg: () =>
          run(
            "insert and read mappings",
            retrying(sql<StoredRow>`WITH ins AS (
                INSERT INTO user_backend ${valuesOf(sorted)}
                ON CONFLICT DO NOTHING RETURNING backend_id, ${col})
              SELECT r.k, r.bid, b.id, b.hostname, b.hostip, b.state, b.tag FROM (
                SELECT ins.${col} AS k, ins.backend_id AS bid FROM ins
                UNION ALL
                SELECT ub.${col}, ub.backend_id FROM user_backend ub WHERE ub.${col} IN ${sql.in(keys)}
              ) r LEFT JOIN backends b ON b.id = r.bid`)
          ),
        orElse: () => Effect.zipRight(run("insert mappings", retrying(insertManyStatement(sorted))), readMany(keys))
      })
      return Effect.map(rowsEff, storedMap)
    }

    // the per-user tags of migration 0011 (Tags.ts), keyed as asked (Schema `readUserTags`: on
    // MySQL/MariaDB a tag stored for `alice@x` is found for `Alice@x`); none under shard
    const userTags = (keys: ReadonlyArray<RouteKey>) => run("read user tags", Effect.provideService(readUserTags(keys.map(String)), SqlClient.SqlClient, sql))

    return {
      strategy: options.strategy,
      findAssigned,
      listBackends,
      assign,
      reassign,
      assignMany: options.direct?.assignMany ?? assignMany,
      ...(options.direct !== undefined ? { groupReads: options.direct.groupReads } : {}),
      ...(options.strategy === "mapping" ? { userTags } : {}),
      // SQLite's statements run on the event loop one after the other: more groups gain nothing
      groupsInFlight: synchronous ? 1 : 2,
      groupWaitMs: Duration.toMillis(timeout)
    } satisfies RouteStoreService
  })
