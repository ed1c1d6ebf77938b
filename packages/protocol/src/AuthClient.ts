/**
 * Dovecot auth-client protocol, **server side** (doveroute plays the auth server for login
 * processes, doveadm, Postfix and Exim). Protocol versions 1.0–1.4.
 *
 * Follows `docs/protocols.md` §1–§3 (behaviour of Dovecot 2.3.19 and 2.4.1–2.4.4
 * `src/auth/auth-client-connection.c`, `auth-request-handler.c`, `auth-request-fields.c`,
 * `src/lib-auth/auth-client-connection.c`). Our own code; no Dovecot source is copied.
 *
 * Lines are handled **without** their trailing LF; every encoder returns text **with** the LF.
 * Fields are tab-separated and tab-escaped ({@link escape}). Pure: no I/O, no clocks.
 *
 * Pieces:
 * - {@link encodeHandshake}: the whole server handshake, 2.3 order.
 * - {@link decodeClientLine}: one client line → {@link ClientLine}; never throws.
 * - `AuthClientSession` (its own module): per-connection handshake and request-table rules → decisions.
 * - {@link encodeOk}, {@link encodeFail}, {@link encodeCont}, {@link encodeCancelled}: replies.
 *
 * @since 0.1.0
 */
import { isValidBase64 } from "./Sasl.js"
import { escape, formatKeyValue, parseKeyValue, splitLine, type KeyValue } from "./TabEscape.js"
import { isNonZeroUint32, parsePort, parseUint32, utf8Length } from "./internal/parse.js"

/** Maximum line length in bytes (without LF), both directions (Dovecot `AUTH_CLIENT_MAX_LINE_LENGTH`). */
export const AUTH_CLIENT_MAX_LINE = 16384

/** The only protocol major version (both sides check only the major). */
export const AUTH_CLIENT_MAJOR = 1

/**
 * Minor version doveroute announces: 2, like Dovecot 2.3.19, whose "send everything at once"
 * handshake we copy (docs/protocols.md §2.3). Clients' own minor is remembered separately by the session.
 */
export const AUTH_CLIENT_SERVER_MINOR = 2

/** First client minor for which an empty `resp=` is an empty initial response (2.3.0). */
export const MINOR_EMPTY_RESP_IS_DATA = 2

/** First client minor that expects `CANCELLED\t<id>` after `CANCEL` (2.4.4). */
export const MINOR_CANCELLED_REPLY = 4

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

/**
 * MECH flags in the fixed order Dovecot prints them (`src/auth/mech.c`); `channel-binding` is 2.4.
 * `private` mechanisms must not be offered to end users.
 */
export const MECH_FLAG_ORDER = [
  "private",
  "anonymous",
  "plaintext",
  "dictionary",
  "active",
  "forward-secrecy",
  "mutual-auth",
  "channel-binding"
] as const

/** One MECH flag. */
export type MechFlag = (typeof MECH_FLAG_ORDER)[number]

/** A mechanism to announce: `MECH\t<name>[\t<flag>…]`. PLAIN and LOGIN carry only `plaintext`. */
export interface MechanismInfo {
  readonly name: string
  readonly flags: ReadonlyArray<MechFlag>
}

/** The mechanisms doveroute serves itself (see `Sasl.ts`): PLAIN and LOGIN, both `plaintext`. */
export const DEFAULT_MECHANISMS: ReadonlyArray<MechanismInfo> = [
  { name: "PLAIN", flags: ["plaintext"] },
  { name: "LOGIN", flags: ["plaintext"] }
]

/** Input of {@link encodeHandshake}. */
export interface HandshakeOptions {
  /** At least one; announced in this order. Names are upper-case SASL names. */
  readonly mechanisms: ReadonlyArray<MechanismInfo>
  /** Server PID (any uint32 in standalone mode; our own PID is customary). */
  readonly spid: number
  /** Per-process connection counter, starting at 1. */
  readonly cuid: number
  /** 32 lowercase hex digits (16 random bytes). */
  readonly cookie: string
  /** Announced minor version; default {@link AUTH_CLIENT_SERVER_MINOR} (2). */
  readonly minor?: number
}

const COOKIE_RE = /^[0-9a-f]{32}$/
const MECH_NAME_RE = /^[A-Z0-9_-]+$/

/**
 * The whole server handshake, to be written at once on accept, in Dovecot 2.3's order:
 * `VERSION\t1\t<minor>\n`, one `MECH\t<name>[\t<flags>]\n` per mechanism, `SPID\t<spid>\n`,
 * `CUID\t<cuid>\n`, `COOKIE\t<cookie>\n`, `DONE\n`. MECH must precede SPID: Postfix and Exim
 * treat an SPID before any MECH as an auth-master socket (docs/protocols.md §2.3).
 *
 * Flags are printed in {@link MECH_FLAG_ORDER} (duplicates dropped). Mechanisms carrying
 * `channel-binding` should be left out: this handshake goes out before the client's version is
 * known, and 2.4 only offers them to clients ≥ 1.3.
 *
 * @throws RangeError (programmer error) when there is no mechanism, a mechanism name is not
 *   `[A-Z0-9_-]+`, spid/cuid are not uint32, the minor is not a non-negative integer, or the cookie
 *   is not 32 lowercase hex digits.
 */
export const encodeHandshake = (options: HandshakeOptions): string => {
  const { mechanisms, spid, cuid, cookie } = options
  const minor = options.minor ?? AUTH_CLIENT_SERVER_MINOR
  if (mechanisms.length === 0) throw new RangeError("handshake needs at least one mechanism")
  if (!Number.isInteger(minor) || minor < 0) throw new RangeError(`bad minor version ${minor}`)
  if (!Number.isInteger(spid) || spid < 0 || spid > 0xffffffff) throw new RangeError(`bad SPID ${spid}`)
  if (!Number.isInteger(cuid) || cuid < 0 || cuid > 0xffffffff) throw new RangeError(`bad CUID ${cuid}`)
  if (!COOKIE_RE.test(cookie)) throw new RangeError("COOKIE must be 32 lowercase hex digits")
  let out = `VERSION\t${AUTH_CLIENT_MAJOR}\t${minor}\n`
  for (const mech of mechanisms) {
    if (!MECH_NAME_RE.test(mech.name)) throw new RangeError(`bad mechanism name ${JSON.stringify(mech.name)}`)
    out += `MECH\t${mech.name}`
    for (const flag of MECH_FLAG_ORDER) if (mech.flags.includes(flag)) out += `\t${flag}`
    out += "\n"
  }
  out += `SPID\t${spid}\nCUID\t${cuid}\nCOOKIE\t${cookie}\nDONE\n`
  return out
}

// ---------------------------------------------------------------------------------------------
// Client lines
// ---------------------------------------------------------------------------------------------

/** `VERSION\t<major>\t<minor>`: both decimal uint32. */
export interface VersionLine {
  readonly _tag: "Version"
  readonly major: number
  readonly minor: number
}

/** `CPID\t<pid>`: the client's PID, a non-zero uint32 (`CPID\t0` is {@link InvalidLine}). */
export interface CpidLine {
  readonly _tag: "Cpid"
  readonly pid: number
}

/**
 * `AUTH\t<id>\t<MECH>\t<params…>[\tresp=<base64>]` (docs/protocols.md §2.5).
 *
 * - `id`: non-zero uint32.
 * - `mech`: upper-cased mechanism name (Dovecot looks mechanisms up case-insensitively).
 * - `service`: from `service=` (≤ 2.3 clients) or `protocol=` (2.4 clients); the last one wins;
 *   never empty.
 * - `params`: every parameter except `resp=`, unescaped, in wire order (duplicates kept).
 * - `resp`: the initial response as base64 **text**, exactly as sent (`""` for `resp=`), or
 *   `undefined` when absent. Not validated here; {@link AuthClientSession} applies the < 1.2
 *   empty rule and the base64 check.
 * - Boolean parameters are true when present with any value or none (`secured`, `final-resp-ok`,
 *   `no-penalty`, `valid-client-cert`, `debug`, `nologin`); `securedTls` is `secured=tls`.
 * - Address convenience: `lip`/`rip` as text, ports as numbers (`undefined` when absent or not a
 *   port); `realLip`… default to the plain values, as Dovecot does. Last occurrence wins.
 * - `forwardFields`: `forward_fields=` value split into tab-escaped `k=v` fields (`[]` if absent).
 */
export interface AuthLine {
  readonly _tag: "Auth"
  readonly id: number
  readonly mech: string
  readonly service: string
  readonly params: ReadonlyArray<KeyValue>
  readonly resp: string | undefined
  readonly secured: boolean
  readonly securedTls: boolean
  readonly finalRespOk: boolean
  readonly noPenalty: boolean
  readonly validClientCert: boolean
  readonly debug: boolean
  readonly nologin: boolean
  readonly session: string | undefined
  readonly lip: string | undefined
  readonly rip: string | undefined
  readonly lport: number | undefined
  readonly rport: number | undefined
  readonly realLip: string | undefined
  readonly realRip: string | undefined
  readonly realLport: number | undefined
  readonly realRport: number | undefined
  readonly localName: string | undefined
  readonly clientId: string | undefined
  readonly certUsername: string | undefined
  readonly forwardFields: ReadonlyArray<KeyValue>
}

/** `CONT\t<id>\t<base64>`: `data` is everything after the second TAB, unescaped (may be `""`). */
export interface ContLine {
  readonly _tag: "Cont"
  readonly id: number
  readonly data: string
}

/** `CANCEL\t<id>`. */
export interface CancelLine {
  readonly _tag: "Cancel"
  readonly id: number
}

/**
 * A line the real server would disconnect on: bad id (0, not digits, > 4294967295), missing
 * mechanism or service, parameters after `resp=`, bad VERSION/CPID numbers, CPID 0, unknown
 * command, or a line longer than {@link AUTH_CLIENT_MAX_LINE} bytes. `reason` is for logs.
 */
export interface InvalidLine {
  readonly _tag: "Invalid"
  readonly reason: string
}

/** One decoded client → server line. */
export type ClientLine = VersionLine | CpidLine | AuthLine | ContLine | CancelLine | InvalidLine

const invalid = (reason: string): InvalidLine => ({ _tag: "Invalid", reason })

const decodeAuth = (args: ReadonlyArray<string>): AuthLine | InvalidLine => {
  const id = parseUint32(args[1])
  if (id === undefined || id === 0) return invalid("AUTH: bad request id")
  const mechRaw = args[2]
  if (mechRaw === undefined || mechRaw.length === 0) return invalid("AUTH: missing mechanism")
  const params: Array<KeyValue> = []
  let resp: string | undefined
  let service: string | undefined
  let secured = false
  let securedTls = false
  let finalRespOk = false
  let noPenalty = false
  let validClientCert = false
  let debug = false
  let nologin = false
  let session: string | undefined
  let lip: string | undefined
  let rip: string | undefined
  let lport: number | undefined
  let rport: number | undefined
  let realLip: string | undefined
  let realRip: string | undefined
  let realLport: number | undefined
  let realRport: number | undefined
  let localName: string | undefined
  let clientId: string | undefined
  let certUsername: string | undefined
  let forwardFields: ReadonlyArray<KeyValue> = []
  for (let i = 3; i < args.length; i++) {
    const field = args[i]!
    if (field.startsWith("resp=")) {
      if (i !== args.length - 1) return invalid("AUTH: parameters after 'resp'")
      resp = field.slice(5)
      break
    }
    const kv = parseKeyValue(field)
    params.push(kv)
    const v = kv.value
    switch (kv.key) {
      case "service":
      case "protocol":
        service = v ?? ""
        break
      case "secured":
        secured = true
        securedTls = v === "tls"
        break
      case "final-resp-ok": finalRespOk = true; break
      case "no-penalty": noPenalty = true; break
      case "valid-client-cert": validClientCert = true; break
      case "debug": debug = true; break
      case "nologin": nologin = true; break
      case "session": session = v ?? ""; break
      case "lip": lip = v ?? ""; break
      case "rip": rip = v ?? ""; break
      case "lport": lport = parsePort(v); break
      case "rport": rport = parsePort(v); break
      case "real_lip": realLip = v ?? ""; break
      case "real_rip": realRip = v ?? ""; break
      case "real_lport": realLport = parsePort(v); break
      case "real_rport": realRport = parsePort(v); break
      case "local_name": localName = v ?? ""; break
      case "client_id": clientId = v ?? ""; break
      case "cert_username": certUsername = v ?? ""; break
      case "forward_fields":
        forwardFields = v === undefined || v.length === 0 ? [] : splitLine(v).map(parseKeyValue)
        break
    }
  }
  if (service === undefined || service.length === 0) return invalid("AUTH: missing service")
  return {
    _tag: "Auth",
    id,
    mech: mechRaw.toUpperCase(),
    service,
    params,
    resp,
    secured,
    securedTls,
    finalRespOk,
    noPenalty,
    validClientCert,
    debug,
    nologin,
    session,
    lip,
    rip,
    lport,
    rport,
    realLip: realLip ?? lip,
    realRip: realRip ?? rip,
    realLport: realLport ?? lport,
    realRport: realRport ?? rport,
    localName,
    clientId,
    certUsername,
    forwardFields
  }
}

/**
 * Decode one client line (without its LF). Pure and total: never throws; anything the real
 * server would reject with a disconnect is an {@link InvalidLine} (docs/protocols.md §2.3, §2.5, §2.6).
 */
export const decodeClientLine = (line: string): ClientLine => {
  if (line.length > AUTH_CLIENT_MAX_LINE || (line.length * 3 > AUTH_CLIENT_MAX_LINE && utf8Length(line) > AUTH_CLIENT_MAX_LINE)) {
    return invalid(`line longer than ${AUTH_CLIENT_MAX_LINE} bytes`)
  }
  const args = splitLine(line)
  const cmd = args[0]!
  switch (cmd) {
    case "VERSION": {
      const major = parseUint32(args[1])
      const minor = parseUint32(args[2])
      if (major === undefined || minor === undefined) return invalid("VERSION: bad version numbers")
      return { _tag: "Version", major, minor }
    }
    case "CPID": {
      const pid = parseUint32(args[1])
      if (pid === undefined) return invalid("CPID: bad pid")
      if (pid === 0) return invalid("CPID: client said its PID is 0")
      return { _tag: "Cpid", pid }
    }
    case "AUTH":
      return decodeAuth(args)
    case "CONT": {
      const id = parseUint32(args[1])
      if (id === undefined || id === 0) return invalid("CONT: bad request id")
      if (args.length < 3) return invalid("CONT: missing data")
      return { _tag: "Cont", id, data: args.slice(2).join("\t") }
    }
    case "CANCEL": {
      const id = parseUint32(args[1])
      if (id === undefined || id === 0) return invalid("CANCEL: bad request id")
      return { _tag: "Cancel", id }
    }
    default:
      return invalid(`unknown command ${JSON.stringify(cmd.slice(0, 40))}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/** A reply field: `[key, value]`; `value === undefined` renders the bare key. */
export type Field = readonly [key: string, value: string | undefined]

/**
 * FAIL codes (`code=`, protocol ≥ 1.2; `auth-client-interface.h`). `temp_fail`: internal failure;
 * `authz_fail`: master user accepted, target not; `user_disabled`; `pass_expired`;
 * `invalid_base64`. Login processes also use the last three locally.
 */
export type FailCode =
  | "temp_fail"
  | "authz_fail"
  | "user_disabled"
  | "pass_expired"
  | "invalid_base64"
  | "auth_mech_invalid"
  | "auth_mech_ssl_required"
  | "anonymous_denied"

/** Keys rendered bare on OK whatever their value (2.3 login processes compare the whole token). */
export const BARE_OK_FLAGS: ReadonlySet<string> = new Set(["proxy", "nologin"])

const checkId = (id: number): void => {
  if (!isNonZeroUint32(id)) throw new RangeError(`bad auth request id ${id}`)
}

const checkKey = (key: string): void => {
  if (key.length === 0 || key.includes("=")) throw new RangeError(`bad field key ${JSON.stringify(key)}`)
}

const renderFields = (fields: ReadonlyArray<Field>, bare: ReadonlySet<string> | undefined): string => {
  let out = ""
  for (const [key, value] of fields) {
    checkKey(key)
    out += "\t" + formatKeyValue(key, bare !== undefined && bare.has(key) ? undefined : value)
  }
  return out
}

/**
 * `OK\t<id>\tuser=<user>[\t<field>…]\n` (docs/protocols.md §2.7, §3). The first field **must** be `["user", <name>]`
 * (Postfix and Exim reject an OK without it). `proxy` and `nologin` are always rendered bare
 * (2.3 login processes only recognise the bare token; 2.4 accepts both). Other fields with
 * `undefined` render bare; values are tab-escaped.
 *
 * @throws RangeError (programmer error) on an id outside 1..4294967295, a first field that is not
 *   `user` with a value, or a key that is empty or contains `=`.
 */
export const encodeOk = (id: number, fields: ReadonlyArray<Field>): string => {
  checkId(id)
  const first = fields[0]
  if (first === undefined || first[0] !== "user" || first[1] === undefined) {
    throw new RangeError("OK must start with user=<name>")
  }
  return `OK\t${id}${renderFields(fields, BARE_OK_FLAGS)}\n`
}

/** Input of {@link encodeFail}. `fields` follow `reason=` in order. */
export interface FailOptions {
  readonly user?: string | undefined
  readonly code?: FailCode | undefined
  /** Shown to the end user: never distinguish "no such user" from "wrong password". */
  readonly reason?: string | undefined
  readonly fields?: ReadonlyArray<Field> | undefined
}

/**
 * `FAIL\t<id>[\tuser=<u>][\tcode=<c>][\treason=<text>][\t<field>…]\n` (docs/protocols.md §2.7).
 *
 * @throws RangeError (programmer error) on a bad id or a bad field key.
 */
export const encodeFail = (id: number, options: FailOptions = {}): string => {
  checkId(id)
  let out = `FAIL\t${id}`
  if (options.user !== undefined) out += `\tuser=${escape(options.user)}`
  if (options.code !== undefined) out += `\tcode=${escape(options.code)}`
  if (options.reason !== undefined) out += `\treason=${escape(options.reason)}`
  if (options.fields !== undefined) out += renderFields(options.fields, undefined)
  return out + "\n"
}

/**
 * `CONT\t<id>\t<base64>\n`; an empty challenge is `CONT\t<id>\t\n`.
 *
 * @throws RangeError on a bad id or when `base64` is not valid base64 (see `Sasl.isValidBase64`).
 */
export const encodeCont = (id: number, base64: string): string => {
  checkId(id)
  if (!isValidBase64(base64)) throw new RangeError("CONT data must be base64")
  return `CONT\t${id}\t${base64}\n`
}

/**
 * `CANCELLED\t<id>\n`, the answer to `CANCEL` for clients with minor ≥ 4 (Dovecot 2.4.4).
 *
 * @throws RangeError on a bad id.
 */
export const encodeCancelled = (id: number): string => {
  checkId(id)
  return `CANCELLED\t${id}\n`
}

/** Reason text Dovecot uses for `CONT` on an id it does not know. */
export const REASON_UNKNOWN_ID = "Authentication request timed out"
/** Reason text for `CONT` when no server `CONT` is outstanding. */
export const REASON_UNEXPECTED_CONT = "Unexpected continuation"
/** Reason text for bad base64 in `resp=`. */
export const REASON_BAD_BASE64_INITIAL = "Invalid base64 data in initial response"
/** Reason text for bad base64 in `CONT`. */
export const REASON_BAD_BASE64_CONT = "Invalid base64 data in continued response"

/** `reason=` prefix of the FAIL for an AUTH with a refused field. */
export const REASON_INVALID_FIELD = "doveroute: invalid request:"
