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
  parseExtraField,
  PROXY_FLAGS,
  STRATEGIES,
  type DownPolicy,
  type Strategy
} from "@doveroute/routing"
// the modules themselves, not the package index: settings are loaded by every admin command, which
// runs no front-end
import * as BackendPort from "@doveroute/frontends/BackendPort"
import * as HttpListen from "@doveroute/frontends/HttpListen"
import { parseStoreUrl, type StoreUrl } from "@doveroute/store"
import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import { healthConfig } from "./HealthSettings.js"
import { metricsConfig } from "./MetricsSettings.js"
import { routingSettingsConfig } from "./RoutingSettings.js"
import { CREDENTIALS, type Secret, secretConfig } from "./Secrets.js"
import { storeWithPassword } from "./StoreSecret.js"
import * as SettingValues from "./SettingValues.js"
import { socketPathClash } from "./SettingsClash.js"
import {
  AUTH_MODES,
  type AuthMode,
  type AuthSettings,
  DEFAULT_PAM_SERVICE,
  DEFAULT_STORE,
  type HttpSettings,
  type ListenerLimits,
  type RelaySettings,
  type Settings,
  type SocketSettings
} from "./SettingsTypes.js"

export * from "./SettingsTypes.js"
export { socketPathClash } from "./SettingsClash.js"

const limitsConfig: Config.Config<ListenerLimits> = Config.all({
  maxClients: SettingValues.positiveInt("max_clients", 10_000),
  maxRequestsPerClient: SettingValues.positiveInt("max_requests_per_client", 1000),
  lineTimeout: Config.duration("line_timeout").pipe(Config.withDefault(Duration.seconds(30))),
  idleTimeout: Config.duration("idle_timeout").pipe(Config.withDefault(Duration.zero))
})

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
    const problem = HttpListen.listenProblem(listen, h.mode, Option.isSome(h.token))
    if (problem !== undefined) return Either.left(ConfigError.InvalidData(["http", problem.includes("token") ? "token" : "listen"], problem))
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
    const secrets = [...s.store.secrets, s.auth?.secret, s.http?.secret, s.health.secret]
    return {
      ...s,
      store: s.store.url,
      auth: s.auth === undefined ? undefined : withoutSecret(s.auth),
      http: s.http === undefined ? undefined : withoutSecret(s.http),
      health: withoutSecret(s.health),
      proxyFlag: Option.getOrElse(s.proxyFlag, () => defaultProxyFlag(s.strategy)),
      secretWarnings: secrets.flatMap((x) => (x?.warning === undefined ? [] : [x.warning]))
    }
  }),
  Config.mapOrFail((s) => {
    const clash = socketPathClash(s)
    return clash === undefined ? Either.right(s) : Either.left(ConfigError.InvalidData([], clash))
  }),
  Config.mapOrFail((s) =>
    s.strategy === "shard" && s.routing.tags.domains.size > 0
      ? Either.left(ConfigError.InvalidData(["tags", "domains"], "tags need strategy mapping: a shard holds users of every tag (remove tags.domains, or use strategy mapping)"))
      : Either.right(s)
  ),
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

