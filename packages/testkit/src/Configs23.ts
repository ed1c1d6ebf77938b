/**
 * Config text generators for Dovecot 2.3.19 (host). A proxy config is `proxyBase23(…)` followed by
 * one or more route blocks (`proxyConfig23(base, ...blocks)`); Dovecot merges repeated
 * `service x { }` sections, so route blocks may extend the base's services. All paths are absolute
 * host paths; every instance gets its own base_dir/state_dir/instance_name/log_path
 * (layout: DovecotPaths.instancePaths).
 */
import { instancePaths } from "./DovecotPaths.js"

/** Users for passwd-file: name → cleartext password. */
export type Users = Readonly<Record<string, string>>

/** alice, bob, carol and dave, all with password "secret". */
export const DEFAULT_USERS: Users = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }

/** passwd-file content (`user:{PLAIN}password` lines) for `users`. */
export function usersFileContent(users: Users = DEFAULT_USERS): string {
  return Object.entries(users).map(([u, p]) => `${u}:{PLAIN}${p}\n`).join("")
}

/** Joins config fragments with blank lines (a trailing newline included). */
export function joinConfig(...parts: ReadonlyArray<string>): string {
  return parts.map((p) => p.trim()).filter((p) => p.length > 0).join("\n\n") + "\n"
}

/** Passdb chain rules (2.3 and 2.4 share the setting names). */
export interface PassdbRules {
  readonly skip?: "never" | "authenticated" | "unauthenticated"
  readonly resultSuccess?: string
  readonly resultFailure?: string
  readonly resultInternalfail?: string
}

/** The rule lines for a passdb section (indented two spaces), "" when no rule is set. */
export function passdbRuleLines(rules: PassdbRules = {}): string {
  const lines: Array<string> = []
  if (rules.skip !== undefined) lines.push(`  skip = ${rules.skip}`)
  if (rules.resultSuccess !== undefined) lines.push(`  result_success = ${rules.resultSuccess}`)
  if (rules.resultFailure !== undefined) lines.push(`  result_failure = ${rules.resultFailure}`)
  if (rules.resultInternalfail !== undefined) lines.push(`  result_internalfail = ${rules.resultInternalfail}`)
  return lines.join("\n")
}

const listener = (service: string, name: string, port: number, address?: string): string =>
  `service ${service} {\n  inet_listener ${name} {\n${address !== undefined ? `    address = ${address}\n` : ""}    port = ${port}\n  }\n` +
  (service === "imap-login" ? "  inet_listener imaps {\n    port = 0\n  }\n" : "") +
  (service === "pop3-login" ? "  inet_listener pop3s {\n    port = 0\n  }\n" : "") +
  "}"

/**
 * Disables the anvil auth penalty (2–15 s extra delay for an IP after a failed login; it would hit
 * every later login of the test run from 127.0.0.1): auth cannot reach `anvil-auth-penalty`.
 */
export const NO_AUTH_PENALTY_23 = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}"

/** Options for {@link backendConfig23}. */
export interface BackendConfig23Options {
  /** Instance directory (config, run/, state/, dovecot.log). */
  readonly dir: string
  /** Mail root (mode 1777); mail for user u is `maildir:<mailDir>/u`. */
  readonly mailDir: string
  /** Listen addresses; default 127.0.0.2 and 127.0.0.3 (two "backends", one instance). */
  readonly listen?: ReadonlyArray<string>
  readonly imapPort: number
  readonly pop3Port?: number
  readonly lmtpPort?: number
  /** passwd-file with `user:{PLAIN}pass` lines (see usersFileContent); else `staticPassword`. */
  readonly usersFile?: string
  /** Static password for every user when no `usersFile`; default "secret". */
  readonly staticPassword?: string
  /** Default "dvr-backend". */
  readonly instanceName?: string
  /** Default "backend ready.". */
  readonly greeting?: string
  /** login_trusted_networks (lets the proxy forward the client address); default 127.0.0.0/8. */
  readonly trustedNetworks?: string
  /** Appended verbatim. */
  readonly extra?: string
}

/**
 * Backend: IMAP (+POP3, +LMTP when ports are given) on 127.0.0.2 and 127.0.0.3, passwd-file or
 * static password, mail as uid/gid 65534 in `mailDir/<user>`, no failure delay, no auth cache,
 * verbose+debug auth logging.
 */
export function backendConfig23(o: BackendConfig23Options): string {
  const p = instancePaths(o.dir)
  const protocols = ["imap", ...(o.pop3Port !== undefined ? ["pop3"] : []), ...(o.lmtpPort !== undefined ? ["lmtp"] : [])]
  const passdb = o.usersFile !== undefined
    ? `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${o.usersFile}\n}`
    : `passdb {\n  driver = static\n  args = password=${o.staticPassword ?? "secret"}\n}`
  return joinConfig(
    `instance_name = ${o.instanceName ?? "dvr-backend"}
base_dir = ${p.baseDir}
state_dir = ${p.stateDir}
log_path = ${p.logPath}
log_timestamp = "%H:%M:%S.%{usecs} "
protocols = ${protocols.join(" ")}
listen = ${(o.listen ?? ["127.0.0.2", "127.0.0.3"]).join(", ")}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_debug = yes
auth_cache_size = 0
auth_failure_delay = 0
login_greeting = ${o.greeting ?? "backend ready."}
login_trusted_networks = ${o.trustedNetworks ?? "127.0.0.0/8"}
mail_location = maildir:${o.mailDir}/%u
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull`,
    listener("imap-login", "imap", o.imapPort),
    o.pop3Port !== undefined ? listener("pop3-login", "pop3", o.pop3Port) : "",
    o.lmtpPort !== undefined ? listener("lmtp", "lmtp", o.lmtpPort) : "",
    NO_AUTH_PENALTY_23,
    passdb,
    `userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=${o.mailDir}/%u\n}`,
    o.extra ?? ""
  )
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

/** Options for {@link proxyBase23}. */
export interface ProxyBase23Options {
  /** Instance directory (config, run/, state/, dovecot.log, mail/, home/). */
  readonly dir: string
  /** Listen address; default 127.0.0.1. */
  readonly listen?: string
  readonly imapPort: number
  readonly pop3Port?: number
  /** LMTP listener; also sets `lmtp_proxy = yes`. */
  readonly lmtpPort?: number
  /** Default "dvr-proxy". */
  readonly instanceName?: string
  /** `service auth-worker { process_limit }`; default 1 (one Lua state / dict connection). */
  readonly authWorkerLimit?: number
  /** Default "" (none). */
  readonly trustedNetworks?: string
  /** Appended verbatim. */
  readonly extra?: string
}

/** Proxy base without any passdb: listeners, logging, a static userdb. Add route blocks after it. */
export function proxyBase23(o: ProxyBase23Options): string {
  const p = instancePaths(o.dir)
  const listen = o.listen ?? "127.0.0.1"
  const protocols = ["imap", ...(o.pop3Port !== undefined ? ["pop3"] : []), ...(o.lmtpPort !== undefined ? ["lmtp"] : [])]
  return joinConfig(
    `instance_name = ${o.instanceName ?? "dvr-proxy"}
base_dir = ${p.baseDir}
state_dir = ${p.stateDir}
log_path = ${p.logPath}
log_timestamp = "%H:%M:%S.%{usecs} "
protocols = ${protocols.join(" ")}
listen = ${listen}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_debug = yes
auth_cache_size = 0
auth_failure_delay = 0
mail_location = maildir:${o.dir}/mail/%u
login_trusted_networks = ${o.trustedNetworks ?? ""}
default_internal_user = dovecot
default_login_user = dovenull` + (o.lmtpPort !== undefined ? "\nlmtp_proxy = yes" : ""),
    listener("imap-login", "imap", o.imapPort, listen),
    o.pop3Port !== undefined ? listener("pop3-login", "pop3", o.pop3Port, listen) : "",
    o.lmtpPort !== undefined ? listener("lmtp", "lmtp", o.lmtpPort, listen) : "",
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
