/**
 * Standalone auth-client server: doveroute answers `AUTH` itself (`docs/protocols.md` §2–§4).
 * Clients: Dovecot 2.3/2.4 login processes (`executable = imap-login <socket>` /
 * `login_socket_path`), `doveadm auth test -a <socket>`, Postfix (`smtpd_sasl_type = dovecot`)
 * and Exim.
 *
 * Wire behaviour:
 * - The whole handshake goes out on accept, in Dovecot 2.3's order (VERSION 1.2, one MECH line per
 *   mechanism, SPID, CUID, COOKIE, DONE): 2.3 login processes, doveadm, Postfix and Exim (which
 *   reads up to DONE before writing) all accept it, and 2.4 clients too. Clients may send VERSION
 *   first, pipeline VERSION+CPID+AUTH in one write, and announce minor 0–4. SPID is our PID, the
 *   COOKIE 16 random bytes: a proxied login never uses them.
 * - PLAIN and LOGIN, with or without an initial response (`resp=`), `CONT` exchanges, `CANCEL`
 *   (answered with `CANCELLED` when the client announced minor ≥ 4), `service=` or `protocol=`.
 *   Several requests may be in flight on one connection; answers go out by id, each line whole.
 * - A line over 16 KiB closes that connection only (as the real server does).
 *
 * Refused requests: an `AUTH` whose mechanism, parameters (`service`, `rip`, `lip`, …),
 * `forward_fields` or `resp` hold a control character (C0, DEL) or invalid UTF-8 is answered at once
 * with `FAIL\t<id>\treason=doveroute: invalid request: <field> …` (FieldCheck); so is a user name
 * (authcid/authzid) with one, after the failure delay. None of them is routed.
 *
 * Logging: every authentication failure is one Info line `message="auth failed"` with Dovecot's
 * auth log keys `service`, `mechanism`, `rip`, `lip` (`real_rip`/`real_lip` when they differ),
 * `user` when usable, and `reason`; `config/fail2ban/doveroute.conf` matches it. Refused values
 * are never logged.
 *
 * Decision for one login (after the SASL exchange produced credentials):
 * 1. A password with 0x01/TAB/CR/LF is refused (Dovecot treats it as an unknown user).
 * 2. The {@link Authenticator} checks it (`nopassword`, `password=<master>`, later PAM). A refusal
 *    is a plain `FAIL\t<id>\tuser=<u>` sent after the failure delay; nothing is routed.
 * 3. Auth-only clients (`nologin`, which Postfix and Exim send, or `service=smtp`, any case) get
 *    `OK\t<id>\tuser=<u>` and nothing else — but only when the authenticator verifies passwords.
 *    In `nopassword` mode only the {@link NOPASSWORD_SERVICES} without `nologin` are served; every
 *    other request is refused with {@link REASON_UNCHECKED_SERVICE}, since nothing would check the password.
 * 4. Everything else is routed (`Destination.ts`): `OK\t<id>\tuser=<u>\tproxy\thost=<IP>[\tport=<n>]\tpass=<typed>`
 *    (+ `master=<authcid>` for a master-user login). `proxy` is always the bare token (2.3 login
 *    processes need it); `host` is always an IP ({@link resolveBackend}); `port` comes from the
 *    configured {@link BackendPorts}.
 * 5. Any routing failure (store down, no backend, DNS) is `FAIL\t<id>\tuser=<u>\tcode=temp_fail`,
 *    at once: never a password failure.
 * 6. `proxy_maybe` (the default proxy flag of the mapping strategy) is resolved like Dovecot's auth:
 *    when the backend IP equals the connection's `real_lip`/`lip` and the port is absent or equals
 *    `lport`, the user's backend is this very server. A standalone server cannot serve that local
 *    login (it would need Dovecot's auth-master `REQUEST` round trip), so it answers
 *    `FAIL … code=temp_fail reason=…` and logs a warning. With `proxy`/`none` no check is made.
 *
 * Limits: a connection may have at most `maxRequests` requests in its table (including those
 * waiting for the client's CONT); one more `AUTH` is answered at once with
 * `FAIL\t<id>\tcode=temp_fail\treason=` {@link REASON_TOO_MANY_REQUESTS} and the connection stays.
 *
 * Failure delay: every authentication failure (wrong password, malformed SASL data) is answered
 * after `failureDelay` (default 2 s, like Dovecot's `auth_failure_delay`); a `CANCEL` during the
 * delay drops the answer. Temporary failures are answered at once. On top of it, a remote IP that
 * keeps failing waits before its next attempt is checked ({@link AuthPenalty}: 4, 8, 15 s, as
 * Dovecot's auth penalty), so parallel connections from one address do not multiply its guesses
 * for long. `failureDelay` 0 turns both off.
 *
 * Secrets: typed passwords and the master password are `Redacted` and never logged; they reach the
 * wire only inside `pass=` on the connection that typed them.
 *
 * @since 0.1.0
 */
import {
  AuthClient,
  AuthClientSession,
  FieldCheck,
  IdTable,
  LineSplitter,
  LineTooLongError,
  Sasl
} from "@doveroute/protocol"
import type { ProxyFlag } from "@doveroute/routing"
import { Duration, Effect, Layer, Redacted } from "effect"
import * as crypto from "node:crypto"
import type * as net from "node:net"
import { type AuthenticationRequest, type AuthenticationResult, type Authenticator, nopassword } from "./Authenticator.js"
import { AuthPenalty, penaltyIdent } from "./AuthPenalty.js"
import type { Resolver } from "./BackendAddress.js"
import { type BackendPorts, NO_PORTS } from "./BackendPort.js"
import { authServerFields, type Destination, destination, type DestinationContext, destinationNow } from "./Destination.js"
import { type ListenerLog, runtimeLog } from "./ListenerLog.js"
import { Lookup, type LookupService } from "./Lookup.js"
import { ReplyBatch } from "./ReplyBatch.js"
import { type ConnectionHandler, type ConnectionLimits, DEFAULT_MAX_REQUESTS, listen, type SocketPermissions } from "./UnixListener.js"

/** Services whose clients only authenticate (no proxying): Postfix and Exim say `service=smtp`. Lower case. */
export const AUTH_ONLY_SERVICES: ReadonlySet<string> = new Set(["smtp"])

/**
 * The services served in `nopassword` mode, an allow-list (lower case, compared case-insensitively):
 * Dovecot login processes that proxy the login with the typed password to a backend, which checks
 * it — `imap`, `pop3`, `submission` and `sieve` (managesieve-login). Anything else (`smtp`,
 * `smtpd`, `doveadm`, `lmtp`, which never authenticates with a password, an unknown name) is
 * refused with {@link REASON_UNCHECKED_SERVICE}: nothing would check its password.
 */
export const NOPASSWORD_SERVICES: ReadonlySet<string> = new Set(["imap", "pop3", "submission", "sieve"])

/** `reason=` of the FAIL for a service or auth-only client that `nopassword` mode does not serve. */
export const REASON_UNCHECKED_SERVICE =
  "doveroute: in nopassword mode only proxied imap, pop3, submission and sieve logins are served (nothing would check this password)"

/** Default failure delay, as Dovecot's `auth_failure_delay`. */
export const DEFAULT_FAILURE_DELAY: Duration.Duration = Duration.seconds(2)

/** `reason=` of the FAIL sent when the user's backend is this server (`proxy_maybe` "self"). */
export const REASON_SELF =
  "doveroute: the user's backend is this server; a standalone auth socket cannot serve local logins"

/** `reason=` of the FAIL for SASL data that is not a valid message of its mechanism. */
export const REASON_MALFORMED = "doveroute: malformed authentication data"

/**
 * The request's log annotations, Dovecot's auth log keys: `service`, `mechanism`, `rip`, `lip`
 * (and `real_rip`/`real_lip` when they differ). A value holding a control character or invalid
 * UTF-8 is left out: it would corrupt the log line (such a request is refused anyway).
 */
export const requestLogFields = (req: AuthClient.AuthLine): Record<string, string> => {
  const out: Record<string, string> = {}
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined && value.length > 0 && FieldCheck.fieldProblem(value) === undefined) out[key] = value
  }
  put("service", req.service)
  put("mechanism", req.mech)
  put("rip", req.rip)
  put("lip", req.lip)
  if (req.realRip !== req.rip) put("real_rip", req.realRip)
  if (req.realLip !== req.lip) put("real_lip", req.realLip)
  return out
}

/** `reason=` of the FAIL for an AUTH over the per-connection request limit. */
export const REASON_TOO_MANY_REQUESTS = "doveroute: too many authentication requests in progress on this connection"

/** Auth server settings. */
export interface AuthServerOptions extends SocketPermissions, ConnectionLimits {
  readonly path: string
  /** Default {@link nopassword}. */
  readonly authenticator?: Authenticator
  /** `proxy_maybe` enables the "self" check; `proxy` and `none` always proxy. Default `proxy`. */
  readonly proxyFlag?: ProxyFlag
  /** Backend ports (`port=`); default none. */
  readonly ports?: BackendPorts
  /** Delay before an authentication failure is answered; default {@link DEFAULT_FAILURE_DELAY}. */
  readonly failureDelay?: Duration.DurationInput
  /** Host name resolution for backends known by name (default: the system resolver). */
  readonly resolver?: Resolver
  readonly resolveTimeoutMs?: number
}

/** Everything a connection needs, shared by all connections of one listener. */
export interface AuthServerContext extends DestinationContext {
  readonly authenticator: Authenticator
  readonly selfCheck: boolean
  readonly failureDelayMs: number
  /** The per-IP auth penalty; `undefined` when failures are not delayed at all. */
  readonly penalty: AuthPenalty | undefined
  /** Requests one connection may have in its table at once (more: temp_fail). */
  readonly maxRequests: number
  /** Next CUID (connection counter, starting at 1). */
  readonly nextCuid: () => number
}

const MECHANISMS = AuthClient.DEFAULT_MECHANISMS.filter((m) => Sasl.SUPPORTED_MECHANISMS.includes(m.name))

/** One in-flight request. Identity matters: a CANCEL followed by a reused id makes a new state. */
interface RequestState {
  readonly request: AuthClient.AuthLine
  readonly mech: Sasl.SaslMechanism
  timer: NodeJS.Timeout | undefined
  /** doveroute is working on it (authenticating, routing, failure delay), not waiting for the client. */
  busy: boolean
  /** The penalty key of its `rip` (none: `no-penalty`, no rip, or penalties off) and its count at the start. */
  readonly ident: string | undefined
  penaltyAtStart: number
}

/**
 * What the authenticator sees of one login. The password is made `Redacted` only when an
 * authenticator asks for it (nopassword never does): `Redacted.make` registers every value, a cost
 * per login on the hot path.
 */
class LoginRequest implements AuthenticationRequest {
  readonly authcid: string
  readonly authzid: string
  readonly mechanism: string
  readonly service: string
  readonly remoteIp: string | undefined
  readonly localIp: string | undefined
  readonly secured: boolean
  // true private fields: not own enumerable properties, so neither JSON nor util.inspect (nor a
  // spread) of the request shows the typed password
  #redacted: Redacted.Redacted<string> | undefined
  readonly #typed: string

  constructor(readonly user: string, creds: Sasl.Credentials, readonly masterUser: string | undefined, req: AuthClient.AuthLine) {
    this.authcid = creds.authcid
    this.authzid = creds.authzid
    this.#typed = creds.password
    this.mechanism = req.mech
    this.service = req.service
    this.remoteIp = req.realRip
    this.localIp = req.realLip
    this.secured = req.secured
  }

  get password(): Redacted.Redacted<string> {
    return this.#redacted ??= Redacted.make(this.#typed)
  }
}

/** One auth-client connection. */
export class AuthConnection implements ConnectionHandler {
  private readonly splitter = new LineSplitter(AuthClient.AUTH_CLIENT_MAX_LINE)
  private readonly session = new AuthClientSession({ mechanisms: MECHANISMS.map((m) => m.name) })
  private readonly requests = new IdTable<RequestState>()
  private closed = false
  private overLimitLogged = false
  /** Replies made while a socket read is handled, written together at its end. */
  private readonly replies = new ReplyBatch((text) => {
    if (!this.closed && !this.socket.destroyed) this.socket.write(text)
  })

  constructor(private readonly socket: net.Socket, private readonly ctx: AuthServerContext) {
    socket.write(AuthClient.encodeHandshake({
      mechanisms: MECHANISMS,
      spid: process.pid,
      cuid: ctx.nextCuid(),
      cookie: crypto.randomBytes(16).toString("hex")
    }))
  }

  /** Requests doveroute still has to answer (shutdown waits for them; not those waiting for a client CONT). */
  inFlight = (): number => {
    let n = 0
    for (const r of this.requests.values()) if (r.busy) n++
    return n
  }

  onClose = (): void => {
    this.closed = true
    for (const r of this.requests.values()) clearTimeout(r.timer)
    this.requests.clear()
  }

  onData = (chunk: Buffer): void => {
    this.replies.begin()
    try {
      this.splitter.push(chunk, this.onLine)
    } catch (e) {
      if (e instanceof LineTooLongError) {
        this.ctx.log("Warning", "auth client sent a line over the limit; closing its connection", { limit: e.limit })
        return this.close()
      }
      throw e
    } finally {
      this.replies.end()
    }
  }

  /** Close after writing the replies this socket read already made (their requests are finished). */
  private close(): void {
    this.replies.flush()
    this.onClose()
    this.socket.destroy()
  }

  private write(line: string): void {
    if (this.closed || this.socket.destroyed) return
    if (!this.replies.add(line)) this.socket.write(line)
  }

  private onLine = (line: string): void => {
    if (this.closed) return
    const d = this.session.handleLine(line)
    switch (d._tag) {
      case "Ignore":
        return
      case "Disconnect":
        this.ctx.log("Debug", "auth client protocol error; closing its connection", { reason: d.reason })
        return this.close()
      case "Reply":
        return this.write(d.line)
      case "Refuse":
        this.ctx.log("Info", "auth failed", { ...requestLogFields(d.request), reason: FieldCheck.describeBadField(d.bad) })
        return this.write(d.line)
      case "Abort": {
        const r = this.requests.get(d.id)
        if (r !== undefined) clearTimeout(r.timer)
        this.requests.delete(d.id)
        if (d.line !== undefined) this.write(d.line)
        return
      }
      case "StartAuth": {
        if (this.requests.size >= this.ctx.maxRequests) {
          this.session.finish(d.request.id)
          if (!this.overLimitLogged) {
            this.overLimitLogged = true
            this.ctx.log("Warning", "too many requests in progress on one auth connection; answering temp_fail", {
              limit: this.ctx.maxRequests
            })
          }
          return this.write(AuthClient.encodeFail(d.request.id, { code: "temp_fail", reason: REASON_TOO_MANY_REQUESTS }))
        }
        const mech = Sasl.createMechanism(d.request.mech)
        if (mech === undefined) {
          // the session only admits announced mechanisms; keep the table consistent anyway
          this.session.finish(d.request.id)
          return this.write(AuthClient.encodeFail(d.request.id))
        }
        const ident = this.ctx.penalty === undefined || d.request.noPenalty ? undefined : penaltyIdent(d.request.rip)
        const state: RequestState = { request: d.request, mech, timer: undefined, busy: false, ident, penaltyAtStart: 0 }
        this.requests.set(d.request.id, state)
        return this.step(state, mech.start(d.request.resp))
      }
      case "Continue": {
        const state = this.requests.get(d.id)
        if (state === undefined) return
        return this.step(state, state.mech.continue(d.data))
      }
    }
  }

  private current(state: RequestState): boolean {
    return !this.closed && this.requests.get(state.request.id) === state
  }

  private step(state: RequestState, s: Sasl.SaslStep): void {
    switch (s._tag) {
      case "Challenge": {
        const line = this.session.cont(state.request.id, s.challenge)
        if (line !== undefined) this.write(line)
        return
      }
      case "SaslError":
        this.ctx.log("Info", "auth failed", { ...requestLogFields(state.request), reason: s.detail })
        this.penalise(state, "", "")
        return this.failLater(
          state,
          s.reason === "invalid_base64"
            ? AuthClient.encodeFail(state.request.id, { code: "invalid_base64", reason: AuthClient.REASON_BAD_BASE64_CONT })
            : AuthClient.encodeFail(state.request.id, { reason: REASON_MALFORMED })
        )
      case "Credentials":
        return this.afterPenalty(state, s)
    }
  }

  /** Check the credentials once the request's IP has waited out its penalty (a CANCEL meanwhile drops it). */
  private afterPenalty(state: RequestState, creds: Sasl.Credentials): void {
    const penalty = this.ctx.penalty
    if (penalty === undefined || state.ident === undefined) return this.authenticate(state, creds)
    state.penaltyAtStart = penalty.current(state.ident)
    const wait = AuthPenalty.delayMs(state.penaltyAtStart)
    if (wait === 0) return this.authenticate(state, creds)
    state.busy = true
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (this.current(state)) this.authenticate(state, creds)
    }, wait)
  }

  /** Count a failure against the request's IP. */
  private penalise(state: RequestState, user: string, password: string): void {
    if (state.ident !== undefined) this.ctx.penalty?.failed(state.ident, state.penaltyAtStart, user, password)
  }

  /** Answer now (success or temporary failure). */
  private answer(state: RequestState, line: string): void {
    if (!this.current(state)) return
    this.requests.delete(state.request.id)
    if (this.session.finish(state.request.id)) this.write(line)
  }

  /** Answer an authentication failure after the failure delay (a CANCEL meanwhile drops it). */
  private failLater(state: RequestState, line: string): void {
    if (!this.current(state)) return
    state.busy = true
    if (this.ctx.failureDelayMs <= 0) return this.answer(state, line)
    state.timer = setTimeout(() => {
      state.timer = undefined
      this.answer(state, line)
    }, this.ctx.failureDelayMs)
  }

  private tempFail(state: RequestState, user: string, reason?: string): void {
    this.answer(state, AuthClient.encodeFail(state.request.id, { user, code: "temp_fail", reason }))
  }

  private authenticate(state: RequestState, creds: Sasl.Credentials): void {
    const req = state.request
    state.busy = true
    const { user, masterUser } = Sasl.loginIdentity(creds)
    const badName = FieldCheck.firstBadField([["user", creds.authcid], ["authzid", creds.authzid]])
    if (badName !== undefined) {
      const reason = FieldCheck.describeBadField(badName)
      this.ctx.log("Info", "auth failed", { ...requestLogFields(req), reason })
      this.penalise(state, "", "")
      return this.failLater(state, AuthClient.encodeFail(req.id, { reason: `${AuthClient.REASON_INVALID_FIELD} ${reason}` }))
    }
    const base = () => ({ ...requestLogFields(req), user, ...(masterUser !== undefined ? { master_user: masterUser } : {}) })
    if (Sasl.passwordHasIllegalChars(creds.password)) {
      this.ctx.log("Info", "auth failed", { ...base(), reason: "password contains TAB/CR/LF/0x01" })
      this.penalise(state, user, creds.password)
      return this.failLater(state, AuthClient.encodeFail(req.id, { user }))
    }
    const service = req.service.toLowerCase()
    const authOnly = req.nologin || AUTH_ONLY_SERVICES.has(service)
    const authenticator = this.ctx.authenticator
    if (!authenticator.verifiesPassword && (authOnly || !NOPASSWORD_SERVICES.has(service))) {
      this.ctx.log(
        "Warning",
        authOnly
          ? "refusing an auth-only client: in nopassword mode nothing checks the password (use auth_mode=password)"
          : "refusing a service not proxied to a password-checking backend: in nopassword mode nothing checks its password (use auth_mode=password)",
        base()
      )
      return this.failLater(state, AuthClient.encodeFail(req.id, { user, reason: REASON_UNCHECKED_SERVICE }))
    }
    const typed = creds.password
    const request = new LoginRequest(user, creds, masterUser, req)
    const checked = (res: AuthenticationResult): void => {
      if (!this.current(state)) return
      switch (res._tag) {
        case "Rejected":
          this.ctx.log("Info", "auth failed", { ...base(), authenticator: authenticator.name, reason: res.detail })
          this.penalise(state, user, creds.password)
          return this.failLater(state, AuthClient.encodeFail(req.id, { user }))
        case "Unavailable":
          this.ctx.log("Warning", "authenticator unavailable, answering temp_fail", {
            ...base(),
            authenticator: authenticator.name,
            detail: res.detail
          })
          return this.tempFail(state, user)
        case "Accepted": {
          if (state.ident !== undefined) this.ctx.penalty?.succeeded(state.ident)
          const finalUser = res.user !== undefined && res.user.length > 0 ? res.user : user
          if (authOnly) return this.answer(state, AuthClient.encodeOk(req.id, [["user", finalUser]]))
          return this.route(state, finalUser, typed, masterUser)
        }
      }
    }
    // a check that needs no I/O answers within this socket read (most logins: nopassword, password=)
    let now: AuthenticationResult | undefined
    try {
      now = authenticator.check?.(request)
    } catch (e) {
      now = { _tag: "Unavailable", detail: e instanceof Error ? e.message : String(e) }
    }
    if (now !== undefined) {
      try {
        return checked(now)
      } catch {
        if (this.current(state)) return this.tempFail(state, user)
        return
      }
    }
    authenticator.authenticate(request)
      .catch((e: unknown): AuthenticationResult => ({ _tag: "Unavailable", detail: e instanceof Error ? e.message : String(e) }))
      .then(checked)
      .catch(() => {
        if (this.current(state)) this.tempFail(state, user)
      })
  }

  /** Route an authenticated login; `typed` (the typed password) goes only into this reply's `pass=`. */
  private route(state: RequestState, user: string, typed: string, masterUser: string | undefined): void {
    const req = state.request
    const query = {
      user,
      frontend: "auth",
      protocol: req.service,
      lip: req.realLip,
      lport: req.lport,
      selfCheck: this.ctx.selfCheck,
      wanted: () => this.current(state)
    }
    const routed = (d: Destination): void => {
      if (!this.current(state)) return
      switch (d._tag) {
        case "Gone":
          return
        case "TempFail":
          return this.tempFail(state, user)
        case "Self":
          this.ctx.log("Warning", "user's backend is this server (proxy_maybe): a standalone auth socket cannot serve local logins", {
            user,
            backend_id: d.backend.id,
            host: d.ip,
            lip: req.realLip
          })
          return this.tempFail(state, user, REASON_SELF)
        case "Proxy": {
          const fields: Array<AuthClient.Field> = [["user", user], ...authServerFields(d), ["pass", typed]]
          if (masterUser !== undefined) fields.push(["master", masterUser])
          this.ctx.log("Debug", "auth ok, proxying", { user, service: req.service, host: d.ip, port: d.port ?? "-" })
          return this.answer(state, AuthClient.encodeOk(req.id, fields))
        }
      }
    }
    // a user in the routing table whose backend has a known IP is answered at once
    const now = destinationNow(this.ctx, query)
    if (now !== undefined) return routed(now)
    destination(this.ctx, query).then(routed).catch(() => {
      if (this.current(state)) this.tempFail(state, user)
    })
  }
}

/** Build the shared connection context (exported for tests that drive connections directly). */
export const makeContext = (lookup: LookupService, options: Omit<AuthServerOptions, "path">, log: ListenerLog): AuthServerContext => {
  let cuid = 0
  const failureDelayMs = Duration.toMillis(Duration.decode(options.failureDelay ?? DEFAULT_FAILURE_DELAY))
  return {
    lookup,
    authenticator: options.authenticator ?? nopassword,
    selfCheck: options.proxyFlag === "proxy_maybe",
    ports: options.ports ?? NO_PORTS,
    failureDelayMs,
    penalty: failureDelayMs > 0 ? new AuthPenalty() : undefined,
    resolver: options.resolver,
    resolveTimeoutMs: options.resolveTimeoutMs,
    log,
    maxRequests: Math.max(1, options.maxRequests ?? DEFAULT_MAX_REQUESTS),
    nextCuid: () => (cuid = cuid >= 0xffffffff ? 1 : cuid + 1)
  }
}

/** The standalone auth listener as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const layer = (options: AuthServerOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const lookup = yield* Lookup
      const ctx = makeContext(lookup, options, yield* runtimeLog("auth"))
      yield* listen({ ...options, name: "auth" }, (socket) => new AuthConnection(socket, ctx))
      yield* Effect.logInfo("auth server ready").pipe(
        Effect.annotateLogs({ auth_mode: ctx.authenticator.name, failure_delay_ms: ctx.failureDelayMs, self_check: ctx.selfCheck })
      )
    })
  )
