/**
 * The `@effect/sql` client for a store URL: SQLite (better-sqlite3; the journal mode as found, see
 * Journal.ts), PostgreSQL (pg) or MySQL/MariaDB (mysql2), each with a bounded pool and a connect
 * timeout. Each driver is loaded when its layer is built, so a process loads only the one its store
 * URL names (an admin command's start-up time).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import { StoreError } from "@doveroute/routing"
import { classifySqlError } from "./Classify.js"
import { mysqlPoolOptions, parseMysqlParams } from "./MysqlUrl.js"
import * as PgFailover from "./PgFailover.js"
import { type PgHostUrl, pgHostUrls } from "./PgUrl.js"
import { prepareSqliteFiles, type SqliteGroup } from "./SqliteFiles.js"
import type { StoreUrl } from "./StoreUrl.js"

/** Pool and timeout settings. */
export interface ClientOptions {
  /** Max connections of the PostgreSQL / MySQL pool (default 10). */
  readonly maxConnections?: number
  /** Connect timeout (default 5 s); SQLite uses it as `busy_timeout`. */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * SQLite: the file must exist already and is opened read-only (read-only admin commands).
   * Without it a missing file and its directory are created.
   */
  readonly mustExist?: boolean
}

/** Load a driver module; a missing or broken driver is a store that cannot be opened. */
const loadDriver = <M>(name: string, load: () => Promise<M>) =>
  Effect.tryPromise({ try: load, catch: (e) => new StoreError({ reason: "Unavailable", detail: `cannot load the ${name} driver: ${String(e)}` }) })

const sqliteLayer = (filename: string, group: SqliteGroup, options: ClientOptions) => {
  const busyMs = Duration.toMillis(Duration.decode(options.connectTimeout ?? "5 seconds"))
  return Layer.unwrapEffect(
    Effect.flatMap(loadDriver("SQLite", () => import("@effect/sql-sqlite-node/SqliteClient")), (SqliteClient) =>
      Effect.try({
        try: () => {
          if (options.mustExist === true) {
            if (filename !== ":memory:" && !fs.existsSync(filename)) {
              throw new StoreError({
                reason: "Unavailable",
                detail: `no SQLite database at ${filename} (check --store / the store setting; \`doveroute migrate\` creates a new one)`
              })
            }
            // looking only: open read-only and leave the journal mode as it is (no write at all)
            return SqliteClient.layer({ filename, readonly: true, disableWAL: true })
          }
          // private modes for what we create (SqliteFiles.ts)
          prepareSqliteFiles(filename, group)
          // never switch the file to WAL on open: the journal mode is the operator's (Journal.ts)
          return SqliteClient.layer({ filename, disableWAL: true })
        },
        catch: (e) => e instanceof StoreError ? e : new StoreError({ reason: "Unavailable", detail: (e as Error).message })
      }))
  ).pipe(
    Layer.tap((ctx) => {
      const sql = ctx.unsafeMap.get(SqlClient.SqlClient.key) as SqlClient.SqlClient
      return sql.unsafe(`PRAGMA busy_timeout = ${Math.floor(busyMs)}`).pipe(
        Effect.mapError(classifySqlError(`open ${filename}`))
      )
    })
  )
}

/**
 * mysql2 options parsed out of a `mysql://user:pass@host:port/db?params` URL (the password stays
 * `Redacted`); the parameters (MysqlUrl.ts: `socket`, `ssl`, …) come back as `pool` options.
 */
export const mysqlFields = (url: Redacted.Redacted<string>) => {
  const u = new URL(Redacted.value(url))
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""))
  return {
    pool: mysqlPoolOptions(parseMysqlParams(u.searchParams)),
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: u.port === "" ? 3306 : Number(u.port),
    ...(database !== "" ? { database } : {}),
    ...(u.username !== "" ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== "" ? { password: Redacted.make(decodeURIComponent(u.password)) } : {})
  }
}

/**
 * Waiting lookups allowed per pool connection before mysql2 refuses at once ("Queue limit
 * reached"), so a hung server cannot pile up unbounded work; each refusal is a temp failure.
 */
export const MYSQL_QUEUE_PER_CONNECTION = 100

/**
 * A `SqlClient` layer for a parsed store URL. Fails with `StoreError` (`Unavailable`) when it cannot connect.
 *
 * Pools are bounded (`maxConnections`, default 10) and heal by themselves: a connection that errors
 * (server restart, `pg_terminate_backend`, `KILL`) is dropped from the pool and the next query opens
 * a new one. MySQL keeps at least 2 connections because migrations hold a named lock on one of them.
 */
export const layer = (store: StoreUrl, options: ClientOptions = {}): Layer.Layer<SqlClient.SqlClient, StoreError> => {
  const connectTimeout = Duration.decode(options.connectTimeout ?? "5 seconds")
  const maxConnections = Math.max(1, Math.floor(options.maxConnections ?? 10))
  switch (store._tag) {
    case "Sqlite":
      return sqliteLayer(store.filename, store.group, options).pipe(
        Layer.catchAll((e) => Layer.fail(e instanceof StoreError ? e : new StoreError({ reason: "Unavailable", detail: String(e) })))
      ) as Layer.Layer<SqlClient.SqlClient, StoreError>
    case "Pg": {
      // several hosts (a primary and its standbys): new connections go to the read-write one
      let hosts: ReadonlyArray<PgHostUrl>
      try {
        hosts = pgHostUrls(Redacted.value(store.url))
      } catch (e) {
        return Layer.fail(new StoreError({ reason: "Unavailable", detail: (e as Error).message }))
      }
      if (hosts.length > 1) {
        return PgFailover.layer(hosts, { connectTimeout, maxConnections, idleTimeout: Duration.seconds(30), applicationName: "doveroute" })
      }
      return Layer.unwrapEffect(
        Effect.map(loadDriver("PostgreSQL", () => import("@effect/sql-pg/PgClient")), (PgClient) =>
          PgClient.layer({
            url: store.url,
            connectTimeout,
            maxConnections,
            idleTimeout: "30 seconds",
            applicationName: "doveroute"
          }).pipe(
            Layer.mapError(classifySqlError("connect to PostgreSQL"))
          ))
      )
    }
    case "Mysql": {
      const max = Math.max(2, maxConnections)
      // the URL form of MysqlClient ignores poolConfig, so pass the fields
      return Layer.unwrapEffect(
        Effect.flatMap(loadDriver("MySQL", () => import("@effect/sql-mysql2/MysqlClient")), (MysqlClient) =>
          Effect.try({
            try: () => {
              const { pool, ...fields } = mysqlFields(store.url)
              return MysqlClient.layer({
                ...fields,
                maxConnections: max,
                connectionTTL: "60 seconds",
                poolConfig: {
                  ...pool,
                  connectTimeout: Duration.toMillis(connectTimeout),
                  maxIdle: max,
                  queueLimit: max * MYSQL_QUEUE_PER_CONNECTION,
                  enableKeepAlive: true,
                  keepAliveInitialDelay: 10_000
                }
              })
            },
            catch: (e) => {
              const m = (e as Error).message
              return new StoreError({ reason: "Unavailable", detail: m.startsWith("MySQL store URL") ? m : `MySQL URL: ${m}` })
            }
          }))
      ).pipe(
        Layer.mapError((e) =>
          e._tag === "SqlError"
            ? classifySqlError("connect to MySQL")(e)
            : e._tag === "StoreError"
            ? e
            : new StoreError({ reason: "Unavailable", detail: `MySQL settings: ${e.message}` })
        )
      )
    }
  }
}
