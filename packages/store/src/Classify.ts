/**
 * One place that turns driver errors into {@link StoreError} reasons (v3 `SqlError`
 * keeps the driver error in `cause`).
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import { StoreError } from "@doveroute/routing"

interface DriverError {
  readonly code?: unknown
  readonly errno?: unknown
  readonly message?: unknown
}

const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH",
  "PROTOCOL_CONNECTION_LOST", "ER_CON_COUNT_ERROR", "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CONNECTION_KILLED", "ER_SERVER_SHUTDOWN", "ER_QUERY_INTERRUPTED", "ER_LOCK_WAIT_TIMEOUT", "57014",
  "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004", "53300",
  "SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_PERM",
  "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_FULL", "SQLITE_AUTH"
])

const driverError = (e: unknown): DriverError | undefined => {
  let c: unknown = e
  // SqlError → cause; some drivers nest once more
  for (let i = 0; i < 3 && c !== null && typeof c === "object"; i++) {
    const d = c as DriverError & { cause?: unknown }
    if (d.code !== undefined || d.errno !== undefined) return d
    c = d.cause
  }
  return undefined
}

const codeOf = (e: unknown): string | undefined => {
  const d = driverError(e)
  return typeof d?.code === "string" ? d.code : undefined
}

/**
 * A conflict the database asks the client to retry: InnoDB deadlock (1213) or lock wait timeout
 * (1205), PostgreSQL deadlock (40P01) or serialization failure (40001). Concurrent
 * `INSERT … ON DUPLICATE KEY UPDATE` of one user on a table with two unique keys (the scripts'
 * `PRIMARY KEY (backend_id, user)` plus doveroute's unique index on `user`) deadlocks on InnoDB now
 * and then; the statement is idempotent, so it is simply run again.
 */
export const isRetryableConflict = (e: SqlError): boolean => {
  const d = driverError(e)
  return d?.errno === 1213 || d?.errno === 1205 || d?.code === "40P01" || d?.code === "40001"
}

const messageOf = (e: unknown): string => {
  const d = driverError(e)
  if (typeof d?.message === "string") return d.message
  if (e instanceof Error) return e.message
  return String(e)
}

/**
 * SQLite could not take a lock another connection holds (`SQLITE_BUSY`, `SQLITE_BUSY_*`,
 * `SQLITE_LOCKED`): worth trying again shortly.
 */
export const isSqliteBusy = (e: SqlError): boolean => {
  const code = codeOf(e)
  return code !== undefined && (code === "SQLITE_LOCKED" || code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_"))
}

/** Classify any SQL failure; `what` names the operation for the message. */
export const classifySqlError = (what: string) => (e: SqlError): StoreError => {
  const code = codeOf(e)
  const msg = messageOf(e)
  if (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith("SQLITE_IOERR"))) {
    return new StoreError({ reason: "Unavailable", detail: `${what}: ${code}: ${msg}`, cause: e })
  }
  // pg: "Connection terminated unexpectedly", "timeout exceeded when trying to connect";
  // mysql2: "Pool is closed.", "Queue limit reached." (pool saturated while the server hangs)
  if (/connect|closed|terminat|gone away|lost connection|pool|queue limit/i.test(msg)) {
    return new StoreError({ reason: "Unavailable", detail: `${what}: ${msg}`, cause: e })
  }
  return new StoreError({ reason: "Query", detail: `${what}: ${code ? code + ": " : ""}${msg}`, cause: e })
}
