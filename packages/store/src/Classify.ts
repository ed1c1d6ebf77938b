/**
 * One place that turns driver errors into {@link StoreError} reasons (effect-stack.md §6; v3
 * `SqlError` keeps the driver error in `cause`).
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

/** A duplicate-key error on PostgreSQL (23505), MySQL/MariaDB (1062) or SQLite (constraint). */
export const isUniqueViolation = (e: SqlError): boolean => {
  const d = driverError(e)
  return d?.code === "23505" || d?.errno === 1062 ||
    d?.code === "SQLITE_CONSTRAINT_PRIMARYKEY" || d?.code === "SQLITE_CONSTRAINT_UNIQUE"
}

const messageOf = (e: unknown): string => {
  const d = driverError(e)
  if (typeof d?.message === "string") return d.message
  if (e instanceof Error) return e.message
  return String(e)
}

/** Classify any SQL failure; `what` names the operation for the message. */
export const classifySqlError = (what: string) => (e: SqlError): StoreError => {
  const code = codeOf(e)
  const msg = messageOf(e)
  if (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith("SQLITE_IOERR"))) {
    return new StoreError({ reason: "Unavailable", detail: `${what}: ${code}: ${msg}`, cause: e })
  }
  if (/connect|closed|terminat|gone away|lost connection|pool/i.test(msg)) {
    return new StoreError({ reason: "Unavailable", detail: `${what}: ${msg}`, cause: e })
  }
  return new StoreError({ reason: "Query", detail: `${what}: ${code ? code + ": " : ""}${msg}`, cause: e })
}
