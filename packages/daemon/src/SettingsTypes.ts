/**
 * The shapes of doveroute's validated settings (Settings.ts reads them; SettingsSources.ts loads
 * them) and the settings error.
 */
import { type DownPolicy, type ExtraField, type ProxyFlag, ReasonError, type Strategy } from "@doveroute/routing"
import type * as BackendPort from "@doveroute/frontends/BackendPort"
import type * as HttpListen from "@doveroute/frontends/HttpListen"
import type { StoreUrl } from "@doveroute/store"
import type { Duration, Redacted } from "effect"
import type { RoutingSettings } from "./RoutingSettings.js"
import type { HealthSettings } from "./HealthSettings.js"
import type { MetricsSettings } from "./MetricsSettings.js"

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
  /** The longest one routing decision that misses the routing table or lookup cache may take (all its statements); 0 = none. */
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

export { type MetricsSettings, parseMetricsListen } from "./MetricsSettings.js"
export type { HealthSettings } from "./HealthSettings.js"

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

/** The default embedded store. */
export const DEFAULT_STORE = "sqlite:/var/lib/doveroute/doveroute.db"

/** A settings problem, with an operator-readable message. */
export class SettingsError extends ReasonError("SettingsError")<"ConfigFile" | "Invalid" | "UnknownKey">() {}

