/**
 * What the config generators of both Dovecot versions (Configs23.ts, Configs24.ts) share: users
 * files, joining fragments, passdb chain rules, the options of a backend and of a proxy, and the
 * lines whose syntax is the same (or differs by one word) in 2.3 and 2.4.
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

/** A 2.4 `fields { }` block (indented `indent`), "" without fields. */
export const fieldsBlock = (fields: Readonly<Record<string, string>>, indent = "  "): string =>
  Object.keys(fields).length === 0 ? "" :
    `${indent}fields {\n${Object.entries(fields).map(([k, v]) => `${indent}  ${k} = ${v}\n`).join("")}${indent}}\n`

/**
 * The auth lines every test instance has: no TLS, cleartext PLAIN/LOGIN allowed (`cleartext` is
 * the version's setting for it), verbose+debug auth logging, no auth cache, no failure delay.
 */
export const testAuthLines = (cleartext: string): string =>
  `ssl = no\n${cleartext}\nauth_mechanisms = plain login\nauth_verbose = yes\nauth_debug = yes\nauth_cache_size = 0\nauth_failure_delay = 0`

/** The protocols a config serves: imap, plus pop3 and lmtp when their ports are given. */
export const protocolsOf = (o: { readonly pop3Port?: number; readonly lmtpPort?: number }): string =>
  ["imap", ...(o.pop3Port !== undefined ? ["pop3"] : []), ...(o.lmtpPort !== undefined ? ["lmtp"] : [])].join(" ")

/** `instance_name`, `base_dir`, `state_dir` and `log_path` of an instance living in `dir`. */
export const instanceLines = (name: string, dir: string): string => {
  const p = instancePaths(dir)
  return `instance_name = ${name}\nbase_dir = ${p.baseDir}\nstate_dir = ${p.stateDir}\nlog_path = ${p.logPath}`
}

/**
 * The imap-login (imaps off), pop3-login (pop3s off) and lmtp listeners for the given ports, on
 * `address` when given (2.3 names the setting `address`, 2.4 `listen`).
 */
export const listeners = (
  addressKey: "address" | "listen",
  o: { readonly imapPort: number; readonly pop3Port?: number; readonly lmtpPort?: number },
  address?: string
): Array<string> => {
  const listener = (service: string, name: string, port: number): string =>
    `service ${service} {\n  inet_listener ${name} {\n${address !== undefined ? `    ${addressKey} = ${address}\n` : ""}    port = ${port}\n  }\n` +
    (service === "imap-login" ? "  inet_listener imaps {\n    port = 0\n  }\n" : "") +
    (service === "pop3-login" ? "  inet_listener pop3s {\n    port = 0\n  }\n" : "") +
    "}"
  return [
    listener("imap-login", "imap", o.imapPort),
    o.pop3Port !== undefined ? listener("pop3-login", "pop3", o.pop3Port) : "",
    o.lmtpPort !== undefined ? listener("lmtp", "lmtp", o.lmtpPort) : ""
  ]
}

/** Options of a backend config (backendConfig23/24; on 2.4 the paths are in-chroot). */
export interface BackendConfigOptions {
  /** Instance directory (config, run/, state/, dovecot.log). */
  readonly dir: string
  /** Mail root (mode 1777): user u's mail is in `<mailDir>/u` (2.4: `<mailDir>/u/Maildir`). */
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
  /** Default "dvr-backend" (2.4: "dvr24-backend"). */
  readonly instanceName?: string
  /** Default "backend ready.". */
  readonly greeting?: string
  /** login_trusted_networks (lets the proxy forward the client address); default 127.0.0.0/8. */
  readonly trustedNetworks?: string
  /** Appended verbatim. */
  readonly extra?: string
}

/** Options of a proxy base config (proxyBase23/24; on 2.4 the paths are in-chroot). */
export interface ProxyBaseOptions {
  /** Instance directory (config, run/, state/, dovecot.log, mail/, home/). */
  readonly dir: string
  /** Listen address; default 127.0.0.1. */
  readonly listen?: string
  readonly imapPort: number
  readonly pop3Port?: number
  /** LMTP listener; also sets `lmtp_proxy = yes`. */
  readonly lmtpPort?: number
  /** Default "dvr-proxy" (2.4: "dvr24-proxy"). */
  readonly instanceName?: string
  /** `service auth-worker { process_limit }`; default 1 (one Lua state / dict connection). */
  readonly authWorkerLimit?: number
  /** Default "" (none). */
  readonly trustedNetworks?: string
  /** Appended verbatim. */
  readonly extra?: string
}
