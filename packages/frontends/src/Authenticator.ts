/**
 * How the standalone auth server decides whether typed credentials are good, as a plug-in
 * interface. Built in:
 *
 * - {@link nopassword}: accepts any password. Only safe when the login is then **proxied** and the
 *   backend checks the password itself (the Lua director's `nopassword` mode). The auth server
 *   therefore refuses auth-only clients (Postfix, Exim: `service=smtp` / `nologin`) in this mode.
 * - {@link masterPassword}: one shared secret for every user (`password=<master>`), compared in
 *   constant time (SHA-256 digests of both sides through `crypto.timingSafeEqual`, so neither the
 *   content nor the length leaks through timing). The secret stays `Redacted` and is never logged.
 *
 * A PAM (or any other) backend implements {@link Authenticator}: `authenticate` resolves with
 * `Accepted` / `Rejected` / `Unavailable` and should never reject (a rejection counts as
 * `Unavailable`, i.e. `temp_fail`, never as a wrong password).
 *
 * @since 0.1.0
 */
import { Redacted } from "effect"
import * as crypto from "node:crypto"

/** What an authenticator gets for one login. The password is `Redacted`: reveal it only to check it. */
export interface AuthenticationRequest {
  /** The user logging in (authzid for a master-user login, else authcid). */
  readonly user: string
  /** The authenticating identity (SASL authcid). */
  readonly authcid: string
  /** The requested identity (SASL authzid), `""` when none. */
  readonly authzid: string
  /** authcid when it differs from a non-empty authzid (a master-user login), else undefined. */
  readonly masterUser: string | undefined
  readonly password: Redacted.Redacted<string>
  /** SASL mechanism (`PLAIN`, `LOGIN`). */
  readonly mechanism: string
  /** Dovecot `service=` / `protocol=` (`imap`, `pop3`, `smtp`, `doveadm`, …). */
  readonly service: string
  readonly remoteIp: string | undefined
  readonly localIp: string | undefined
  /** The client connection is TLS-secured (or local). */
  readonly secured: boolean
}

/** The outcome of {@link Authenticator.authenticate}. */
export type AuthenticationResult =
  /** Good credentials. `user` optionally replaces the login name (canonical form, e.g. from PAM). */
  | { readonly _tag: "Accepted"; readonly user?: string | undefined }
  /** Wrong password, unknown user, account refused: answered with a plain FAIL after the failure delay. */
  | { readonly _tag: "Rejected"; readonly detail: string }
  /** The check itself failed (PAM down, …): answered with `code=temp_fail`, never as a wrong password. */
  | { readonly _tag: "Unavailable"; readonly detail: string }

/** A credential checker for the standalone auth server. */
export interface Authenticator {
  /** Short name for logs (`nopassword`, `password`, `pam`). */
  readonly name: string
  /**
   * Whether `Accepted` means the password was really verified. When false (nopassword) only
   * proxied logins are served: the backend verifies the password.
   */
  readonly verifiesPassword: boolean
  readonly authenticate: (request: AuthenticationRequest) => Promise<AuthenticationResult>
  /**
   * The same decision made at once, for checks that need no I/O (`nopassword`, `password=`): the
   * auth server then answers a routed login within the socket read that brought it. Must agree
   * with {@link authenticate}; an authenticator that waits on anything leaves it out.
   */
  readonly check?: (request: AuthenticationRequest) => AuthenticationResult
}

const ACCEPTED: AuthenticationResult = { _tag: "Accepted" }

/** Accept any password; the backend checks it (proxied logins only). */
export const nopassword: Authenticator = {
  name: "nopassword",
  verifiesPassword: false,
  authenticate: () => Promise.resolve(ACCEPTED),
  check: () => ACCEPTED
}

const digest = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest()

/** Constant-time equality of two strings (equal-length SHA-256 digests through `timingSafeEqual`). */
export const constantTimeEquals = (a: string, b: string): boolean => crypto.timingSafeEqual(digest(a), digest(b))

/**
 * One shared password for every user (`password=<master>` mode).
 *
 * @throws RangeError when the secret is empty (that would accept an empty password).
 */
export const masterPassword = (secret: Redacted.Redacted<string>): Authenticator => {
  if (Redacted.value(secret).length === 0) throw new RangeError("the master password must not be empty")
  const expected = digest(Redacted.value(secret))
  const check = (request: AuthenticationRequest): AuthenticationResult =>
    crypto.timingSafeEqual(digest(Redacted.value(request.password)), expected)
      ? ACCEPTED
      : { _tag: "Rejected", detail: "password mismatch" }
  return {
    name: "password",
    verifiesPassword: true,
    authenticate: (request) => Promise.resolve(check(request)),
    check
  }
}
