/**
 * A PostgreSQL store on several servers, a primary and its standbys (`postgres://u@h1:5432,h2:5433/db`,
 * PgUrl.ts): one bounded `pg` pool whose every new connection goes to the server that is read-write
 * now, so that after a failover (a standby promoted, the old primary stopped) the daemon writes to
 * the new primary by itself, without a restart.
 *
 * - A new connection goes first to the host that was read-write last (at start the first one),
 *   then, if that one refuses, fails or turns out read-only, to the next hosts in the URL's order
 *   (wrapping around), at most once each. It is kept only when the server answers
 *   `pg_is_in_recovery()` false and `transaction_read_only` off; a standby's connection is closed
 *   at once. When no host qualifies the statement fails with `08001` (store `Unavailable`: the
 *   lookup answers temp_fail, users in the routing table keep being routed from memory).
 * - A connection that meets a read-only server later (`25006` read_only_sql_transaction, e.g. an
 *   old primary fenced with `default_transaction_read_only`), or whose statement was given up
 *   (`query_timeout`: on a server that stopped answering it would hold every later statement), is
 *   closed when it goes back to the pool instead of being reused; a dead server's connections are
 *   dropped by the pool as with one host.
 * - The cancel `@effect/sql-pg` sends for a statement it gives up (`pg_cancel_backend(pid)`) goes to
 *   the server that runs that statement, never to another one where the same pid is someone else.
 *
 * Log lines name hosts as `host:port` only (never the URL, so never a password): one when a
 * primary is found, one when it is lost.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Layer, Runtime } from "effect"
import type { EventEmitter } from "node:events"
import { createRequire } from "node:module"
import { StoreError } from "@doveroute/routing"
import { classifySqlError } from "./Classify.js"
import type { PgHostUrl } from "./PgUrl.js"

// ---- the little of `pg` used here (the package ships no types) ---------------------------------

interface PgResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>
}
type QueryCallback = (err: Error | null | undefined, res?: PgResult) => void

interface PgClientBase extends EventEmitter {
  processID: number | null
  connect(callback?: (err?: Error | null) => void): unknown
  query(text: unknown, values?: unknown, callback?: unknown): unknown
  end(callback?: (err?: Error) => void): unknown
  _handleErrorMessage(msg: { readonly code?: unknown }): unknown
}

type ReleaseFn = (err?: Error | boolean) => void
type ConnectCallback = (err: Error | undefined | null, client?: PgClientBase, release?: ReleaseFn) => void

interface PgPoolBase extends EventEmitter {
  readonly ending: boolean
  connect(callback?: ConnectCallback): unknown
  query(text: unknown, values?: unknown, callback?: unknown): unknown
  end(): Promise<void>
}

interface PgModule {
  readonly Client: new(options: object) => PgClientBase
  readonly Pool: new(options: object) => PgPoolBase
}

// a class extending a constructor value: TypeScript wants this shape for the base
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ctor<T> = new(...args: Array<any>) => T

/** A host could not be used for a new connection (refused, failed, or read-only). */
class HostError extends Error {
  readonly code = "08001"
  constructor(readonly host: string, detail: string, options?: { readonly cause?: unknown }) {
    super(`${host}: ${detail}`, options)
  }
}

const hostErrorOf = (e: unknown): HostError | undefined =>
  e instanceof HostError ? e : (e as { cause?: unknown } | null)?.cause instanceof HostError ? (e as { cause: HostError }).cause : undefined

const describe = (e: unknown): string => {
  const d = e as { code?: unknown; message?: unknown } | null
  const code = typeof d?.code === "string" ? `${d.code}: ` : ""
  return `${code}${typeof d?.message === "string" ? d.message : String(e)}`
}

/** What a new connection must find: the primary, writable. */
const CHECK = "SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') AS read_only"

/** The cancel `@effect/sql-pg` runs through the pool for a statement it gives up. */
const CANCEL = /^SELECT pg_cancel_backend\((\d+)\)$/

/** Which host new connections try first, and the log lines when the primary changes. */
class Locator {
  private current = 0
  private primary = -1
  private found = false
  constructor(
    private readonly hosts: ReadonlyArray<PgHostUrl>,
    private readonly log: (level: "info" | "warning", message: string) => void
  ) {}

  pick(): number {
    return this.current
  }

  /** Host `i` failed a new connection or met a read-only server: move on to the next one. */
  failed(i: number, detail: string): void {
    if (i === this.current) this.current = (i + 1) % this.hosts.length
    if (i === this.primary) {
      this.primary = -1
      this.log("warning", `PostgreSQL primary ${this.hosts[i]!.label} lost (${detail}); new connections try the other hosts`)
    }
  }

  /** Host `i` answered read-write. */
  confirmed(i: number): void {
    this.current = i
    if (this.primary === i) return
    this.primary = i
    const first = !this.found
    this.found = true
    this.log(
      first ? "info" : "warning",
      first
        ? `PostgreSQL primary ${this.hosts[i]!.label} (of ${this.hosts.length} hosts)`
        : `PostgreSQL primary is now ${this.hosts[i]!.label}: writing there`
    )
  }
}

/** Pool settings for {@link layer}. */
export interface FailoverOptions {
  readonly connectTimeout: Duration.Duration
  readonly maxConnections: number
  readonly idleTimeout: Duration.Duration
  readonly applicationName: string
}

/** The `pg.Pool` (subclassed) over `hosts`; `log` receives the primary's changes. */
export const makePool = (
  pg: PgModule,
  hosts: ReadonlyArray<PgHostUrl>,
  options: FailoverOptions,
  log: (level: "info" | "warning", message: string) => void
): PgPoolBase => {
  const locator = new Locator(hosts, log)
  const connectMs = Duration.toMillis(options.connectTimeout)
  /** Open connections by server pid (and host), for the cancels. */
  const byPid = new Map<number, FailoverClient>()

  const BaseClient = pg.Client as Ctor<PgClientBase>
  class FailoverClient extends BaseClient {
    readonly hostIndex: number
    /** Closed instead of reused when it goes back to the pool. */
    drop: string | undefined = undefined
    private releaseFn: ReleaseFn | undefined = undefined

    constructor(poolOptions: Record<string, unknown>) {
      const i = locator.pick()
      super({ ...poolOptions, connectionString: hosts[i]!.url })
      this.hostIndex = i
    }

    // pg-pool sets `release` at each checkout; a connection to drop goes back with an error, which
    // makes the pool close it
    get release(): ReleaseFn | undefined {
      return this.releaseFn
    }
    set release(fn: ReleaseFn | undefined) {
      this.releaseFn = fn === undefined
        ? undefined
        : (err) => fn(err !== undefined && err !== false ? err : this.drop !== undefined ? new Error(this.drop) : err)
    }

    override _handleErrorMessage(msg: { readonly code?: unknown }): unknown {
      if (msg.code === "25006") {
        this.drop = "read-only server (25006)"
        locator.failed(this.hostIndex, "read-only: 25006 read_only_sql_transaction")
      }
      return super._handleErrorMessage(msg)
    }

    override connect(callback?: (err?: Error | null, client?: PgClientBase) => void): unknown {
      if (callback === undefined) {
        return new Promise((resolve, reject) => this.connect((e) => (e ? reject(e) : resolve(this))))
      }
      const label = hosts[this.hostIndex]!.label
      const fail = (detail: string, cause?: unknown) => {
        locator.failed(this.hostIndex, detail)
        callback(new HostError(label, detail, cause === undefined ? undefined : { cause }))
      }
      super.connect((err) => {
        if (err) return fail(describe(err), err)
        // until the pool listens: a socket error now must not be an unhandled 'error' event
        const quiet = () => undefined
        this.on("error", quiet)
        super.query(CHECK, (qerr: Error | null | undefined, res?: PgResult) => {
          const row = res?.rows[0]
          const readOnly = qerr ? undefined : row?.["in_recovery"] === true ? "in recovery (a standby)" : row?.["read_only"] !== "off" ? "read-only (transaction_read_only on)" : undefined
          if (qerr || readOnly !== undefined) {
            this.end()
            return fail(qerr ? describe(qerr) : readOnly!, qerr ?? undefined)
          }
          this.off("error", quiet)
          if (this.processID !== null) {
            const pid = this.processID
            byPid.set(pid, this)
            this.once("end", () => {
              if (byPid.get(pid) === this) byPid.delete(pid)
            })
          }
          locator.confirmed(this.hostIndex)
          callback(null, this)
        })
      })
      return undefined
    }
  }

  /** `pg_cancel_backend(pid)` on the server of `client`, on a connection of its own. */
  const cancelOn = (client: FailoverClient, pid: number, callback: QueryCallback | undefined) => {
    client.drop = "statement given up"
    const c = new pg.Client({ connectionString: hosts[client.hostIndex]!.url, connectionTimeoutMillis: connectMs, application_name: options.applicationName })
    c.on("error", () => undefined)
    const done = (err?: Error | null) => {
      c.end()
      callback?.(err ?? null, { rows: [] })
    }
    c.connect((err) => (err ? done(err) : c.query("SELECT pg_cancel_backend($1)", [pid], (qerr: Error | null) => done(qerr))))
  }

  const BasePool = pg.Pool as Ctor<PgPoolBase>
  class FailoverPool extends BasePool {
    override connect(callback?: ConnectCallback): unknown {
      if (callback === undefined) {
        return new Promise((resolve, reject) => this.connect((e, c) => (e ? reject(e) : resolve(c))))
      }
      const seen: Array<string> = []
      const attempt = (left: number): void => {
        super.connect((err, client, release) => {
          const he = hostErrorOf(err)
          if (he === undefined) return callback(err, client, release)
          seen.push(err === he ? he.message : `${he.message} (${describe(err)})`)
          if (left > 1 && !this.ending) return attempt(left - 1)
          const all = Object.assign(new Error(`no read-write PostgreSQL host: ${seen.join("; ")}`), { code: "08001" })
          callback(all, undefined, release)
        })
      }
      attempt(hosts.length)
      return undefined
    }

    override query(text: unknown, values?: unknown, callback?: unknown): unknown {
      const m = typeof text === "string" ? CANCEL.exec(text) : null
      const client = m === null ? undefined : byPid.get(Number(m[1]))
      if (client !== undefined) {
        const cb = (typeof values === "function" ? values : callback) as QueryCallback | undefined
        if (cb !== undefined) return cancelOn(client, Number(m![1]), cb)
        return new Promise((resolve) => cancelOn(client, Number(m![1]), (_e, r) => resolve(r)))
      }
      return super.query(text, values, callback)
    }
  }

  const pool = new FailoverPool({
    Client: FailoverClient,
    max: options.maxConnections,
    connectionTimeoutMillis: connectMs,
    idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
    application_name: options.applicationName
  })
  // an idle connection's error: the pool has dropped it already
  pool.on("error", () => undefined)
  return pool
}

const loadPg = Effect.try({
  // external to the bundle and CommonJS, as for @effect/sql-pg itself
  try: () => createRequire(import.meta.url)("pg") as PgModule,
  catch: (e) => new StoreError({ reason: "Unavailable", detail: `cannot load the PostgreSQL driver: ${String(e)}` })
})

/**
 * The `SqlClient` over several PostgreSQL hosts. Builds when a read-write host answers within
 * `connectTimeout` per host; fails with `StoreError` (`Unavailable`, naming each host and why)
 * otherwise.
 */
export const layer = (hosts: ReadonlyArray<PgHostUrl>, options: FailoverOptions): Layer.Layer<SqlClient.SqlClient, StoreError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const pg = yield* loadPg
      const PgClient = yield* Effect.tryPromise({
        try: () => import("@effect/sql-pg/PgClient"),
        catch: (e) => new StoreError({ reason: "Unavailable", detail: `cannot load the PostgreSQL driver: ${String(e)}` })
      })
      return PgClient.layerFromPool({
        applicationName: options.applicationName,
        acquire: Effect.gen(function*() {
          const runtime = yield* Effect.runtime<never>()
          const log = (level: "info" | "warning", message: string) =>
            Runtime.runFork(runtime)(level === "info" ? Effect.logInfo(message) : Effect.logWarning(message))
          const pool = yield* Effect.acquireRelease(
            Effect.sync(() => makePool(pg, hosts, options, log)),
            (p) => Effect.promise(() => p.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
          )
          yield* Effect.tryPromise({
            try: () => pool.query("SELECT 1") as Promise<unknown>,
            catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
          }).pipe(
            Effect.timeoutFail({
              duration: Duration.times(options.connectTimeout, hosts.length),
              onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
            })
          )
          return pool
        })
      }).pipe(Layer.mapError(classifySqlError("connect to PostgreSQL")))
    })
  )
