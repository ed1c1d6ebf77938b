/**
 * The backend health checker's settings (`health` section), live-reloadable on SIGHUP:
 *
 * ```json
 * "health": { "enabled": true, "protocol": "imap", "tls": "starttls", "port": 143,
 *             "tls_verify": true, "tls_ca_file": "/etc/doveroute/backend-ca.pem",
 *             "login": { "user": "healthcheck@example.com", "password_file": "/etc/doveroute/health-password" },
 *             "interval": "10 seconds", "timeout": "3 seconds", "fall": 3, "rise": 2 }
 * ```
 * - `protocol`: `imap`, `pop3`, `lmtp` or `submission` (SMTP submission: `220`, EHLO, QUIT).
 * - `tls`: `none` (default), `implicit` (TLS from the first byte: imaps 993, pop3s 995,
 *   submissions 465) or `starttls` (IMAP `STARTTLS`, POP3 `STLS`, SMTP/LMTP `STARTTLS` after
 *   EHLO/LHLO). The certificate is verified (`tls_verify`, default true) against the system CAs or
 *   `tls_ca_file` (PEM, read at start and on every reload) and the backend's `hostname` (also sent
 *   as SNI); the connection goes to `hostip` when set.
 * - `port`: the port for backends without their own `check_port` (store column, `doveroute
 *   backend check-port`); default the protocol's port for the `tls` mode ({@link defaultPort}).
 * - `login`: an optional login probe with a test account (IMAP `LOGIN`, POP3 `USER`/`PASS`,
 *   submission `AUTH PLAIN`; not LMTP). The password comes from `login.password_file`, the systemd
 *   credential `health_login_password` or `login.password` (Secrets.ts) and is never logged. A
 *   login over a connection without TLS is refused unless `login.allow_plaintext` is true.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import * as fs from "node:fs"
import { CREDENTIALS, type Secret, secretConfig } from "./Secrets.js"
import { positiveInt } from "./SettingValues.js"

export const HEALTH_PROTOCOLS = ["imap", "pop3", "lmtp", "submission"] as const
export type HealthProtocol = (typeof HEALTH_PROTOCOLS)[number]

export const HEALTH_TLS_MODES = ["none", "implicit", "starttls"] as const
export type HealthTls = (typeof HEALTH_TLS_MODES)[number]

/** The login probe's test account. */
export interface HealthLogin {
  readonly user: string
  readonly password: Redacted.Redacted<string>
}

/** The backend health checker (`health` section). */
export interface HealthSettings {
  readonly enabled: boolean
  readonly protocol: HealthProtocol
  /** Port for backends without a `check_port`; undefined = {@link defaultPort}. */
  readonly port: number | undefined
  readonly tls: HealthTls
  /** Verify the backend's certificate (chain and name); default true. */
  readonly tlsVerify: boolean
  /** `tls_ca_file`: trusted CAs (PEM) instead of the system's; its content is `tlsCa`. */
  readonly tlsCaFile: string | undefined
  readonly tlsCa: string | undefined
  /** The login probe; undefined = greeting (and TLS) only. */
  readonly login: HealthLogin | undefined
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  /** Consecutive failures before an up backend (state 0) is marked down (state 3). */
  readonly fall: number
  /** Consecutive successes before a backend the checker took down (state 3) is marked up. */
  readonly rise: number
}

/** Well-known ports per protocol, without TLS (or STARTTLS) and with implicit TLS (none for LMTP). */
export const DEFAULT_PORTS: Readonly<Record<HealthProtocol, { readonly plain: number; readonly implicit: number | undefined }>> = {
  imap: { plain: 143, implicit: 993 },
  pop3: { plain: 110, implicit: 995 },
  lmtp: { plain: 24, implicit: undefined },
  submission: { plain: 587, implicit: 465 }
}

/** The port checked without `health.port` or a backend `check_port`. */
export const defaultPort = (protocol: HealthProtocol, tls: HealthTls): number | undefined =>
  tls === "implicit" ? DEFAULT_PORTS[protocol].implicit : DEFAULT_PORTS[protocol].plain

/** The port to check for a backend: its `check_port`, else `health.port`, else the default. */
export const checkPort = (s: HealthSettings, backendPort: number | null | undefined): number | undefined =>
  backendPort ?? s.port ?? defaultPort(s.protocol, s.tls)

const invalid = (path: ReadonlyArray<string>, message: string) => Either.left(ConfigError.InvalidData(["health", ...path], message))

const readCa = (file: string): Either.Either<string, ConfigError.ConfigError> => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (e) {
    return invalid(["tls_ca_file"], `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  return text.includes("-----BEGIN CERTIFICATE-----")
    ? Either.right(text)
    : invalid(["tls_ca_file"], `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
}

/**
 * Why a login probe password cannot be sent (`undefined`: it can): CR and LF would end the IMAP /
 * POP3 command line early (the rest read as a command of its own), NUL would split the SASL PLAIN
 * message, and an empty password is no login. The reason never quotes the password.
 */
export const unfitPassword = (password: string): string | undefined =>
  password.length === 0
    ? "is empty"
    : /[\r\n\u0000]/.test(password)
    ? "holds a CR, LF or NUL character (a login probe sends it on one command line)"
    : undefined

const loginConfig = Config.nested(
  Config.all({
    user: Config.option(Config.string("user")),
    password: secretConfig("password", "health.login.password", CREDENTIALS["health.login.password"]),
    allowPlaintext: Config.boolean("allow_plaintext").pipe(Config.withDefault(false))
  }),
  "login"
)

/** The `health` section, checked as a whole. Also returns the login password's {@link Secret} (for its warning). */
export const healthConfig: Config.Config<HealthSettings & { readonly secret?: Secret }> = Config.nested(
  Config.all({
    enabled: Config.boolean("enabled").pipe(Config.withDefault(false)),
    protocol: Config.literal(...HEALTH_PROTOCOLS)("protocol").pipe(Config.withDefault("imap" as HealthProtocol)),
    port: Config.option(Config.integer("port").pipe(
      Config.validate({ message: "expected a port 1-65535", validation: (n) => n >= 1 && n <= 65535 })
    )),
    tls: Config.literal(...HEALTH_TLS_MODES)("tls").pipe(Config.withDefault("none" as HealthTls)),
    tlsVerify: Config.boolean("tls_verify").pipe(Config.withDefault(true)),
    tlsCaFile: Config.option(Config.string("tls_ca_file")),
    login: loginConfig,
    interval: Config.duration("interval").pipe(Config.withDefault(Duration.seconds(10))),
    timeout: Config.duration("timeout").pipe(Config.withDefault(Duration.seconds(3))),
    fall: positiveInt("fall", 3),
    rise: positiveInt("rise", 2)
  }),
  "health"
).pipe(
  Config.mapOrFail((h): Either.Either<HealthSettings & { readonly secret?: Secret }, ConfigError.ConfigError> => {
    const port = Option.getOrUndefined(h.port)
    if (h.tls === "implicit" && port === undefined && defaultPort(h.protocol, h.tls) === undefined) {
      return invalid(["port"], `${h.protocol} has no standard port for implicit TLS; set health.port`)
    }
    let tlsCa: string | undefined
    if (Option.isSome(h.tlsCaFile)) {
      if (h.tls === "none") return invalid(["tls_ca_file"], "health.tls_ca_file is set but health.tls is none; set tls to implicit or starttls")
      const ca = readCa(h.tlsCaFile.value)
      if (Either.isLeft(ca)) return Either.left(ca.left)
      tlsCa = ca.right
    }
    const user = Option.getOrUndefined(h.login.user)
    const secret = Option.getOrUndefined(h.login.password)
    let login: HealthLogin | undefined
    if (user !== undefined) {
      if (user.length === 0 || /[\s\u0000-\u001f"\\]/.test(user)) {
        return invalid(["login", "user"], "health.login.user must be a non-empty name without spaces, quotes, backslashes or control characters")
      }
      if (h.protocol === "lmtp") return invalid(["login"], "LMTP has no login; drop health.login or check imap, pop3 or submission")
      if (secret === undefined) {
        return invalid(["login", "password"], "health.login.user needs a password (health.login.password_file, the systemd credential health_login_password or health.login.password)")
      }
      const unfit = unfitPassword(Redacted.value(secret.value))
      if (unfit !== undefined) return invalid(["login", "password"], `${secret.source}: the password ${unfit}`)
      if (h.tls === "none" && !h.login.allowPlaintext) {
        return invalid(["login"], "a login probe without TLS sends the password in clear text; set health.tls to starttls or implicit (or health.login.allow_plaintext to true on a trusted network)")
      }
      login = { user, password: secret.value }
    } else if (secret !== undefined && !secret.source.startsWith("systemd credential")) {
      return invalid(["login", "user"], `${secret.source} is set but health.login.user is not`)
    }
    return Either.right({
      enabled: h.enabled,
      protocol: h.protocol,
      port,
      tls: h.tls,
      tlsVerify: h.tlsVerify,
      tlsCaFile: Option.getOrUndefined(h.tlsCaFile),
      tlsCa,
      login,
      interval: h.interval,
      timeout: h.timeout,
      fall: h.fall,
      rise: h.rise,
      ...(login !== undefined && secret !== undefined ? { secret } : {})
    })
  })
)

/** Log fields of health settings (never the password). */
export const describe = (s: HealthSettings) => ({
  health_protocol: s.protocol,
  health_port: s.port ?? defaultPort(s.protocol, s.tls),
  health_tls: s.tls,
  ...(s.tls !== "none" ? { health_tls_verify: s.tlsVerify, health_tls_ca_file: s.tlsCaFile ?? "system" } : {}),
  ...(s.login !== undefined ? { health_login: s.login.user } : {}),
  health_interval: Duration.format(s.interval),
  health_timeout: Duration.format(s.timeout),
  health_fall: s.fall,
  health_rise: s.rise
})
