/**
 * Config text generators for Dovecot 2.3.19 (host). A proxy config is `proxyBase23(…)` followed by
 * one or more route blocks (`proxyConfig23(base, ...blocks)`); Dovecot merges repeated
 * `service x { }` sections, so route blocks may extend the base's services. All paths are absolute
 * host paths; every instance gets its own base_dir/state_dir/instance_name/log_path
 * (layout: DovecotPaths.instancePaths).
 */
import { instanceLines, joinConfig, listeners, passdbRuleLines, protocolsOf, testAuthLines } from "./ConfigParts.js"
import type { BackendConfigOptions, PassdbRules, ProxyBaseOptions } from "./ConfigParts.js"

export * from "./ConfigParts.js"

/** The auth lines of every 2.3 test instance. */
const AUTH_LINES = testAuthLines("disable_plaintext_auth = no")

/** Options for {@link backendConfig23}. */
export type BackendConfig23Options = BackendConfigOptions

/** Options for {@link proxyBase23}. */
export type ProxyBase23Options = ProxyBaseOptions




/**
 * Disables the anvil auth penalty (2–15 s extra delay for an IP after a failed login; it would hit
 * every later login of the test run from 127.0.0.1): auth cannot reach `anvil-auth-penalty`.
 */
export const NO_AUTH_PENALTY_23 = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}"


/**
 * Backend: IMAP (+POP3, +LMTP when ports are given) on 127.0.0.2 and 127.0.0.3, passwd-file or
 * static password, mail as uid/gid 65534 in `mailDir/<user>`, no failure delay, no auth cache,
 * verbose+debug auth logging.
 */
export function backendConfig23(o: BackendConfig23Options): string {
  const passdb = o.usersFile !== undefined
    ? `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${o.usersFile}\n}`
    : `passdb {\n  driver = static\n  args = password=${o.staticPassword ?? "secret"}\n}`
  return joinConfig(
    `${instanceLines(o.instanceName ?? "dvr-backend", o.dir)}
log_timestamp = "%H:%M:%S.%{usecs} "
protocols = ${protocolsOf(o)}
listen = ${(o.listen ?? ["127.0.0.2", "127.0.0.3"]).join(", ")}
${AUTH_LINES}
login_greeting = ${o.greeting ?? "backend ready."}
login_trusted_networks = ${o.trustedNetworks ?? "127.0.0.0/8"}
mail_location = maildir:${o.mailDir}/%u
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull`,
    ...listeners("address", o),
    NO_AUTH_PENALTY_23,
    passdb,
    `userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=${o.mailDir}/%u\n}`,
    o.extra ?? ""
  )
}

/** Proxy base without any passdb: listeners, logging, a static userdb. Add route blocks after it. */
export function proxyBase23(o: ProxyBase23Options): string {
  const listen = o.listen ?? "127.0.0.1"
  return joinConfig(
    `${instanceLines(o.instanceName ?? "dvr-proxy", o.dir)}
log_timestamp = "%H:%M:%S.%{usecs} "
protocols = ${protocolsOf(o)}
listen = ${listen}
${AUTH_LINES}
mail_location = maildir:${o.dir}/mail/%u
login_trusted_networks = ${o.trustedNetworks ?? ""}
default_internal_user = dovecot
default_login_user = dovenull` + (o.lmtpPort !== undefined ? "\nlmtp_proxy = yes" : ""),
    ...listeners("address", o, listen),
    `service auth-worker {\n  process_limit = ${o.authWorkerLimit ?? 1}\n}`,
    NO_AUTH_PENALTY_23,
    `userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=${o.dir}/home/%u\n}`,
    o.extra ?? ""
  )
}

/** A full proxy config: the base followed by route blocks / passdb chains (verbatim strings). */
export function proxyConfig23(base: ProxyBase23Options, ...blocks: ReadonlyArray<string>): string {
  return joinConfig(proxyBase23(base), ...blocks)
}

/** Options for {@link staticProxyRoute23}. */
export interface StaticProxyRouteOptions {
  /** Backend IP. */
  readonly host: string
  /** Backend IMAP port. */
  readonly port: number
  /** Backend POP3 port (used when the login's service is pop3). */
  readonly pop3Port?: number
  /** Backend LMTP port (used when the service is lmtp). */
  readonly lmtpPort?: number
}

/**
 * Route without doveroute: `passdb static` answering `nopassword=y proxy=y host=… port=…` (the
 * port chosen by `%s` when POP3/LMTP ports are given). The backend checks the password.
 */
export function staticProxyRoute23(o: StaticProxyRouteOptions): string {
  let port = String(o.port)
  if (o.pop3Port !== undefined) port = `%{if;%s;eq;pop3;${o.pop3Port};${port}}`
  if (o.lmtpPort !== undefined) port = `%{if;%s;eq;lmtp;${o.lmtpPort};${port}}`
  return `passdb {\n  driver = static\n  args = nopassword=y proxy=y host=${o.host} port=${port}\n}`
}

/** Options for {@link dictConfExt23}. */
export interface DictConfExtOptions {
  /** doveroute's dict socket (absolute). */
  readonly socketPath: string
  /** Keep the dict connection open this long (ms); omitted: one connection per lookup. */
  readonly idleMsecs?: number
  /** Dict name after the socket path; default "director". */
  readonly dictName?: string
  /** Key template; default "passdb/%u" (`route/%s/%u` gives per-protocol keys). */
  readonly key?: string
}

/** The `dict.conf.ext` file for `passdb dict` (JSON values, proxy dict at `socketPath`). */
export function dictConfExt23(o: DictConfExtOptions): string {
  const idle = o.idleMsecs !== undefined ? `idle_msecs=${o.idleMsecs}:` : ""
  return `uri = proxy:${idle}${o.socketPath}:${o.dictName ?? "director"}
default_pass_scheme = PLAIN
iterate_disable = yes
key passdb {
  key = ${o.key ?? "passdb/%u"}
  format = json
}
passdb_objects = passdb
`
}

/** Route (a): `passdb dict` reading `dictConfPath` (see dictConfExt23), with optional chain rules. */
export function dictRoute23(o: { readonly dictConfPath: string } & PassdbRules): string {
  const rules = passdbRuleLines(o)
  return `passdb {\n  driver = dict\n  args = ${o.dictConfPath}\n${rules ? rules + "\n" : ""}}`
}

/** Options for {@link authSocketRoute23}. */
export interface AuthSocketRouteOptions {
  /** doveroute's standalone auth-client socket (absolute, mode 0666). */
  readonly socketPath: string
  /** Login services to point at it; default ["imap", "pop3"]. */
  readonly services?: ReadonlyArray<"imap" | "pop3">
  /** `service_count = 0` + one persistent login process: one auth connection carries many AUTHs. */
  readonly persistentLogin?: boolean
}

/**
 * Route (b): login processes talk to doveroute's socket (`executable = imap-login <sock>`, login
 * chroot disabled). Dovecot's own auth keeps a never-used static passdb.
 */
export function authSocketRoute23(o: AuthSocketRouteOptions): string {
  const services = o.services ?? ["imap", "pop3"]
  const persistent = o.persistentLogin === true ? "  service_count = 0\n  process_limit = 1\n  process_min_avail = 1\n" : ""
  return joinConfig(
    ...services.map((s) => `service ${s}-login {\n  chroot =\n  executable = ${s}-login ${o.socketPath}\n${persistent}}`),
    "passdb {\n  driver = static\n  args = password=internal-auth-should-never-be-used\n}"
  )
}

/** Options for {@link relayRoute23}. */
export interface RelayRoute23Options {
  /** Socket name relative to `<base_dir>/login/`; default "doveroute". */
  readonly loginSocketName?: string
  /** LMTP auth socket relative to base_dir; default "doveroute-userdb". */
  readonly userdbSocketName?: string
  readonly services?: ReadonlyArray<"imap" | "pop3">
  /** The real passdb chain; default `static nopassword=y proxy=y` (doveroute adds the host). */
  readonly passdbs?: string
}

/**
 * Route (c): the Director's wiring. doveroute relays `<base_dir>/login/<loginSocketName>` to
 * `login/login` and `<base_dir>/<userdbSocketName>` to `auth-userdb` (create them after start).
 */
export function relayRoute23(o: RelayRoute23Options = {}): string {
  const services = o.services ?? ["imap", "pop3"]
  const login = o.loginSocketName ?? "doveroute"
  return joinConfig(
    ...services.map((s) => `service ${s}-login {\n  executable = ${s}-login ${login}\n}`),
    `protocol lmtp {\n  lmtp_proxy = yes\n  auth_socket_path = ${o.userdbSocketName ?? "doveroute-userdb"}\n}`,
    o.passdbs ?? "passdb {\n  driver = static\n  args = nopassword=y proxy=y\n}"
  )
}

/** Options for {@link luaRoute23}. */
export interface LuaRoute23Options {
  /** The wrapper (see luaWrapper23). */
  readonly wrapperPath: string
  /** Directory added to LUA_PATH (`<dir>/?.lua;;`), e.g. for crc32/bit32 shims. */
  readonly luaPathDir?: string
}

/** Route (d), 2.3: `passdb lua` with `file=<wrapper>` (2.3 accepts no other script args). */
export function luaRoute23(o: LuaRoute23Options & PassdbRules): string {
  const env = o.luaPathDir !== undefined ? `import_environment = TZ LUA_PATH=${o.luaPathDir}/?.lua;;\n` : ""
  const rules = passdbRuleLines(o)
  return `${env}passdb {\n  driver = lua\n  args = file=${o.wrapperPath}\n${rules ? rules + "\n" : ""}}`
}

const luaString = (s: string): string => JSON.stringify(s)

/**
 * 2.3 wrapper script: loads `scriptPath` and maps 2.3's argument-less `script_init()` onto the
 * script's `auth_passdb_init(args)` with `initArgs` (an arg without value: "").
 */
export function luaWrapper23(o: { readonly scriptPath: string; readonly initArgs?: Readonly<Record<string, string>> }): string {
  const args = Object.entries(o.initArgs ?? {}).map(([k, v]) => `[${luaString(k)}] = ${luaString(v)}`).join(", ")
  return `-- doveroute test wrapper for Dovecot 2.3: script_init() takes no args there
dofile(${luaString(o.scriptPath)})
function script_init()
  if auth_passdb_init ~= nil then auth_passdb_init({ ${args} }) end
  return 0
end
`
}

/** Options for {@link backendTls23}: certificate files and the extra listeners (0 or absent = none). */
export interface BackendTls23Options {
  readonly certFile: string
  readonly keyFile: string
  /** Certificates by local address (`local <ip> { ssl_cert … }`), e.g. one signed by another CA. */
  readonly byAddress?: Readonly<Record<string, { readonly certFile: string; readonly keyFile: string }>>
  readonly imapsPort?: number
  readonly pop3sPort?: number
  /** Submission (SMTP, STARTTLS offered) and submissions (implicit TLS); adds the submission protocol. */
  readonly submissionPort?: number
  readonly submissionsPort?: number
}

/**
 * A block to append to {@link backendConfig23} (`extra`): TLS on (STARTTLS offered on IMAP, POP3,
 * LMTP and submission), imaps/pop3s listeners, and the submission service (relay host 127.0.0.1:25,
 * never used by the tests: they stop after AUTH).
 */
export function backendTls23(o: BackendTls23Options): string {
  const submission = o.submissionPort !== undefined || o.submissionsPort !== undefined
  const inet = (name: string, port: number | undefined, ssl = false) =>
    `  inet_listener ${name} {\n    port = ${port ?? 0}\n${ssl ? "    ssl = yes\n" : ""}  }`
  return joinConfig(
    `ssl = yes\nssl_cert = <${o.certFile}\nssl_key = <${o.keyFile}`,
    ...Object.entries(o.byAddress ?? {}).map(([ip, c]) => `local ${ip} {\n  ssl_cert = <${c.certFile}\n  ssl_key = <${c.keyFile}\n}`),
    submission ? "protocols = $protocols submission\nhostname = backend.test\nsubmission_relay_host = 127.0.0.1\nsubmission_relay_port = 25" : "",
    `service imap-login {\n${inet("imaps", o.imapsPort, true)}\n}`,
    `service pop3-login {\n${inet("pop3s", o.pop3sPort, true)}\n}`,
    submission ? `service submission-login {\n${inet("submission", o.submissionPort)}\n${inet("submissions", o.submissionsPort, true)}\n}` : ""
  )
}
