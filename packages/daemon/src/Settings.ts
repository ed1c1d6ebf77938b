/**
 * doveroute's settings: one schema read through Effect `Config` from, in order of precedence,
 * command-line flags, environment variables (`DOVEROUTE_<NAME>`, e.g. `DOVEROUTE_STORE`,
 * `DOVEROUTE_DICT_SOCKET`, `DOVEROUTE_EXTRA_FIELDS=nopassword,port=143`), the JSON config file,
 * and defaults.
 *
 * Config file (JSON, snake_case keys, nested sections):
 * ```json
 * { "store": "sqlite:/var/lib/doveroute/doveroute.db", "strategy": "mapping",
 *   "proxy_flag": "proxy", "extra_fields": ["nopassword"],
 *   "port": ["143", "pop3=110", "lmtp=24"],
 *   "dict": { "socket": "/run/doveroute/dict.sock", "mode": "0660", "group": "dovecot" },
 *   "auth": { "socket": "/run/doveroute/auth.sock", "mode": "0660", "group": "dovenull",
 *             "auth_mode": "password", "password_file": "/etc/doveroute/auth-password",
 *             "failure_delay": "2 seconds" },
 *   "login_relay": { "socket": "/run/dovecot/login/doveroute", "mode": "0666",
 *                    "upstream": "/run/dovecot/login/login" },
 *   "userdb_relay": { "socket": "/run/dovecot/doveroute-userdb", "mode": "0660", "group": "dovecot",
 *                     "upstream": "/run/dovecot/auth-master" },
 *   "http": { "listen": "/run/doveroute/http.sock", "mode": "0660", "group": "dovecot" } }
 * ```
 * `auth.auth_mode` is `nopassword`, `password` (with `auth.password`) or `pam` (with
 * `auth.pam_service`, default `dovecot`). `http.listen` is a UNIX socket path (then
 * `http.mode`/`owner`/`group`), or `127.0.0.1:PORT` / `[::1]:PORT` with `http.token`; other
 * addresses are refused.
 *
 * Listener limits (top level, for every listener; docs/operations.md): `max_clients` (concurrent
 * connections per listener, default 10000), `max_requests_per_client` (requests worked on at once
 * per connection, default 1000), `line_timeout` (an unfinished line closes the connection after
 * it, default 30 s; 0 = off), `idle_timeout` (default 0 = off). `max_connections` is the SQL pool.
 *
 * `nopassword` in `extra_fields` needs `proxy_flag` `proxy`; other flags are refused (see
 * `uncheckedLoginRisk` in @doveroute/routing): a local login that no one checks.
 *
 * Secrets (`store`, `store_password`, `auth.password`, `http.token`) are `Redacted` values, never
 * logged; each can also come from a `*_file` key or a systemd credential (Secrets.ts).
 * `--password` on the command line is visible to every local user in the process list.
 *
 * @since 0.1.0
 */
import {
  DOWN_POLICIES,
  defaultProxyFlag,
  uncheckedLoginRisk,
  type DownPolicy,
  type ExtraField,
  parseExtraField,
  PROXY_FLAGS,
  type ProxyFlag,
  STRATEGIES,
  type Strategy
} from "@doveroute/routing"
// the modules themselves, not the package index: settings are loaded by every admin command, which
// runs no front-end
import * as BackendPort from "@doveroute/frontends/BackendPort"
import * as HttpListen from "@doveroute/frontends/HttpListen"
import { parseStoreUrl, type StoreUrl } from "@doveroute/store"
import { Config, ConfigError, ConfigProvider, Data, Duration, Effect, Either, Option, Redacted } from "effect"
import { type RoutingSettings, routingSettingsConfig } from "./RoutingSettings.js"
import { configFileExposure, CREDENTIALS, inlineSecretKeys, type Secret, secretConfig } from "./Secrets.js"
import { storeWithPassword } from "./StoreSecret.js"
import * as SettingValues from "./SettingValues.js"
import * as StrictSettings from "./StrictSettings.js"
import * as fs from "node:fs"
import * as path from "node:path"

/** Socket file settings of one listener. */
export interface SocketSettings {
  readonly path: string
  readonly mode: number
  readonly owner: string | undefined
  readonly group: string | undefined
}

/** How the standalone auth server checks passwords. */
export type AuthMode = "nopassword" | "password" | "pam"
export const AUTH_MODES: ReadonlyArray<AuthMode> = ["nopassword", "password", "pam"]

/** Default PAM service name (`/etc/pam.d/<service>`): the one Dovecot's own PAM passdb uses. */
export const DEFAULT_PAM_SERVICE = "dovecot"

/** The standalone auth-client server (`auth` section). */
export interface AuthSettings extends SocketSettings {
  /** `nopassword` (default without a password: the backend checks it) or `password` (one master password). */
  readonly authMode: AuthMode
  /** The master password (`password` mode only). */
  readonly password: Redacted.Redacted<string> | undefined
  /** PAM service name (`pam` mode; default {@link DEFAULT_PAM_SERVICE}). */
  readonly pamService: string
  /** Delay before an authentication failure is answered (default 2 s, like Dovecot). */
  readonly failureDelay: Duration.Duration
}

/** The HTTP route endpoint (`http` section): loopback `host:port` or a UNIX socket (with its permissions). */
export interface HttpSettings {
  readonly listen: HttpListen.HttpListen
  /** Shared token callers must send (`Authorization: Bearer`); required for TCP. */
  readonly token: Redacted.Redacted<string> | undefined
  readonly mode: number
  readonly owner: string | undefined
  readonly group: string | undefined
}

/** A relay listener (`login_relay`, `userdb_relay` sections): our socket and Dovecot's. */
export interface RelaySettings extends SocketSettings {
  readonly upstream: string
}

/** Validated settings. */
export interface Settings {
  readonly store: StoreUrl
  readonly strategy: Strategy
  readonly downPolicy: DownPolicy
  readonly proxyFlag: ProxyFlag
  readonly extraFields: ReadonlyArray<ExtraField>
  /** Apply migrations when serving (default true). */
  readonly migrate: boolean
  readonly queryTimeout: Duration.Duration
  /** The longest one routing decision that misses the lookup cache may take (all its statements); 0 = none. */
  readonly lookupTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  /** SQL connection pool size (`max_connections`); not a listener limit (see {@link ListenerLimits}). */
  readonly maxConnections: number
  /** Listener limits: `max_clients`, `max_requests_per_client`, `line_timeout`, `idle_timeout`. */
  readonly limits: ListenerLimits
  readonly dict: SocketSettings | undefined
  readonly auth: AuthSettings | undefined
  readonly loginRelay: RelaySettings | undefined
  readonly userdbRelay: RelaySettings | undefined
  /** HTTP route endpoint for 2.4 Lua passdb chains (`lua/http-route.lua`). */
  readonly http: HttpSettings | undefined
  /** Backend ports added as `port=` by the auth server and the relays (`port`: `N` / `<protocol>=N`). */
  readonly ports: BackendPort.BackendPorts
  readonly logLevel: "debug" | "info" | "warning" | "error"
  readonly logFormat: "logfmt" | "json"
  /** Cache, placement, normalisation and kick settings (RoutingSettings.ts). */
  readonly routing: RoutingSettings
  /** Backend health checker (`health` section; off by default). */
  readonly health: HealthSettings
  /** Prometheus metrics endpoint (`metrics.listen` `host:port`, loopback unless `metrics.allow_remote`); undefined = off. */
  readonly metrics: MetricsSettings | undefined
  /** Non-fatal secret problems to log at start (a group-readable secret file); never a value. */
  readonly secretWarnings?: ReadonlyArray<string>
}

/** The backend health checker (`health` section): banner checks, live-reloadable on SIGHUP. */
export interface HealthSettings {
  readonly enabled: boolean
  readonly protocol: "imap" | "pop3" | "lmtp"
  /** Port to check; undefined = the protocol's default (143, 110, 24). */
  readonly port: number | undefined
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  /** Consecutive failures before an up backend (state 0) is marked down (state 3). */
  readonly fall: number
  /** Consecutive successes before a backend the checker took down (state 3) is marked up. */
  readonly rise: number
}

/** The metrics endpoint (`metrics` section). */
export interface MetricsSettings {
  readonly host: string
  readonly port: number
}

/**
 * Parse `metrics.listen`: `127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT`; any other address
 * only with `allowRemote` (`metrics.allow_remote: true`, the admin's explicit choice).
 */
export const parseMetricsListen = (spec: string, allowRemote = false): MetricsSettings => {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec.trim())
  if (m === null) throw new Error(`metrics.listen must be HOST:PORT (loopback), got ${JSON.stringify(spec)}`)
  const host = (m[1] ?? m[2])!
  const port = Number(m[3])
  if (port < 1 || port > 65535) throw new Error(`metrics.listen: bad port ${m[3]}`)
  if (!allowRemote && !(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1" || host === "localhost")) {
    throw new Error(
      `metrics.listen must be a loopback address (127.0.0.0/8, [::1], localhost), got ${host}: ` +
        "set metrics.allow_remote to true to serve metrics on another address"
    )
  }
  return { host, port }
}

/** Limits applied to every listener (docs/operations.md). */
export interface ListenerLimits {
  /** Concurrent client connections per listener (`max_clients`); more are closed at once. */
  readonly maxClients: number
  /** Requests doveroute works on at once for one connection (`max_requests_per_client`). */
  readonly maxRequestsPerClient: number
  /** An unfinished line older than this closes the connection (`line_timeout`); zero = off. */
  readonly lineTimeout: Duration.Duration
  /** A connection with nothing in flight that sent nothing for this long is closed (`idle_timeout`); zero = off. */
  readonly idleTimeout: Duration.Duration
}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be at least 1`, validation: (n: number) => n >= 1 })
  )

const limitsConfig: Config.Config<ListenerLimits> = Config.all({
  maxClients: positiveInt("max_clients", 10_000),
  maxRequestsPerClient: positiveInt("max_requests_per_client", 1000),
  lineTimeout: Config.duration("line_timeout").pipe(Config.withDefault(Duration.seconds(30))),
  idleTimeout: Config.duration("idle_timeout").pipe(Config.withDefault(Duration.zero))
})

/** The default embedded store. */
export const DEFAULT_STORE = "sqlite:/var/lib/doveroute/doveroute.db"

/** A settings problem, with an operator-readable message. */
export class SettingsError extends Data.TaggedError("SettingsError")<{
  readonly reason: "ConfigFile" | "Invalid" | "UnknownKey"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

const parseMode = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault("0660"),
    Config.mapOrFail((s) => Either.mapLeft(SettingValues.check(SettingValues.SocketMode, s), (m) => ConfigError.InvalidData([name], m)))
  )

const socketFields = {
  path: Config.option(Config.string("socket")),
  mode: parseMode("mode"),
  owner: Config.option(Config.string("owner")),
  group: Config.option(Config.string("group"))
}

const toSocket = (
  s: { readonly path: Option.Option<string>; readonly mode: number; readonly owner: Option.Option<string>; readonly group: Option.Option<string> }
): SocketSettings | undefined =>
  Option.isNone(s.path) ? undefined : {
    path: s.path.value,
    mode: s.mode,
    owner: Option.getOrUndefined(s.owner),
    group: Option.getOrUndefined(s.group)
  }

const socketConfig = (section: string) => Config.nested(Config.all(socketFields), section).pipe(Config.map(toSocket))

const authConfig = Config.nested(
  Config.all({
    ...socketFields,
    authMode: Config.option(Config.literal(...AUTH_MODES)("auth_mode")),
    password: secretConfig("password", "auth.password", CREDENTIALS["auth.password"]),
    pamService: Config.string("pam_service").pipe(Config.withDefault(DEFAULT_PAM_SERVICE)),
    failureDelay: Config.duration("failure_delay").pipe(Config.withDefault(Duration.seconds(2)))
  }),
  "auth"
).pipe(
  Config.mapOrFail((a): Either.Either<(AuthSettings & { readonly secret?: Secret }) | undefined, ConfigError.ConfigError> => {
    const socket = toSocket(a)
    const password = Option.getOrUndefined(a.password)?.value
    const mode = Option.getOrElse(a.authMode, (): AuthMode => (password !== undefined ? "password" : "nopassword"))
    if (mode === "password" && password === undefined) {
      return Either.left(ConfigError.InvalidData(["auth", "password"], "auth_mode=password needs a password (auth.password_file, the systemd credential auth_password, DOVEROUTE_AUTH_PASSWORD or auth.password in the config file)"))
    }
    if (mode === "pam" && password !== undefined) {
      return Either.left(ConfigError.InvalidData(["auth", "auth_mode"], "a password is set but auth_mode is pam (PAM checks the passwords); drop one of them"))
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(a.pamService)) {
      return Either.left(ConfigError.InvalidData(["auth", "pam_service"], `invalid PAM service name ${JSON.stringify(a.pamService)}`))
    }
    if (password !== undefined && Redacted.value(password).length === 0) {
      return Either.left(ConfigError.InvalidData(["auth", "password"], "the master password must not be empty"))
    }
    if (mode === "nopassword" && password !== undefined) {
      return Either.left(ConfigError.InvalidData(["auth", "auth_mode"], "a password is set but auth_mode is nopassword; drop one of them"))
    }
    if (socket === undefined) return Either.right(undefined)
    return Either.right({
      ...socket,
      authMode: mode,
      password: mode === "password" ? password : undefined,
      pamService: a.pamService,
      failureDelay: a.failureDelay,
      ...(Option.isSome(a.password) ? { secret: a.password.value } : {})
    })
  })
)

const httpConfig = Config.nested(
  Config.all({
    listen: Config.option(Config.string("listen")),
    mode: parseMode("mode"),
    owner: Config.option(Config.string("owner")),
    group: Config.option(Config.string("group")),
    token: secretConfig("token", "http.token", CREDENTIALS["http.token"])
  }),
  "http"
).pipe(
  Config.mapOrFail((h): Either.Either<(HttpSettings & { readonly secret?: Secret }) | undefined, ConfigError.ConfigError> => {
    if (Option.isNone(h.listen)) return Either.right(undefined)
    let listen: HttpListen.HttpListen
    try {
      listen = HttpListen.parseHttpListen(h.listen.value)
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["http", "listen"], (e as Error).message))
    }
    if (listen._tag === "Tcp" && Option.isNone(h.token)) {
      return Either.left(ConfigError.InvalidData(["http", "token"], HttpListen.TCP_NEEDS_TOKEN))
    }
    return Either.right({
      listen,
      mode: h.mode,
      owner: Option.getOrUndefined(h.owner),
      group: Option.getOrUndefined(h.group),
      token: Option.getOrUndefined(h.token)?.value,
      ...(Option.isSome(h.token) ? { secret: h.token.value } : {})
    })
  })
)

const relayConfig = (section: string, dovecotSocket: string) =>
  Config.nested(Config.all({ ...socketFields, upstream: Config.option(Config.string("upstream")) }), section).pipe(
    Config.mapOrFail((r): Either.Either<RelaySettings | undefined, ConfigError.ConfigError> => {
      const socket = toSocket(r)
      if (socket === undefined && Option.isNone(r.upstream)) return Either.right(undefined)
      if (socket === undefined) {
        return Either.left(ConfigError.InvalidData([section, "socket"], `${section}.upstream is set but ${section}.socket is not`))
      }
      if (Option.isNone(r.upstream)) {
        return Either.left(ConfigError.InvalidData([section, "upstream"], `${section}.socket needs ${section}.upstream (Dovecot's ${dovecotSocket})`))
      }
      return Either.right({ ...socket, upstream: r.upstream.value })
    })
  )

const portsConfig = Config.array(Config.string(), "port").pipe(
  Config.withDefault([] as Array<string>),
  Config.mapOrFail((specs) => {
    try {
      return Either.right(BackendPort.parseBackendPorts(specs))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["port"], (e as Error).message))
    }
  })
)

const storeConfig = Config.all({
  url: secretConfig("store", "store", CREDENTIALS.store),
  password: secretConfig("store_password", "store_password", CREDENTIALS.store_password),
  group: Config.option(Config.string("store_group"))
}).pipe(
  Config.mapOrFail((s): Either.Either<{ readonly url: StoreUrl; readonly secrets: ReadonlyArray<Secret> }, ConfigError.ConfigError> => {
    try {
      const raw = Option.match(s.url, { onNone: () => DEFAULT_STORE, onSome: (u) => Redacted.value(u.value) })
      const url = Option.isSome(s.password) ? storeWithPassword(raw, s.password.value.value) : raw
      const secrets = [...Option.toArray(s.url), ...Option.toArray(s.password)]
      return Either.right({ url: withStoreGroup(parseStoreUrl(url), Option.getOrUndefined(s.group)), secrets })
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["store"], (e as Error).message))
    }
  })
)

const extraFieldsConfig = Config.array(Config.string(), "extra_fields").pipe(
  Config.withDefault([] as Array<string>),
  Config.mapOrFail((specs) => {
    try {
      // ConfigProvider.fromJson renders an empty JSON array as the single value "<nil>"
      return Either.right(specs.filter((s) => s.length > 0 && s !== "<nil>").map(parseExtraField))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["extra_fields"], (e as Error).message))
    }
  })
)

const healthConfig: Config.Config<HealthSettings> = Config.nested(
  Config.all({
    enabled: Config.boolean("enabled").pipe(Config.withDefault(false)),
    protocol: Config.literal("imap", "pop3", "lmtp")("protocol").pipe(Config.withDefault("imap" as const)),
    port: Config.option(Config.integer("port").pipe(
      Config.validate({ message: "expected a port 1-65535", validation: (n) => n >= 1 && n <= 65535 })
    )),
    interval: Config.duration("interval").pipe(Config.withDefault(Duration.seconds(10))),
    timeout: Config.duration("timeout").pipe(Config.withDefault(Duration.seconds(3))),
    fall: positiveInt("fall", 3),
    rise: positiveInt("rise", 2)
  }),
  "health"
).pipe(Config.map((h) => ({ ...h, port: Option.getOrUndefined(h.port) })))

const metricsConfig = Config.nested(
  Config.all({
    listen: Config.option(Config.string("listen")),
    allowRemote: Config.boolean("allow_remote").pipe(Config.withDefault(false))
  }),
  "metrics"
).pipe(
  Config.mapOrFail(({ allowRemote, listen: l }): Either.Either<MetricsSettings | undefined, ConfigError.ConfigError> => {
    if (Option.isNone(l)) return Either.right(undefined)
    try {
      return Either.right(parseMetricsListen(l.value, allowRemote))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["metrics", "listen"], (e as Error).message))
    }
  })
)

/** The settings schema as an Effect `Config`. */
export const settingsConfig: Config.Config<Settings> = Config.all({
  store: storeConfig,
  strategy: Config.literal(...STRATEGIES)("strategy").pipe(Config.withDefault("mapping" as Strategy)),
  downPolicy: Config.literal(...DOWN_POLICIES)("down_policy").pipe(Config.withDefault("keep" as DownPolicy)),
  proxyFlag: Config.option(Config.literal(...PROXY_FLAGS)("proxy_flag")),
  extraFields: extraFieldsConfig,
  migrate: Config.boolean("migrate").pipe(Config.withDefault(true)),
  queryTimeout: Config.duration("query_timeout").pipe(Config.withDefault(Duration.seconds(5))),
  lookupTimeout: Config.duration("lookup_timeout").pipe(Config.withDefault(Duration.seconds(10))),
  connectTimeout: Config.duration("connect_timeout").pipe(Config.withDefault(Duration.seconds(5))),
  maxConnections: Config.integer("max_connections").pipe(Config.withDefault(10)),
  limits: limitsConfig,
  dict: socketConfig("dict"),
  auth: authConfig,
  loginRelay: relayConfig("login_relay", "login socket (<base_dir>/login/login)"),
  userdbRelay: relayConfig("userdb_relay", "auth-userdb socket (<base_dir>/auth-userdb)"),
  http: httpConfig,
  ports: portsConfig,
  logLevel: Config.literal("debug", "info", "warning", "error")("log_level").pipe(Config.withDefault("info" as const)),
  logFormat: Config.literal("logfmt", "json")("log_format").pipe(Config.withDefault("logfmt" as const)),
  routing: routingSettingsConfig,
  health: healthConfig,
  metrics: metricsConfig
}).pipe(
  Config.map((s): Settings => {
    const secrets = [...s.store.secrets, s.auth?.secret, s.http?.secret]
    return {
      ...s,
      store: s.store.url,
      auth: s.auth === undefined ? undefined : withoutSecret(s.auth),
      http: s.http === undefined ? undefined : withoutSecret(s.http),
      proxyFlag: Option.getOrElse(s.proxyFlag, () => defaultProxyFlag(s.strategy)),
      secretWarnings: secrets.flatMap((x) => (x?.warning === undefined ? [] : [x.warning]))
    }
  }),
  Config.mapOrFail((s) => {
    const clash = socketPathClash(s)
    return clash === undefined ? Either.right(s) : Either.left(ConfigError.InvalidData([], clash))
  }),
  Config.mapOrFail((s) => {
    const risk = uncheckedLoginRisk(s.proxyFlag, s.extraFields)
    return risk === undefined ? Either.right(s) : Either.left(ConfigError.InvalidData(["extra_fields"], risk))
  })
)

/** `store_group` on an SQLite store (group of the files it creates); refused for other stores. */
const withStoreGroup = (url: StoreUrl, group: string | undefined): StoreUrl => {
  if (group === undefined) return url
  if (url._tag !== "Sqlite") throw new Error("store_group applies to an SQLite store only")
  return { ...url, group }
}

const withoutSecret = <A extends { readonly secret?: Secret }>(a: A): Omit<A, "secret"> => {
  const { secret: _secret, ...rest } = a
  return rest
}

/**
 * The first UNIX socket path given to two of our listeners, or given as one of our listeners and
 * as a relay's upstream (Dovecot's socket), as a message; undefined when every path is distinct.
 */
export const socketPathClash = (s: Pick<Settings, "dict" | "auth" | "loginRelay" | "userdbRelay" | "http">): string | undefined => {
  const ours: Array<readonly [string, string]> = []
  if (s.dict !== undefined) ours.push(["dict.socket", s.dict.path])
  if (s.auth !== undefined) ours.push(["auth.socket", s.auth.path])
  if (s.loginRelay !== undefined) ours.push(["login_relay.socket", s.loginRelay.path])
  if (s.userdbRelay !== undefined) ours.push(["userdb_relay.socket", s.userdbRelay.path])
  if (s.http !== undefined && s.http.listen._tag === "Unix") ours.push(["http.listen", s.http.listen.path])
  const upstreams: Array<readonly [string, string]> = []
  if (s.loginRelay !== undefined) upstreams.push(["login_relay.upstream", s.loginRelay.upstream])
  if (s.userdbRelay !== undefined) upstreams.push(["userdb_relay.upstream", s.userdbRelay.upstream])
  const seen = new Map<string, string>()
  for (const [key, p] of ours) {
    const abs = path.resolve(p)
    const other = seen.get(abs)
    if (other !== undefined) return `${other} and ${key} name the same socket ${p}; each listener needs its own path`
    seen.set(abs, key)
  }
  for (const [key, p] of upstreams) {
    const other = seen.get(path.resolve(p))
    if (other !== undefined) return `${key} ${p} is doveroute's own ${other}; it must be Dovecot's socket`
  }
  return undefined
}

/** Read and parse a JSON config file into a provider; unknown keys and wrong JSON types are refused (StrictSettings.ts). */
export const fileProvider = (file: string) =>
  Effect.try({
    try: () => ({ json: JSON.parse(fs.readFileSync(file, "utf8")) as unknown, st: fs.statSync(file) }),
    catch: (e) =>
      new SettingsError({ reason: "ConfigFile", detail: `cannot read config file ${file}: ${(e as Error).message}` })
  }).pipe(
    Effect.flatMap(({ json, st }) => {
      const problem = StrictSettings.checkConfigJson(settingsConfig, json, file)
      if (problem !== undefined) return Effect.fail(new SettingsError({ reason: problem.reason, detail: `invalid settings: ${problem.message}` }))
      // inline secrets: the secret-file rule applies to the config file (Secrets.ts)
      const exposure = configFileExposure(file, st.mode, st.gid, inlineSecretKeys(json))
      return exposure.error !== undefined
        ? Effect.fail(new SettingsError({ reason: "ConfigFile", detail: exposure.error }))
        : Effect.succeed({ provider: ConfigProvider.fromJson(json), warning: exposure.warning })
    })
  )

/** Environment variables `DOVEROUTE_*` (constant case, `_` between sections, `,` between list items). */
export const envProvider = ConfigProvider.fromEnv().pipe(
  ConfigProvider.constantCase,
  ConfigProvider.nested("DOVEROUTE")
)

/**
 * Flags given on the command line, as a flat map of config paths (`store`, `dict.socket`,
 * `extra_fields` …) to values; they win over everything else.
 */
export type FlagOverrides = ReadonlyMap<string, string | ReadonlyArray<string>>

const flagsProvider = (flags: FlagOverrides) => {
  const json: Record<string, unknown> = {}
  for (const [path, value] of flags) {
    const parts = path.split(".")
    let o = json
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>
    o[parts[parts.length - 1]!] = value
  }
  return ConfigProvider.fromJson(json)
}

/**
 * Load settings: flags, then `DOVEROUTE_*` env, then the config file (when given), then defaults.
 * Fails with {@link SettingsError} naming the bad key.
 */
export const loadSettings = (options: { readonly configFile?: string | undefined; readonly flags?: FlagOverrides }) =>
  Effect.gen(function*() {
    const envProblem = StrictSettings.checkEnvironment(settingsConfig, process.env)
    if (envProblem !== undefined) {
      return yield* new SettingsError({ reason: envProblem.reason, detail: `invalid settings: ${envProblem.message}` })
    }
    let provider = flagsProvider(options.flags ?? new Map()).pipe(ConfigProvider.orElse(() => envProvider))
    let fileWarning: string | undefined
    if (options.configFile !== undefined) {
      const file = yield* fileProvider(options.configFile)
      fileWarning = file.warning
      provider = provider.pipe(ConfigProvider.orElse(() => file.provider))
    }
    const settings = yield* Effect.withConfigProvider(settingsConfig, provider).pipe(
      Effect.mapError((e) => new SettingsError({ reason: "Invalid", detail: `invalid settings: ${StrictSettings.describeConfigError(e)}` }))
    )
    return fileWarning === undefined ? settings : { ...settings, secretWarnings: [...(settings.secretWarnings ?? []), fileWarning] }
  })
