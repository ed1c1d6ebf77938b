/**
 * doveroute's settings: one schema read through Effect `Config` from, in order of precedence,
 * command-line flags, environment variables (`DOVEROUTE_<NAME>`, e.g. `DOVEROUTE_STORE`,
 * `DOVEROUTE_DICT_SOCKET`, `DOVEROUTE_EXTRA_FIELDS=nopassword,port=143`), the JSON config file,
 * and defaults.
 *
 * Config file (JSON, snake_case keys, nested sections):
 * ```json
 * { "store": "sqlite:/var/lib/doveroute/doveroute.db", "strategy": "mapping",
 *   "extra_fields": ["nopassword"],
 *   "port": ["143", "pop3=110", "lmtp=24"],
 *   "dict": { "socket": "/run/doveroute/dict.sock", "mode": "0660", "group": "dovecot" },
 *   "auth": { "socket": "/run/doveroute/auth.sock", "mode": "0666", "auth_mode": "password",
 *             "password": "…", "failure_delay": "2 seconds" },
 *   "login_relay": { "socket": "/run/dovecot/login/doveroute", "mode": "0666",
 *                    "upstream": "/run/dovecot/login/login" },
 *   "userdb_relay": { "socket": "/run/dovecot/doveroute-userdb", "mode": "0666",
 *                     "upstream": "/run/dovecot/auth-userdb" } }
 * ```
 *
 * Secrets: `auth.password` is read as a `Redacted` value and never logged. Put it in the config
 * file (mode 0600) or in `DOVEROUTE_AUTH_PASSWORD`; `--password` on the command line is visible
 * to every local user in the process list.
 *
 * @since 0.1.0
 */
import {
  DOWN_POLICIES,
  defaultProxyFlag,
  type DownPolicy,
  type ExtraField,
  parseExtraField,
  PROXY_FLAGS,
  type ProxyFlag,
  STRATEGIES,
  type Strategy
} from "@doveroute/routing"
import { BackendPort } from "@doveroute/frontends"
import { parseStoreUrl, type StoreUrl } from "@doveroute/store"
import { Config, ConfigError, ConfigProvider, Data, Duration, Effect, Either, Option, Redacted } from "effect"
import * as fs from "node:fs"

/** Socket file settings of one listener. */
export interface SocketSettings {
  readonly path: string
  readonly mode: number
  readonly owner: string | undefined
  readonly group: string | undefined
}

/** How the standalone auth server checks passwords. */
export type AuthMode = "nopassword" | "password"
export const AUTH_MODES: ReadonlyArray<AuthMode> = ["nopassword", "password"]

/** The standalone auth-client server (`auth` section). */
export interface AuthSettings extends SocketSettings {
  /** `nopassword` (default without a password: the backend checks it) or `password` (one master password). */
  readonly authMode: AuthMode
  /** The master password (`password` mode only). */
  readonly password: Redacted.Redacted<string> | undefined
  /** Delay before an authentication failure is answered (default 2 s, like Dovecot). */
  readonly failureDelay: Duration.Duration
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
  readonly connectTimeout: Duration.Duration
  readonly maxConnections: number
  readonly dict: SocketSettings | undefined
  readonly auth: AuthSettings | undefined
  readonly loginRelay: RelaySettings | undefined
  readonly userdbRelay: RelaySettings | undefined
  /** Backend ports added as `port=` by the auth server and the relays (`port`: `N` / `<protocol>=N`). */
  readonly ports: BackendPort.BackendPorts
  readonly logLevel: "debug" | "info" | "warning" | "error"
  readonly logFormat: "logfmt" | "json"
}

/** The default embedded store. */
export const DEFAULT_STORE = "sqlite:/var/lib/doveroute/doveroute.db"

/** A settings problem, with an operator-readable message. */
export class SettingsError extends Data.TaggedError("SettingsError")<{
  readonly reason: "ConfigFile" | "Invalid"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

const parseMode = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault("0660"),
    Config.mapOrFail((s) =>
      /^0?[0-7]{3}$/.test(s)
        ? Either.right(parseInt(s, 8))
        : Either.left(ConfigError.InvalidData([name], `expected an octal file mode such as 0660, got ${JSON.stringify(s)}`))
    )
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
    password: Config.option(Config.redacted("password")),
    failureDelay: Config.duration("failure_delay").pipe(Config.withDefault(Duration.seconds(2)))
  }),
  "auth"
).pipe(
  Config.mapOrFail((a): Either.Either<AuthSettings | undefined, ConfigError.ConfigError> => {
    const socket = toSocket(a)
    const password = Option.getOrUndefined(a.password)
    const mode = Option.getOrElse(a.authMode, (): AuthMode => (password !== undefined ? "password" : "nopassword"))
    if (mode === "password" && password === undefined) {
      return Either.left(ConfigError.InvalidData(["auth", "password"], "auth_mode=password needs a password (DOVEROUTE_AUTH_PASSWORD or auth.password in the config file)"))
    }
    if (password !== undefined && Redacted.value(password).length === 0) {
      return Either.left(ConfigError.InvalidData(["auth", "password"], "the master password must not be empty"))
    }
    if (mode === "nopassword" && password !== undefined) {
      return Either.left(ConfigError.InvalidData(["auth", "auth_mode"], "a password is set but auth_mode is nopassword; drop one of them"))
    }
    if (socket === undefined) return Either.right(undefined)
    return Either.right({ ...socket, authMode: mode, password: mode === "password" ? password : undefined, failureDelay: a.failureDelay })
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

const storeConfig = Config.string("store").pipe(
  Config.withDefault(DEFAULT_STORE),
  Config.mapOrFail((s) => {
    try {
      return Either.right(parseStoreUrl(s))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["store"], (e as Error).message))
    }
  })
)

const extraFieldsConfig = Config.array(Config.string(), "extra_fields").pipe(
  Config.withDefault([] as Array<string>),
  Config.mapOrFail((specs) => {
    try {
      return Either.right(specs.filter((s) => s.length > 0).map(parseExtraField))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["extra_fields"], (e as Error).message))
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
  connectTimeout: Config.duration("connect_timeout").pipe(Config.withDefault(Duration.seconds(5))),
  maxConnections: Config.integer("max_connections").pipe(Config.withDefault(10)),
  dict: socketConfig("dict"),
  auth: authConfig,
  loginRelay: relayConfig("login_relay", "login socket (<base_dir>/login/login)"),
  userdbRelay: relayConfig("userdb_relay", "auth-userdb socket (<base_dir>/auth-userdb)"),
  ports: portsConfig,
  logLevel: Config.literal("debug", "info", "warning", "error")("log_level").pipe(Config.withDefault("info" as const)),
  logFormat: Config.literal("logfmt", "json")("log_format").pipe(Config.withDefault("logfmt" as const))
}).pipe(
  Config.map((s): Settings => ({
    ...s,
    proxyFlag: Option.getOrElse(s.proxyFlag, () => defaultProxyFlag(s.strategy))
  }))
)

/** Read and parse a JSON config file into a provider. */
export const fileProvider = (file: string) =>
  Effect.try({
    try: () => ConfigProvider.fromJson(JSON.parse(fs.readFileSync(file, "utf8"))),
    catch: (e) =>
      new SettingsError({ reason: "ConfigFile", detail: `cannot read config file ${file}: ${(e as Error).message}` })
  })

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
    let provider = flagsProvider(options.flags ?? new Map()).pipe(ConfigProvider.orElse(() => envProvider))
    if (options.configFile !== undefined) {
      const file = yield* fileProvider(options.configFile)
      provider = provider.pipe(ConfigProvider.orElse(() => file))
    }
    return yield* Effect.withConfigProvider(settingsConfig, provider).pipe(
      Effect.mapError((e) => new SettingsError({ reason: "Invalid", detail: `invalid settings: ${String(e)}` }))
    )
  })
