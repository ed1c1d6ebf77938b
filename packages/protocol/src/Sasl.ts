/**
 * Server side of the SASL mechanisms doveroute implements itself: PLAIN (RFC 4616) and LOGIN
 * (the non-standard, widely used "Username:"/"Password:" exchange), plus strict base64.
 *
 * Behaviour follows Dovecot 2.3.19 / 2.4.1 `src/auth/mech-plain.c`, `mech-login.c`, `mech.c` as
 * described in `docs/protocols.md` §2.8 (our own code; no Dovecot source is copied):
 * - PLAIN: `authzid NUL authcid NUL password`, exactly two NULs, non-empty authcid. Without an
 *   initial response the server sends an empty challenge.
 * - LOGIN: challenges are base64 `Username:` (`VXNlcm5hbWU6`) and `Password:` (`UGFzc3dvcmQ6`);
 *   a non-empty initial response is the user name and skips the first prompt.
 *
 * All data crossing these functions is base64 **text** as carried in `resp=` and `CONT` lines.
 * Decoded names and passwords must be valid UTF-8 (otherwise `malformed`) because doveroute later
 * writes them into text protocol lines (`pass=`). Pure; nothing here throws.
 *
 * @since 0.1.0
 */
import { isUtf8 } from "node:buffer"

/** Base64 of `Username:`, the first LOGIN challenge. */
export const LOGIN_USERNAME_CHALLENGE = "VXNlcm5hbWU6"
/** Base64 of `Password:`, the second LOGIN challenge. */
export const LOGIN_PASSWORD_CHALLENGE = "UGFzc3dvcmQ6"

const B64_BODY = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Strict base64 check (RFC 4648 alphabet, padding required, length a multiple of 4, `=` only at
 * the end). The single string `=` is accepted as the empty value (SASL's "empty response" form,
 * which Dovecot accepts in `resp=` and `CONT`). The empty string is valid (zero bytes).
 * Non-zero trailing bits (e.g. `AB==`) are accepted, like Dovecot's decoder does.
 */
export const isValidBase64 = (text: string): boolean =>
  text === "=" || (text.length % 4 === 0 && B64_BODY.test(text))

/**
 * Decode strict base64 (see {@link isValidBase64}) to bytes. Returns `undefined` for invalid
 * input — Node's `Buffer.from(…, "base64")` alone would silently skip bad characters.
 */
export const decodeBase64 = (text: string): Uint8Array | undefined => {
  if (!isValidBase64(text)) return undefined
  if (text === "=" || text.length === 0) return new Uint8Array(0)
  return Buffer.from(text, "base64")
}

/** Encode bytes, or a string as UTF-8, to padded base64. */
export const encodeBase64 = (data: Uint8Array | string): string =>
  (typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    .toString("base64")

const utf8Fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Decode UTF-8 strictly; `undefined` when the bytes are not valid UTF-8. */
const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8Fatal.decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * Why a SASL exchange failed.
 * - `invalid_base64`: the client's data was not valid base64 (Dovecot answers
 *   `FAIL\t<id>\tcode=invalid_base64\t…`).
 * - `malformed`: valid base64 but not a valid message for the mechanism (wrong NUL count, empty
 *   user, NUL inside a LOGIN field, invalid UTF-8, a step out of order). Dovecot answers a plain
 *   `FAIL` without a code.
 */
export type SaslErrorReason = "invalid_base64" | "malformed"

/** A failed SASL step. `detail` is for logs only; never show it to the end user. */
export interface SaslError {
  readonly _tag: "SaslError"
  readonly reason: SaslErrorReason
  readonly detail: string
}

/**
 * Credentials extracted by PLAIN or LOGIN. `authcid` is the authenticating user; `authzid` is the
 * requested identity (`""` when absent; LOGIN always gives `""`). All strings are UTF-8 decoded.
 */
export interface Credentials {
  readonly _tag: "Credentials"
  readonly authzid: string
  readonly authcid: string
  readonly password: string
}

/** The server sends `CONT\t<id>\t<challenge>`; `challenge` is base64 text (may be `""`). */
export interface Challenge {
  readonly _tag: "Challenge"
  readonly challenge: string
}

/** Result of one mechanism step. */
export type SaslStep = Challenge | Credentials | SaslError

const saslError = (reason: SaslErrorReason, detail: string): SaslError => ({ _tag: "SaslError", reason, detail })

/**
 * Decode PLAIN message bytes `authzid NUL authcid NUL password` (RFC 4616).
 * Errors (`malformed`): not exactly two NULs, empty authcid, any part not valid UTF-8.
 */
export const decodePlainBytes = (bytes: Uint8Array): Credentials | SaslError => {
  const first = bytes.indexOf(0)
  const second = first === -1 ? -1 : bytes.indexOf(0, first + 1)
  if (first === -1 || second === -1 || bytes.indexOf(0, second + 1) !== -1) {
    return saslError("malformed", "PLAIN needs exactly two NUL separators")
  }
  // one validity check for the whole message (NUL is a character of its own, so each part is
  // valid when the whole is), then the three parts decoded without copies
  if (!isUtf8(bytes)) return saslError("malformed", "PLAIN field is not valid UTF-8")
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const authzid = buf.toString("utf8", 0, first)
  const authcid = buf.toString("utf8", first + 1, second)
  const password = buf.toString("utf8", second + 1)
  if (authcid.length === 0) return saslError("malformed", "PLAIN authcid is empty")
  return { _tag: "Credentials", authzid, authcid, password }
}

/**
 * Decode a PLAIN response from its base64 text (as in `resp=` or `CONT`).
 * Errors: `invalid_base64` when the text is not strict base64, else as {@link decodePlainBytes}.
 */
export const decodePlain = (base64: string): Credentials | SaslError => {
  const bytes = decodeBase64(base64)
  return bytes === undefined ? saslError("invalid_base64", "invalid base64 data") : decodePlainBytes(bytes)
}

/** Encode PLAIN credentials to base64 text (for test clients). */
export const encodePlain = (authzid: string, authcid: string, password: string): string =>
  encodeBase64(`${authzid}\0${authcid}\0${password}`)

/**
 * Who logs in. A non-empty `authzid` different from `authcid` is a master-user login: the session
 * user is `authzid` and `masterUser` is `authcid` (Dovecot `login_user`). Otherwise the user is
 * `authcid` and `masterUser` is `undefined`.
 */
export const loginIdentity = (creds: Credentials): { readonly user: string; readonly masterUser: string | undefined } =>
  creds.authzid.length > 0 && creds.authzid !== creds.authcid
    ? { user: creds.authzid, masterUser: creds.authcid }
    : { user: creds.authcid, masterUser: undefined }

/**
 * True when a plaintext password contains a byte Dovecot refuses (0x01, TAB, CR, LF; Dovecot
 * `password_has_illegal_chars`, 2.3 and 2.4). Such logins must be answered as an unknown user
 * (plain FAIL), never looked up.
 */
export const passwordHasIllegalChars = (password: string): boolean => /[\x01\t\r\n]/.test(password)

/**
 * One server-side SASL exchange for one request. Call {@link SaslMechanism.start} once with the
 * initial response (`undefined` when the client sent none), then {@link SaslMechanism.continue}
 * with each `CONT` data while the previous step was a `Challenge`. After `Credentials` or
 * `SaslError` the exchange is over and further calls return `SaslError` `malformed`.
 */
export interface SaslMechanism {
  /** Upper-case mechanism name (`PLAIN`, `LOGIN`). */
  readonly name: string
  /** First step. `initial` is base64 text or `undefined` when no initial response was sent. */
  start(initial: string | undefined): SaslStep
  /** Next step with the client's `CONT` data (base64 text). */
  continue(data: string): SaslStep
}

/** PLAIN step machine: no initial response → empty challenge → one `CONT` with the message. */
export class PlainMechanism implements SaslMechanism {
  readonly name = "PLAIN"
  private state: "new" | "waiting" | "done" = "new"

  start(initial: string | undefined): SaslStep {
    if (this.state !== "new") return this.finish(saslError("malformed", "PLAIN already started"))
    if (initial === undefined) {
      this.state = "waiting"
      return { _tag: "Challenge", challenge: "" }
    }
    return this.finish(decodePlain(initial))
  }

  continue(data: string): SaslStep {
    if (this.state !== "waiting") return this.finish(saslError("malformed", "unexpected PLAIN continuation"))
    return this.finish(decodePlain(data))
  }

  private finish(step: Credentials | SaslError): SaslStep {
    this.state = "done"
    return step
  }
}

/**
 * LOGIN step machine. No (or an empty) initial response → `Username:` challenge; the user name
 * (non-empty, no NUL, UTF-8) → `Password:` challenge; the password (no NUL, UTF-8) → Credentials
 * with `authzid = ""`.
 */
export class LoginMechanism implements SaslMechanism {
  readonly name = "LOGIN"
  private state: "new" | "username" | "password" | "done" = "new"
  private user = ""

  start(initial: string | undefined): SaslStep {
    if (this.state !== "new") return this.fail("malformed", "LOGIN already started")
    this.state = "username"
    if (initial === undefined || initial === "" || initial === "=") {
      return { _tag: "Challenge", challenge: LOGIN_USERNAME_CHALLENGE }
    }
    return this.continue(initial)
  }

  continue(data: string): SaslStep {
    if (this.state !== "username" && this.state !== "password") {
      return this.fail("malformed", "unexpected LOGIN continuation")
    }
    const bytes = decodeBase64(data)
    if (bytes === undefined) return this.fail("invalid_base64", "invalid base64 data")
    if (bytes.indexOf(0) !== -1) return this.fail("malformed", "NUL in LOGIN data")
    const text = decodeUtf8(bytes)
    if (text === undefined) return this.fail("malformed", "LOGIN data is not valid UTF-8")
    if (this.state === "username") {
      if (text.length === 0) return this.fail("malformed", "empty LOGIN user name")
      this.user = text
      this.state = "password"
      return { _tag: "Challenge", challenge: LOGIN_PASSWORD_CHALLENGE }
    }
    this.state = "done"
    return { _tag: "Credentials", authzid: "", authcid: this.user, password: text }
  }

  private fail(reason: SaslErrorReason, detail: string): SaslError {
    this.state = "done"
    return saslError(reason, detail)
  }
}

/** Mechanism names doveroute can serve itself, in the order they are announced. */
export const SUPPORTED_MECHANISMS: ReadonlyArray<string> = ["PLAIN", "LOGIN"]

/**
 * A fresh step machine for `name` (case-insensitive: `plain`, `PLAIN`, `login`, `LOGIN`), or
 * `undefined` for a mechanism doveroute does not implement.
 */
export const createMechanism = (name: string): SaslMechanism | undefined => {
  switch (name.toUpperCase()) {
    case "PLAIN":
      return new PlainMechanism()
    case "LOGIN":
      return new LoginMechanism()
    default:
      return undefined
  }
}
