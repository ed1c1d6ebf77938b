/**
 * The auth-client protocol's per-connection state machine, **server side**
 * (`docs/protocols.md` §2.3–§2.6): client lines in, decisions out. The codec (decoders, encoders,
 * reasons) is `AuthClient.ts`. Pure: no I/O, no clocks.
 *
 * @since 0.1.0
 */
import {
  AUTH_CLIENT_MAJOR,
  type AuthLine,
  type ClientLine,
  decodeClientLine,
  encodeCancelled,
  encodeCont,
  encodeFail,
  MINOR_CANCELLED_REPLY,
  MINOR_EMPTY_RESP_IS_DATA,
  REASON_BAD_BASE64_CONT,
  REASON_BAD_BASE64_INITIAL,
  REASON_INVALID_FIELD,
  REASON_UNEXPECTED_CONT,
  REASON_UNKNOWN_ID
} from "./AuthClient.js"
import { type BadField, describeBadField, firstBadField } from "./FieldCheck.js"
import { IdTable } from "./IdTable.js"
import { isValidBase64 } from "./Sasl.js"

/** Close the connection without writing anything. `reason` is for logs. */
export interface Disconnect {
  readonly _tag: "Disconnect"
  readonly reason: string
}

/**
 * A new request, now in the table. `request.resp` is already normalised: `undefined` when absent
 * or when empty from a client below 1.2; otherwise valid base64 text (`""`/`=` = empty response).
 * The caller runs the mechanism and answers with {@link AuthClientSession.cont} or
 * {@link AuthClientSession.finish} + an encoder.
 */
export interface StartAuth {
  readonly _tag: "StartAuth"
  readonly request: AuthLine
}

/** Client data for a request that was awaiting it; `data` is valid base64 text. */
export interface Continue {
  readonly _tag: "Continue"
  readonly id: number
  readonly data: string
}

/**
 * An `AUTH` with a field that holds a control character or invalid UTF-8 (after tab-unescaping):
 * write `line` (`FAIL\t<id>\treason=…` naming the field); the request never entered the table.
 * `request` is for logging: its refused field must not be logged ({@link FieldCheck}).
 */
export interface Refuse {
  readonly _tag: "Refuse"
  readonly request: AuthLine
  readonly bad: BadField
  readonly line: string
}

/** Write `line` (complete, with LF); no request state changed. */
export interface Reply {
  readonly _tag: "Reply"
  readonly line: string
}

/**
 * Request `id` was removed from the table: drop any work in flight for it (its later
 * {@link AuthClientSession.finish} returns false) and write `line` if it is defined
 * (a FAIL, or CANCELLED for minor ≥ 4).
 */
export interface Abort {
  readonly _tag: "Abort"
  readonly id: number
  readonly line: string | undefined
}

/** Nothing to do (VERSION/CPID accepted, CANCEL of an unknown id). */
export interface Ignore {
  readonly _tag: "Ignore"
}

/** What the caller must do after one client line. */
export type SessionDecision = Disconnect | StartAuth | Continue | Reply | Abort | Ignore | Refuse

/**
 * The first field of an AUTH request holding a control character or invalid UTF-8: the
 * mechanism, every parameter name and value (`service`, `rip`, `lip`, `session`, …), the
 * `forward_fields` entries and `resp`. Parameter values are checked after tab-unescaping.
 */
export const badRequestField = (req: AuthLine): BadField | undefined => {
  const fields: Array<readonly [string, string | undefined]> = [["mechanism", req.mech]]
  for (const kv of req.params) {
    fields.push(["a parameter name", kv.key])
    if (kv.key !== "forward_fields") fields.push([/^[A-Za-z0-9_-]+$/.test(kv.key) ? kv.key : "a parameter", kv.value])
  }
  for (const kv of req.forwardFields) fields.push(["forward_fields", kv.key], ["forward_fields", kv.value])
  fields.push(["resp", req.resp])
  return firstBadField(fields)
}

/** Options of {@link AuthClientSession}. */
export interface AuthClientSessionOptions {
  /**
   * Mechanisms announced in the handshake (case-insensitive). When given, AUTH for any other
   * mechanism disconnects, like the real server. When omitted the caller must check.
   */
  readonly mechanisms?: Iterable<string>
}

const IGNORE: Ignore = { _tag: "Ignore" }

/** What a refused field could hold: C0 controls but TAB (the separator; 0x01 is the escape), DEL, U+FFFD. */
const SUSPECT = /[\x00-\x08\x0a-\x1f\x7f\uFFFD]/

/**
 * Per-connection rules of the auth-client protocol (docs/protocols.md §2.3–§2.6), as a pure state machine:
 *
 * 1. The first line must be `VERSION` with major 1.
 * 2. Then only `CPID` (non-zero) is accepted; anything else disconnects.
 * 3. After CPID: `AUTH`, `CONT`, `CANCEL`. A duplicate in-flight id disconnects; parameters after
 *    `resp=` disconnect; bad base64 in `resp=` answers `FAIL … code=invalid_base64`.
 * 4. `CONT` is accepted once after each server `CONT` (marked with {@link cont} or
 *    {@link markAwaitingContinuation}); otherwise the request fails with "Unexpected
 *    continuation". An unknown id gets "Authentication request timed out".
 * 5. `CANCEL` removes the request; clients with minor ≥ 4 get `CANCELLED`.
 *
 * Any {@link Disconnect} is final: the session is closed and every later line disconnects too.
 * The caller owns I/O, timeouts and the routing; it must call {@link finish} before writing the
 * final OK/FAIL of a request and write it only if `finish` returned true.
 */
export class AuthClientSession {
  private phase: "version" | "cpid" | "ready" | "closed" = "version"
  private minor: number | undefined
  private pid: number | undefined
  private readonly requests = new IdTable<{ awaitingCont: boolean }>()
  private readonly mechanisms: ReadonlySet<string> | undefined
  /** The line {@link handleLine} is deciding on has nothing {@link badRequestField} could refuse. */
  private lineClean = false

  constructor(options: AuthClientSessionOptions = {}) {
    this.mechanisms = options.mechanisms === undefined
      ? undefined
      : new Set(Array.from(options.mechanisms, (m) => m.toUpperCase()))
  }

  /** The client's announced minor version, once VERSION was received. */
  get clientMinor(): number | undefined {
    return this.minor
  }

  /** The client's PID from CPID, once received. */
  get clientPid(): number | undefined {
    return this.pid
  }

  /** True after VERSION and CPID were accepted (and no disconnect happened). */
  get ready(): boolean {
    return this.phase === "ready"
  }

  /** True after a {@link Disconnect} decision. */
  get closed(): boolean {
    return this.phase === "closed"
  }

  /** Number of requests in the table. */
  get pendingCount(): number {
    return this.requests.size
  }

  /** True when `id` is in the table (started, not finished/cancelled). */
  has(id: number): boolean {
    return this.requests.has(id)
  }

  /** True when `id` is in the table and a server `CONT` for it is outstanding. */
  isAwaitingContinuation(id: number): boolean {
    return this.requests.get(id)?.awaitingCont === true
  }

  /** Decide what one client line (without LF) means. Never throws. */
  handleLine(line: string): SessionDecision {
    if (this.phase === "closed") return { _tag: "Disconnect", reason: "connection already closed" }
    // a line with no control character but TAB (no 0x01 escape either) and no U+FFFD cannot hold a
    // refused field: the per-field check (badRequestField) is then skipped
    this.lineClean = !SUSPECT.test(line)
    try {
      return this.decide(decodeClientLine(line))
    } finally {
      this.lineClean = false
    }
  }

  /** Same as {@link handleLine} for an already decoded line. */
  decide(msg: ClientLine): SessionDecision {
    switch (this.phase) {
      case "closed":
        return { _tag: "Disconnect", reason: "connection already closed" }
      case "version":
        if (msg._tag === "Invalid") return this.disconnect(`first line: ${msg.reason}`)
        if (msg._tag !== "Version") return this.disconnect("first line must be VERSION")
        if (msg.major !== AUTH_CLIENT_MAJOR) return this.disconnect(`incompatible major version ${msg.major}`)
        this.minor = msg.minor
        this.phase = "cpid"
        return IGNORE
      case "cpid":
        if (msg._tag === "Invalid") return this.disconnect(msg.reason)
        if (msg._tag !== "Cpid") return this.disconnect(`unknown handshake command ${msg._tag.toUpperCase()}`)
        this.pid = msg.pid
        this.phase = "ready"
        return IGNORE
      case "ready":
        return this.decideReady(msg)
    }
  }

  private decideReady(msg: ClientLine): SessionDecision {
    switch (msg._tag) {
      case "Invalid":
        return this.disconnect(msg.reason)
      case "Version":
      case "Cpid":
        return this.disconnect(`unexpected ${msg._tag.toUpperCase()} after handshake`)
      case "Auth": {
        if (this.requests.has(msg.id)) return this.disconnect(`duplicate request id ${msg.id}`)
        const bad = this.lineClean ? undefined : badRequestField(msg)
        if (bad !== undefined) {
          return { _tag: "Refuse", request: msg, bad, line: encodeFail(msg.id, { reason: `${REASON_INVALID_FIELD} ${describeBadField(bad)}` }) }
        }
        if (this.mechanisms !== undefined && !this.mechanisms.has(msg.mech)) {
          return this.disconnect(`unsupported mechanism ${msg.mech}`)
        }
        let resp = msg.resp
        if (resp === "" && (this.minor ?? 0) < MINOR_EMPTY_RESP_IS_DATA) resp = undefined
        if (resp !== undefined && !isValidBase64(resp)) {
          return { _tag: "Reply", line: encodeFail(msg.id, { code: "invalid_base64", reason: REASON_BAD_BASE64_INITIAL }) }
        }
        this.requests.set(msg.id, { awaitingCont: false })
        return { _tag: "StartAuth", request: resp === msg.resp ? msg : { ...msg, resp } }
      }
      case "Cont": {
        const req = this.requests.get(msg.id)
        if (req === undefined) return { _tag: "Reply", line: encodeFail(msg.id, { reason: REASON_UNKNOWN_ID }) }
        if (!req.awaitingCont) {
          this.requests.delete(msg.id)
          return { _tag: "Abort", id: msg.id, line: encodeFail(msg.id, { reason: REASON_UNEXPECTED_CONT }) }
        }
        if (!isValidBase64(msg.data)) {
          this.requests.delete(msg.id)
          return { _tag: "Abort", id: msg.id, line: encodeFail(msg.id, { code: "invalid_base64", reason: REASON_BAD_BASE64_CONT }) }
        }
        req.awaitingCont = false
        return { _tag: "Continue", id: msg.id, data: msg.data }
      }
      case "Cancel": {
        if (!this.requests.delete(msg.id)) return IGNORE
        const line = (this.minor ?? 0) >= MINOR_CANCELLED_REPLY ? encodeCancelled(msg.id) : undefined
        return { _tag: "Abort", id: msg.id, line }
      }
    }
  }

  private disconnect(reason: string): Disconnect {
    this.phase = "closed"
    this.requests.clear()
    return { _tag: "Disconnect", reason }
  }

  /**
   * Record that the server sent `CONT` for `id`, so one client `CONT` is accepted.
   * Returns false (and changes nothing) when `id` is not in the table.
   */
  markAwaitingContinuation(id: number): boolean {
    const req = this.requests.get(id)
    if (req === undefined) return false
    req.awaitingCont = true
    return true
  }

  /**
   * {@link markAwaitingContinuation} and {@link encodeCont} in one: the `CONT` line to write, or
   * `undefined` when `id` is no longer in the table (cancelled or the connection closed).
   *
   * @throws RangeError when `challenge` is not base64 (programmer error).
   */
  cont(id: number, challenge: string): string | undefined {
    if (!this.requests.has(id)) return undefined
    const line = encodeCont(id, challenge)
    this.markAwaitingContinuation(id)
    return line
  }

  /**
   * Remove `id` before writing its final OK or FAIL. Returns true when the id was in the table
   * (write the reply), false when it was already cancelled/aborted (write nothing).
   */
  finish(id: number): boolean {
    return this.requests.delete(id)
  }
}
