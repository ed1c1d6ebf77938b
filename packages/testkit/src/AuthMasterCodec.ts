/**
 * Dovecot auth-master / auth-userdb protocol, both directions (`docs/protocols.md` §5), for tests:
 * fake auth-userdb servers and clients that check what the userdb relay passes. doveroute itself
 * only needs `AuthMaster` of `@doveroute/protocol` (line limit, userdb filter). Behaviour of Dovecot 2.3.19 and 2.4.1 `src/auth/auth-master-connection.c`
 * and `src/lib-auth/auth-master.c` (our own code; no Dovecot source is copied).
 *
 * Lines are handled **without** their LF; encoders return text **with** the LF. Fields are
 * tab-separated and tab-escaped. Ids on this protocol are uint32 and may be 0. Pure: no I/O.
 *
 * @since 0.1.0
 */
import { AuthMaster, parseUint32, ProxyFields, TabEscape } from "@doveroute/protocol"

const { escape, parseKeyValue, splitLine } = TabEscape
type KeyValue = TabEscape.KeyValue
const { AUTH_MASTER_MAX_LINE } = AuthMaster
const isUint32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffffffff
const utf8Length = (s: string): number => Buffer.byteLength(s, "utf8")

/** Protocol major version (only the major is checked by either side). */
export const AUTH_MASTER_MAJOR = 1

/** Minor version doveroute announces on master/userdb sockets: 1, like Dovecot 2.3. */
export const AUTH_MASTER_SERVER_MINOR = 1

/** Reason Dovecot logs when a CPID arrives on a master socket (then it disconnects). */
export const REASON_CPID_ON_MASTER = "Authentication client trying to connect to master socket"

// ---------------------------------------------------------------------------------------------
// Client → server (requests)
// ---------------------------------------------------------------------------------------------

/** `VERSION\t<major>\t<minor>`. */
export interface VersionRequest {
  readonly _tag: "Version"
  readonly major: number
  readonly minor: number
}

/** `CPID\t<pid>`: an auth **client** reached a master socket. The server must disconnect. */
export interface CpidRequest {
  readonly _tag: "Cpid"
  readonly pid: number
}

/**
 * `PASS\t<id>\t<user>\t<info…>` (credentials lookup; LMTP proxy, `doveadm auth lookup`) or
 * `USER\t<id>\t<user>\t<info…>` (userdb lookup). `params` are the info fields in order;
 * `service` comes from `service=` (2.3) or `protocol=` (2.4), last wins, never empty.
 */
export interface LookupRequest {
  readonly _tag: "Pass" | "User"
  readonly id: number
  readonly user: string
  readonly service: string
  readonly params: ReadonlyArray<KeyValue>
}

/** `LIST\t<id>[\tuser=<mask>][\t…]`: user iteration. `userMask` is the `user=` value if any. */
export interface ListRequest {
  readonly _tag: "List"
  readonly id: number
  readonly userMask: string | undefined
  readonly params: ReadonlyArray<KeyValue>
}

/**
 * `REQUEST\t<id>\t<client-pid>\t<client-request-id>\t<cookie-hex>[\tsession_pid=<pid>][\trequest_auth_token]`:
 * a post-login process fetching the userdb reply for a finished login (docs/protocols.md §5.3).
 */
export interface MasterLoginRequest {
  readonly _tag: "Request"
  readonly id: number
  readonly clientPid: number
  readonly clientRequestId: number
  readonly cookie: string
  readonly sessionPid: number | undefined
  readonly requestAuthToken: boolean
  readonly params: ReadonlyArray<KeyValue>
}

/** `CACHE-FLUSH\t<id>[\t<user>…]` (no users = flush everything). */
export interface CacheFlushRequest {
  readonly _tag: "CacheFlush"
  readonly id: number
  readonly users: ReadonlyArray<string>
}

/** A line the real server would disconnect on (bad id, missing user or service, unknown command, too long). */
export interface InvalidRequest {
  readonly _tag: "Invalid"
  readonly reason: string
}

/** One decoded client → server line. */
export type MasterRequest =
  | VersionRequest
  | CpidRequest
  | LookupRequest
  | ListRequest
  | MasterLoginRequest
  | CacheFlushRequest
  | InvalidRequest

const invalid = (reason: string): InvalidRequest => ({ _tag: "Invalid", reason })

/** The value of the last field named one of `keys` ("" for a bare key), or undefined when none is. */
const lastValue = (fields: ReadonlyArray<KeyValue>, ...keys: ReadonlyArray<string>): string | undefined => {
  let value: string | undefined
  for (const kv of fields) if (keys.includes(kv.key)) value = kv.value ?? ""
  return value
}

const tooLong = (line: string): boolean =>
  line.length > AUTH_MASTER_MAX_LINE || (line.length * 3 > AUTH_MASTER_MAX_LINE && utf8Length(line) > AUTH_MASTER_MAX_LINE)

const decodeVersion = (args: ReadonlyArray<string>): VersionRequest | InvalidRequest => {
  const major = parseUint32(args[1])
  const minor = parseUint32(args[2])
  return major === undefined || minor === undefined
    ? invalid("VERSION: bad version numbers")
    : { _tag: "Version", major, minor }
}

const decodeLookup = (tag: "Pass" | "User", args: ReadonlyArray<string>): LookupRequest | InvalidRequest => {
  const name = tag.toUpperCase()
  const id = parseUint32(args[1])
  if (id === undefined) return invalid(`${name}: bad request id`)
  const user = args[2]
  if (user === undefined || user.length === 0) return invalid(`${name}: missing user`)
  const params = args.slice(3).map(parseKeyValue)
  const service = lastValue(params, "service", "protocol")
  if (service === undefined || service.length === 0) return invalid(`${name}: request without service`)
  return { _tag: tag, id, user, service, params }
}

/**
 * Decode one line sent **to** an auth-master/auth-userdb server (without its LF). Never throws.
 * Accepts every command; the userdb relay refuses all but `AuthMaster.USERDB_COMMANDS`; reject
 * {@link CpidRequest} on both socket kinds.
 */
export const decodeRequest = (line: string): MasterRequest => {
  if (tooLong(line)) return invalid(`line longer than ${AUTH_MASTER_MAX_LINE} bytes`)
  const args = splitLine(line)
  const cmd = args[0]!
  switch (cmd) {
    case "VERSION":
      return decodeVersion(args)
    case "CPID": {
      const pid = parseUint32(args[1])
      return pid === undefined ? invalid("CPID: bad pid") : { _tag: "Cpid", pid }
    }
    case "PASS":
      return decodeLookup("Pass", args)
    case "USER":
      return decodeLookup("User", args)
    case "LIST": {
      const id = parseUint32(args[1])
      if (id === undefined) return invalid("LIST: bad request id")
      const params = args.slice(2).map(parseKeyValue)
      return { _tag: "List", id, userMask: lastValue(params, "user"), params }
    }
    case "REQUEST": {
      const id = parseUint32(args[1])
      const clientPid = parseUint32(args[2])
      const clientRequestId = parseUint32(args[3])
      const cookie = args[4]
      if (id === undefined || clientPid === undefined || clientRequestId === undefined) {
        return invalid("REQUEST: bad numbers")
      }
      if (cookie === undefined || !/^[0-9a-fA-F]+$/.test(cookie)) return invalid("REQUEST: bad cookie")
      const params = args.slice(5).map(parseKeyValue)
      let sessionPid: number | undefined
      let requestAuthToken = false
      for (const kv of params) {
        if (kv.key === "session_pid") sessionPid = parseUint32(kv.value)
        else if (kv.key === "request_auth_token") requestAuthToken = true
      }
      return { _tag: "Request", id, clientPid, clientRequestId, cookie, sessionPid, requestAuthToken, params }
    }
    case "CACHE-FLUSH": {
      const id = parseUint32(args[1])
      if (id === undefined) return invalid("CACHE-FLUSH: bad request id")
      return { _tag: "CacheFlush", id, users: args.slice(2) }
    }
    default:
      return invalid(`unknown command ${JSON.stringify(cmd.slice(0, 40))}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Server → client (replies)
// ---------------------------------------------------------------------------------------------

/** `VERSION\t<major>\t<minor>` from the server. */
export interface VersionReply {
  readonly _tag: "Version"
  readonly major: number
  readonly minor: number
}

/** `SPID\t<pid>`: the auth server's PID. */
export interface SpidReply {
  readonly _tag: "Spid"
  readonly pid: number
}

/**
 * `PASS\t<id>\tuser=<user>[\t<fields…>]`: credentials lookup succeeded. `fields` are all fields
 * after the id (including `user=`), unescaped, in order; `user` is the first `user=` value.
 */
export interface PassReply {
  readonly _tag: "Pass"
  readonly id: number
  readonly user: string | undefined
  readonly fields: ReadonlyArray<KeyValue>
}

/** `USER\t<id>\t<user>[\t<userdb fields…>]`. */
export interface UserReply {
  readonly _tag: "User"
  readonly id: number
  readonly user: string
  readonly fields: ReadonlyArray<KeyValue>
}

/** `NOTFOUND\t<id>`: unknown user (LMTP: deliver locally). */
export interface NotFoundReply {
  readonly _tag: "NotFound"
  readonly id: number
}

/** `FAIL\t<id>[\treason=…][\t…]`: lookup failed (LMTP: 451). */
export interface FailReply {
  readonly _tag: "Fail"
  readonly id: number
  readonly reason: string | undefined
  readonly fields: ReadonlyArray<KeyValue>
}

/** `LIST\t<id>\t<user>`: one user of an iteration. */
export interface ListReply {
  readonly _tag: "List"
  readonly id: number
  readonly user: string
}

/** `DONE\t<id>\t` or `DONE\t<id>\tfail`: end of a LIST iteration. */
export interface DoneReply {
  readonly _tag: "Done"
  readonly id: number
  readonly failed: boolean
}

/** `OK\t<id>\t<count>`: CACHE-FLUSH answer (`count` of flushed entries). */
export interface OkReply {
  readonly _tag: "Ok"
  readonly id: number
  readonly count: number
}

/** A line that is none of the above or is malformed (`reason` for logs). Relays pass such lines through. */
export interface InvalidReply {
  readonly _tag: "Invalid"
  readonly reason: string
}

/** One decoded server → client line. */
export type MasterReply =
  | VersionReply
  | SpidReply
  | PassReply
  | UserReply
  | NotFoundReply
  | FailReply
  | ListReply
  | DoneReply
  | OkReply
  | InvalidReply

const invalidReply = (reason: string): InvalidReply => ({ _tag: "Invalid", reason })

/** Decode one line sent **by** an auth-master/auth-userdb server (without its LF). Never throws. */
export const decodeReply = (line: string): MasterReply => {
  if (tooLong(line)) return invalidReply(`line longer than ${AUTH_MASTER_MAX_LINE} bytes`)
  const args = splitLine(line)
  const cmd = args[0]!
  if (cmd === "VERSION") {
    const major = parseUint32(args[1])
    const minor = parseUint32(args[2])
    return major === undefined || minor === undefined
      ? invalidReply("VERSION: bad version numbers")
      : { _tag: "Version", major, minor }
  }
  if (cmd === "SPID") {
    const pid = parseUint32(args[1])
    return pid === undefined ? invalidReply("SPID: bad pid") : { _tag: "Spid", pid }
  }
  const id = parseUint32(args[1])
  switch (cmd) {
    case "PASS": {
      if (id === undefined) return invalidReply("PASS: bad id")
      const fields = args.slice(2).map(parseKeyValue)
      const user = fields.find((kv) => kv.key === "user")?.value
      return { _tag: "Pass", id, user, fields }
    }
    case "USER": {
      if (id === undefined) return invalidReply("USER: bad id")
      const user = args[2]
      if (user === undefined) return invalidReply("USER: missing user")
      return { _tag: "User", id, user, fields: args.slice(3).map(parseKeyValue) }
    }
    case "NOTFOUND":
      return id === undefined ? invalidReply("NOTFOUND: bad id") : { _tag: "NotFound", id }
    case "FAIL": {
      if (id === undefined) return invalidReply("FAIL: bad id")
      const fields = args.slice(2).map(parseKeyValue)
      return { _tag: "Fail", id, reason: lastValue(fields, "reason"), fields }
    }
    case "LIST": {
      if (id === undefined) return invalidReply("LIST: bad id")
      const user = args[2]
      return user === undefined ? invalidReply("LIST: missing user") : { _tag: "List", id, user }
    }
    case "DONE":
      return id === undefined ? invalidReply("DONE: bad id") : { _tag: "Done", id, failed: args[2] === "fail" }
    case "OK": {
      const count = parseUint32(args[2])
      return id === undefined || count === undefined ? invalidReply("OK: bad numbers") : { _tag: "Ok", id, count }
    }
    default:
      return invalidReply(`unknown reply ${JSON.stringify(cmd.slice(0, 40))}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------------------------

/** A field: `[key, value]`; `value === undefined` renders the bare key. */
export type Field = ProxyFields.Field

const checkId = (id: number): void => {
  if (!isUint32(id)) throw new RangeError(`bad auth-master request id ${id}`)
}

const { renderFields } = ProxyFields

/**
 * Server handshake for master/userdb sockets: `VERSION\t1\t<minor>\nSPID\t<spid>\n`
 * (2.3: minor 1; default {@link AUTH_MASTER_SERVER_MINOR}).
 *
 * @throws RangeError when spid is not a uint32 or minor not a non-negative integer.
 */
export const encodeHandshake = (spid: number, minor: number = AUTH_MASTER_SERVER_MINOR): string => {
  if (!isUint32(spid)) throw new RangeError(`bad SPID ${spid}`)
  if (!Number.isInteger(minor) || minor < 0) throw new RangeError(`bad minor version ${minor}`)
  return `VERSION\t${AUTH_MASTER_MAJOR}\t${minor}\nSPID\t${spid}\n`
}

/**
 * `PASS\t<id>\tuser=<user>[\t<fields…>]\n`. The first field **must** be `["user", <name>]`.
 * Not booleanised (unlike auth-client OK): values are rendered as given (`proxy=y` stays
 * `proxy=y`), `undefined` renders bare. PASS replies never carry `pass=` (docs/protocols.md §5.2) — not enforced.
 *
 * @throws RangeError on an id outside 0..4294967295, a missing leading `user`, or a bad key.
 */
export const encodePassReply = (id: number, fields: ReadonlyArray<Field>): string => {
  checkId(id)
  const first = fields[0]
  if (first === undefined || first[0] !== "user" || first[1] === undefined) {
    throw new RangeError("PASS reply must start with user=<name>")
  }
  return `PASS\t${id}${renderFields(fields)}\n`
}

/**
 * `USER\t<id>\t<user>[\t<fields…>]\n`.
 *
 * @throws RangeError on a bad id or key.
 */
export const encodeUserReply = (id: number, user: string, fields: ReadonlyArray<Field> = []): string => {
  checkId(id)
  return `USER\t${id}\t${escape(user)}${renderFields(fields)}\n`
}

/**
 * `NOTFOUND\t<id>\n`: unknown user (also USER_DISABLED and PASS_EXPIRED for PASS).
 *
 * @throws RangeError on a bad id.
 */
export const encodeNotFound = (id: number): string => {
  checkId(id)
  return `NOTFOUND\t${id}\n`
}

/**
 * `FAIL\t<id>[\treason=<text>]\n`: lookup failure (LMTP answers 451).
 *
 * @throws RangeError on a bad id.
 */
export const encodeFail = (id: number, reason?: string): string => {
  checkId(id)
  return reason === undefined ? `FAIL\t${id}\n` : `FAIL\t${id}\treason=${escape(reason)}\n`
}

/**
 * Client side: `VERSION\t1\t<minor>\n` (2.3 lib-auth sends minor 0, 2.4.1 sends 3).
 *
 * @throws RangeError when minor is not a non-negative integer.
 */
export const encodeClientVersion = (minor = 0): string => {
  if (!Number.isInteger(minor) || minor < 0) throw new RangeError(`bad minor version ${minor}`)
  return `VERSION\t${AUTH_MASTER_MAJOR}\t${minor}\n`
}

/**
 * Client side: `PASS\t<id>\t<user>\t<params…>\n` or `USER\t…` (params should include
 * `service=`/`protocol=`).
 *
 * @throws RangeError on a bad id or key.
 */
export const encodeLookupRequest = (
  command: "PASS" | "USER",
  id: number,
  user: string,
  params: ReadonlyArray<Field>
): string => {
  checkId(id)
  return `${command}\t${id}\t${escape(user)}${renderFields(params)}\n`
}
