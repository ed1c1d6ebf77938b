/**
 * The daemon's first-login path on SQLite without `@effect/sql`: a second better-sqlite3
 * connection of its own to the same file, with a handful of prepared statements run synchronously.
 * A group of first logins (Router.ts `runGroup`) then costs two plain calls, each one `Effect`
 * step: {@link SqliteDirect.groupReads} (backends with their weights, holds, user tags) and
 * {@link SqliteDirect.assignMany} (the insert-ignores and the read-back of the stored rows in one
 * `BEGIN IMMEDIATE` transaction, so one commit). Through `@effect/sql` every statement costs tens of
 * microseconds of fiber work against a few for the bare statement.
 *
 * Same rules as the `@effect/sql` connection (StoreLayer `sqliteLocks: "retry"`, SqlRouteStore
 * `guarded`): `busy_timeout = 0`, the journal mode left as it is, and a call that meets another
 * process's lock (`SQLITE_BUSY`) is tried again after a short asynchronous wait until the query
 * timeout; every driver error goes through the same classifier (`classifySqlError`), so store
 * trouble is a temporary failure, never a wrong backend. The statements read exactly what the
 * separate reads read (Operations.ts `routeHoldsLayer`, `placementInfoLayer`, SqlRouteStore
 * `listBackends`, `userTags`, `assignMany`).
 *
 * {@link open} answers `None` (the daemon then uses the `@effect/sql` path) when the file is
 * `:memory:` or a URI, when the driver cannot open it, or when a statement cannot be prepared (a
 * store not fully migrated). The connection is closed with the layer's scope.
 *
 * @since 0.3.0
 */
import { SqlError } from "@effect/sql/SqlError"
import type { Backend, GroupReads, GroupReadsWant, RouteKey, StoreError, Strategy } from "@doveroute/routing"
import type BetterSqlite3 from "better-sqlite3"
import { Duration, Effect, Option, type Scope } from "effect"
import { classifySqlError, isSqliteBusy } from "./Classify.js"
import { MOVES_TABLE } from "./Operations.js"
import { keyColumn, USER_TAGS_TABLE } from "./Schema.js"
import { guarded, sortedRows, storedMap, type StoredRow, toBackend } from "./SqlRouteStore.js"

/** The two calls of a group of first logins. */
export interface SqliteDirect {
  readonly groupReads: (keys: ReadonlyArray<RouteKey>, want: GroupReadsWant) => Effect.Effect<GroupReads, StoreError>
  readonly assignMany: (
    rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>
  ) => Effect.Effect<ReadonlyMap<string, Backend | null>, StoreError>
}

interface BackendWeightRow {
  readonly id: number
  readonly hostname: string
  readonly hostip: string | null
  readonly state: number | null
  readonly tag: string | null
  readonly weight: number | string | null
}

const quote = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

/**
 * One call: `f` run synchronously, its driver error classified; `SQLITE_BUSY` (another process's
 * lock) tried again asynchronously until `timeout` as `guarded` does for the `@effect/sql` path.
 */
const runner = (timeout: Duration.Duration) => <A>(what: string, f: () => A): Effect.Effect<A, StoreError> => {
  const once = Effect.try({ try: f, catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" }) })
  const classify = classifySqlError(what)
  const retrying = guarded(what, timeout, { synchronous: true })(once)
  return Effect.catchAll(once, (e) => (isSqliteBusy(e) ? retrying : Effect.fail(classify(e))))
}

/**
 * Prepare the statements on an open connection; throws when one cannot be prepared (a missing
 * table or column).
 */
const prepare = (db: BetterSqlite3.Database, strategy: Strategy, timeout: Duration.Duration): SqliteDirect => {
  const col = quote(keyColumn(strategy))
  const backends = db.prepare<[], BackendWeightRow>(
    "SELECT id, hostname, hostip, state, tag, weight FROM backends ORDER BY id"
  )
  const hold = db.prepare<[string], { k: string; e: number | string }>(
    `SELECT route_key AS k, expires_at AS e FROM ${quote(MOVES_TABLE)} WHERE route_key = ? AND hold_logins = 1`
  )
  const tag = db.prepare<[string], { k: string; tag: string }>(
    `SELECT user_name AS k, tag FROM ${quote(USER_TAGS_TABLE)} WHERE user_name = ?`
  )
  // no conflict target, as SqlRouteStore `insertIgnoreStatement`: a row of the same key and
  // backend collides on the primary key before the unique key index; both are ignored
  const insert = db.prepare<[number, RouteKey], unknown>(
    `INSERT INTO user_backend (backend_id, ${col}) VALUES (?, ?) ON CONFLICT DO NOTHING`
  )
  const stored = db.prepare<[RouteKey], StoredRow>(
    `SELECT ub.${col} AS k, ub.backend_id AS bid, b.id, b.hostname, b.hostip, b.state, b.tag
      FROM user_backend ub LEFT JOIN backends b ON b.id = ub.backend_id WHERE ub.${col} = ?`
  )
  const run = runner(timeout)

  // one read transaction: every part from one snapshot, and the locks taken once
  const reads = db.transaction((keys: ReadonlyArray<RouteKey>, want: GroupReadsWant): GroupReads => {
    const rows = backends.all()
    const holds = new Map<string, number>()
    if (want.holds) {
      for (const k of keys) for (const r of hold.all(String(k))) holds.set(String(r.k), Number(r.e))
    }
    const userTags = new Map<string, string>()
    if (want.userTags) {
      for (const k of keys) for (const r of tag.all(String(k))) userTags.set(String(r.k), String(r.tag))
    }
    return {
      backends: rows.map(toBackend),
      ...(want.weights ? { weights: new Map(rows.map((r) => [Number(r.id), Number(r.weight)] as const)) } : {}),
      holds,
      userTags
    }
  })

  // the inserts and the read-back under the write lock: no other connection commits in between,
  // so every key's row is read back (one commit for the group)
  const writeRead = db.transaction((rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>) => {
    for (const r of rows) insert.run(r.backendId, r.key)
    const out: Array<StoredRow> = []
    for (const r of rows) for (const s of stored.all(r.key)) out.push(s)
    return out
  })

  return {
    groupReads: (keys, want) => run("read group", () => reads(keys, want)),
    // keys in one order, as on the @effect/sql path
    assignMany: (rows) => Effect.map(run("insert and read mappings", () => writeRead.immediate(sortedRows(rows))), storedMap)
  }
}

/**
 * Open the daemon's own connection to `filename` (after the migrations) and prepare the
 * statements; `None` when that is not possible (the caller keeps the `@effect/sql` path).
 */
export const open = (
  filename: string,
  strategy: Strategy,
  queryTimeout: Duration.DurationInput
): Effect.Effect<Option.Option<SqliteDirect>, never, Scope.Scope> => {
  if (filename === "" || filename === ":memory:" || filename.startsWith("file:")) return Effect.succeed(Option.none())
  const timeout = Duration.decode(queryTimeout)
  return Effect.tryPromise(() => import("better-sqlite3")).pipe(
    Effect.flatMap(({ default: Database }) =>
      Effect.acquireRelease(
        Effect.try(() => {
          // busy_timeout 0 (the driver's own default is 5 s): a lock is retried asynchronously
          const db = new Database(filename, { fileMustExist: true, timeout: 0 })
          try {
            db.pragma("busy_timeout = 0")
            return { db, direct: prepare(db, strategy, timeout) }
          } catch (e) {
            db.close()
            throw e
          }
        }),
        ({ db }) => Effect.sync(() => db.close())
      )
    ),
    Effect.map(({ direct }) => Option.some(direct)),
    Effect.catchAll((e) =>
      Effect.as(
        Effect.logDebug(`SQLite first logins through @effect/sql: no direct connection (${String((e as { error?: unknown }).error ?? e)})`),
        Option.none()
      )
    )
  )
}
