/**
 * The `@effect/sql` client for a store URL: SQLite (better-sqlite3, WAL), PostgreSQL (pg) or
 * MySQL/MariaDB (mysql2), each with a bounded pool and a connect timeout.
 *
 * @since 0.1.0
 */
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { StoreError } from "@doveroute/routing"
import { classifySqlError } from "./Classify.js"
import type { StoreUrl } from "./StoreUrl.js"

/** Pool and timeout settings. */
export interface ClientOptions {
  /** Max connections of the PostgreSQL / MySQL pool (default 10). */
  readonly maxConnections?: number
  /** Connect timeout (default 5 s); SQLite uses it as `busy_timeout`. */
  readonly connectTimeout?: Duration.DurationInput
}

const sqliteLayer = (filename: string, options: ClientOptions) => {
  const busyMs = Duration.toMillis(Duration.decode(options.connectTimeout ?? "5 seconds"))
  return Layer.unwrapEffect(
    Effect.try({
      try: () => {
        if (filename !== ":memory:") fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true })
        return SqliteClient.layer({ filename })
      },
      catch: (e) => new StoreError({ reason: "Unavailable", detail: `cannot create directory for ${filename}: ${String(e)}` })
    })
  ).pipe(
    Layer.tap((ctx) => {
      const sql = ctx.unsafeMap.get(SqlClient.SqlClient.key) as SqlClient.SqlClient
      return sql.unsafe(`PRAGMA busy_timeout = ${Math.floor(busyMs)}`).pipe(
        Effect.mapError(classifySqlError(`open ${filename}`))
      )
    })
  )
}

/** A `SqlClient` layer for a parsed store URL. Fails with `StoreError` (`Unavailable`) when it cannot connect. */
export const layer = (store: StoreUrl, options: ClientOptions = {}): Layer.Layer<SqlClient.SqlClient, StoreError> => {
  const connectTimeout = options.connectTimeout ?? "5 seconds"
  const maxConnections = options.maxConnections ?? 10
  switch (store._tag) {
    case "Sqlite":
      return sqliteLayer(store.filename, options).pipe(
        Layer.catchAll((e) => Layer.fail(e instanceof StoreError ? e : new StoreError({ reason: "Unavailable", detail: String(e) })))
      ) as Layer.Layer<SqlClient.SqlClient, StoreError>
    case "Pg":
      return PgClient.layer({ url: store.url, connectTimeout, maxConnections, idleTimeout: "30 seconds" }).pipe(
        Layer.mapError(classifySqlError("connect to PostgreSQL"))
      )
    case "Mysql":
      return MysqlClient.layer({
        url: store.url,
        maxConnections,
        poolConfig: { connectTimeout: Duration.toMillis(Duration.decode(connectTimeout)) }
      }).pipe(
        Layer.mapError((e) =>
          e._tag === "SqlError"
            ? classifySqlError("connect to MySQL")(e)
            : new StoreError({ reason: "Unavailable", detail: `MySQL settings: ${e.message}` })
        )
      )
  }
}
