/**
 * The store as the daemon and CLI use it: a `SqlClient` for the URL, migrations applied (or only
 * checked), and the {@link RouteStore} service.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { RouteStore, type StoreError, type Strategy } from "@doveroute/routing"
import { type Duration, Effect, Layer, Option } from "effect"
import { classifySqlError } from "./Classify.js"
import { assertMigrated, checkVariant, migrate, type SchemaError } from "./Migrations.js"
import * as SqlClientLayer from "./SqlClientLayer.js"
import * as SqliteDirect from "./SqliteDirect.js"
import * as SqlRouteStore from "./SqlRouteStore.js"
import type { StoreUrl } from "./StoreUrl.js"

/** Store settings. */
export interface StoreOptions {
  readonly url: StoreUrl
  readonly strategy: Strategy
  /** Apply pending migrations when the layer is built (default true). */
  readonly migrate?: boolean
  /**
   * Look only (read-only admin commands): a missing SQLite file is an error (no file or directory
   * is created) and a database that is not fully migrated is refused ("run doveroute migrate");
   * nothing is migrated. Overrides `migrate`.
   */
  readonly readOnly?: boolean
  readonly queryTimeout?: Duration.DurationInput
  readonly connectTimeout?: Duration.DurationInput
  readonly maxConnections?: number
  /**
   * SQLite only: how a statement waits for another process's lock. `block` (default; CLI,
   * migrations): SQLite's `busy_timeout` = `connectTimeout`, the process waits inside the statement.
   * `retry` (the daemon): once migrations are applied `busy_timeout` is set to 0 and the lookup path
   * retries `SQLITE_BUSY` asynchronously up to `queryTimeout` (SqlRouteStore `guarded`), so a lock
   * never stalls the event loop. `retry` on a SQLite file (not read-only) also opens the daemon's
   * own better-sqlite3 connection with the same settings, through which groups of first logins
   * are read and stored (SqliteDirect.ts).
   */
  readonly sqliteLocks?: "block" | "retry"
}

/** A `SqlClient` for the URL with migrations applied (or the variant checked when `migrate` is false). */
export const sqlLayer = (options: StoreOptions): Layer.Layer<SqlClient.SqlClient, StoreError | SchemaError> => {
  const client = SqlClientLayer.layer(options.url, {
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}),
    ...(options.readOnly === true ? { mustExist: true } : {})
  })
  const prepare = options.readOnly === true
    ? assertMigrated(options.strategy)
    : options.migrate === false
    ? Effect.asVoid(checkVariant(options.strategy))
    : Effect.tap(migrate(options.strategy), (applied) =>
      applied.length > 0
        ? Effect.logInfo("migrations applied").pipe(Effect.annotateLogs("migrations", applied.map(([id, n]) => `${id}_${n}`).join(",")))
        : Effect.void)
  // after the migrations, which must wait for a concurrent migrator's lock
  const locks = options.sqliteLocks === "retry"
    ? Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.onDialectOrElse({ sqlite: () => Effect.asVoid(sql.unsafe("PRAGMA busy_timeout = 0")), orElse: () => Effect.void }))
    : Effect.void
  return Layer.effectDiscard(
    Effect.zipRight(prepare, locks).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(classify(e))))
  ).pipe(Layer.provideMerge(client))
}

const classify = classifySqlError("prepare schema")

/** SqlRouteStore's default query timeout. */
const DEFAULT_QUERY_TIMEOUT = "5 seconds"

/** The {@link RouteStore} plus the `SqlClient` it runs on. */
export const storeLayer = (options: StoreOptions): Layer.Layer<RouteStore | SqlClient.SqlClient, StoreError | SchemaError> =>
  Layer.scoped(
    RouteStore,
    Effect.gen(function*() {
      // the daemon on a SQLite file: first-login groups through its own connection (SqliteDirect.ts)
      const direct = options.url._tag === "Sqlite" && options.sqliteLocks === "retry" && options.readOnly !== true
        ? yield* SqliteDirect.open(options.url.filename, options.strategy, options.queryTimeout ?? DEFAULT_QUERY_TIMEOUT)
        : Option.none()
      return yield* SqlRouteStore.make({
        strategy: options.strategy,
        ...(options.queryTimeout !== undefined ? { queryTimeout: options.queryTimeout } : {}),
        ...(Option.isSome(direct) ? { direct: direct.value } : {})
      })
    })
  ).pipe(Layer.provideMerge(sqlLayer(options)))
