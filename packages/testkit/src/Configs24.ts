/**
 * Config text generators for Dovecot 2.4.1 (chroot). All paths are IN-CHROOT paths. Same shape as
 * Configs23: `proxyConfig24(base, ...blocks)`. 2.4 syntax: named passdb/userdb sections,
 * `auth_allow_cleartext`, `mail_driver`/`mail_home`/`mail_path`, `%{user}`, `login_socket_path`.
 */
import type { StaticProxyRouteOptions } from "./Configs23.js"
import { fieldsBlock, instanceLines, joinConfig, listeners, passdbRuleLines, protocolsOf, testAuthLines } from "./ConfigParts.js"
import type { BackendConfigOptions, PassdbRules, ProxyBaseOptions } from "./ConfigParts.js"

/** The auth lines of every 2.4 test instance. */
const AUTH_LINES = testAuthLines("auth_allow_cleartext = yes")

/** Options for {@link backendConfig24} (paths in-chroot). */
export type BackendConfig24Options = BackendConfigOptions

/** Options for {@link proxyBase24} (paths in-chroot). */
export type ProxyBase24Options = ProxyBaseOptions

const HEADER = "dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1"




/** 2.4 backend: as backendConfig23 but mail as vmail in `<mailDir>/<user>/Maildir`. */
export function backendConfig24(o: BackendConfig24Options): string {
  const passdb = o.usersFile !== undefined
    ? `passdb passwd-file {\n  passwd_file_path = ${o.usersFile}\n}`
    : `passdb static {\n  password = ${o.staticPassword ?? "secret"}\n}`
  return joinConfig(
    HEADER,
    `${instanceLines(o.instanceName ?? "dvr24-backend", o.dir)}
protocols = ${protocolsOf(o)}
listen = ${(o.listen ?? ["127.0.0.2", "127.0.0.3"]).join(", ")}
${AUTH_LINES}
login_greeting = ${o.greeting ?? "backend ready."}
login_trusted_networks = ${o.trustedNetworks ?? "127.0.0.0/8"}
mail_driver = maildir
mail_home = ${o.mailDir}/%{user}
mail_path = ~/Maildir
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 5000`,
    ...listeners("listen", o),
    passdb,
    `userdb static {\n  fields {\n    uid = vmail\n    gid = vmail\n    home = ${o.mailDir}/%{user}\n  }\n}`,
    o.extra ?? ""
  )
}

/** 2.4 proxy base without any passdb (a pure proxy needs no userdb). */
export function proxyBase24(o: ProxyBase24Options): string {
  const listen = o.listen ?? "127.0.0.1"
  return joinConfig(
    HEADER,
    `${instanceLines(o.instanceName ?? "dvr24-proxy", o.dir)}
protocols = ${protocolsOf(o)}
listen = ${listen}
${AUTH_LINES}
auth_internal_failure_delay = 0
login_trusted_networks = ${o.trustedNetworks ?? ""}` + (o.lmtpPort !== undefined ? "\nlmtp_proxy = yes" : ""),
    ...listeners("listen", o, listen),
    `service auth-worker {\n  process_limit = ${o.authWorkerLimit ?? 1}\n}`,
    o.extra ?? ""
  )
}

/** A full 2.4 proxy config: base followed by route blocks / passdb chains (verbatim strings). */
export function proxyConfig24(base: ProxyBase24Options, ...blocks: ReadonlyArray<string>): string {
  return joinConfig(proxyBase24(base), ...blocks)
}

/**
 * Route without doveroute: `passdb static` with fields nopassword/proxy/host/port; POP3 and LMTP
 * ports via `protocol pop3 { passdb static { fields { port } } }` overrides.
 */
export function staticProxyRoute24(o: StaticProxyRouteOptions): string {
  const over = (proto: string, port: number | undefined) => port === undefined ? "" :
    `protocol ${proto} {\n  passdb static {\n    fields {\n      port = ${port}\n    }\n  }\n}`
  return joinConfig(
    `passdb static {\n${fieldsBlock({ nopassword: "yes", proxy: "y", host: o.host, port: String(o.port) })}}`,
    over("pop3", o.pop3Port),
    over("lmtp", o.lmtpPort)
  )
}

/** Options for {@link authSocketRoute24}. */
export interface AuthSocketRoute24Options {
  /** doveroute's standalone auth-client socket, absolute in-chroot path (mode 0666). */
  readonly socketPath: string
  /** Login services whose chroot is disabled (so the absolute path works); default imap, pop3. */
  readonly services?: ReadonlyArray<"imap" | "pop3">
  /** One persistent login process (`restart_request_count = unlimited`, process_limit 1). */
  readonly persistentLogin?: boolean
}

/** Route (b), 2.4: `login_socket_path = <abs socket>` with the login chroot disabled. */
export function authSocketRoute24(o: AuthSocketRoute24Options): string {
  const persistent = o.persistentLogin === true ? "  restart_request_count = unlimited\n  process_limit = 1\n  process_min_avail = 1\n" : ""
  return joinConfig(
    `login_socket_path = ${o.socketPath}`,
    ...(o.services ?? ["imap", "pop3"]).map((s) => `service ${s}-login {\n  chroot =\n${persistent}}`),
    "passdb static {\n  password = internal-auth-should-never-be-used\n}"
  )
}

/** Options for {@link relayRoute24}. */
export interface RelayRoute24Options {
  /** Relative to `<base_dir>/login/`; default "director". */
  readonly loginSocketName?: string
  /** Relative to base_dir; default "director-userdb". */
  readonly userdbSocketName?: string
  /** The real passdb chain; default `passdb static { fields { nopassword = yes  proxy = y } }`. */
  readonly passdbs?: string
}

/**
 * Route (c), 2.4: `login_socket_path` + `auth_socket_path` + `lmtp_proxy`. doveroute relays
 * `<base_dir>/login/<login>` → `login/login` and `<base_dir>/<userdb>` → `auth-userdb`.
 */
export function relayRoute24(o: RelayRoute24Options = {}): string {
  return joinConfig(
    `login_socket_path = ${o.loginSocketName ?? "director"}\nauth_socket_path = ${o.userdbSocketName ?? "director-userdb"}\nlmtp_proxy = yes`,
    o.passdbs ?? `passdb static {\n${fieldsBlock({ nopassword: "yes", proxy: "y" })}}`
  )
}

/** Options for {@link luaRoute24}. */
export interface LuaRoute24Options {
  /** In-chroot Lua script; 2.4 calls its `script_init(lua_settings)` and `auth_passdb_lookup`. */
  readonly luaFile: string
  /** `lua_settings { }` entries handed to script_init. */
  readonly settings?: Readonly<Record<string, string>>
  /** `fields { }` added to every successful lookup (e.g. nopassword = yes). */
  readonly fields?: Readonly<Record<string, string>>
  /** Directory added to LUA_PATH via import_environment. */
  readonly luaPathDir?: string
}

/** Route (d), 2.4: `passdb lua { lua_file  lua_settings { }  fields { } }`. */
export function luaRoute24(o: LuaRoute24Options & PassdbRules): string {
  const settings = o.settings ?? {}
  const settingsBlock = Object.keys(settings).length === 0 ? "" :
    `  lua_settings {\n${Object.entries(settings).map(([k, v]) => `    ${k} = ${v}\n`).join("")}  }\n`
  const rules = passdbRuleLines(o)
  return joinConfig(
    o.luaPathDir !== undefined ? `import_environment {\n  TZ = %{env:TZ}\n  LUA_PATH = ${o.luaPathDir}/?.lua;;\n}` : "",
    `passdb lua {\n  lua_file = ${o.luaFile}\n${settingsBlock}${fieldsBlock(o.fields ?? {})}${rules ? rules + "\n" : ""}}`
  )
}
