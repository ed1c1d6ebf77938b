/**
 * Backend fixtures and "which backend served this login?": one Dovecot instance listening on
 * 127.0.0.2 and 127.0.0.3 stands for two backends. Its log's `Login: user=<…>` (2.3) / `Logged in: user=<…>` (2.4) lines carry `lip=`
 * (may be the proxy-forwarded address when the proxy is trusted) and `real_lip=` (the address the
 * connection really arrived on; our backend configs add it to login_log_format_elements).
 */
import { mkdirSync, chmodSync, readdirSync } from "node:fs"
import path from "node:path"
import { backendConfig23, DEFAULT_USERS, usersFileContent, type Users } from "./Configs23.js"
import { backendConfig24 } from "./Configs24.js"
import type { Dovecot, StartOptions } from "./DovecotInstance.js"
import type { BackendConfigOptions } from "./ConfigParts.js"
import type { ExitInfo } from "./Process.js"
import { startDovecot23 } from "./Dovecot23.js"
import { startDovecot24, type ChrootTempDir } from "./Dovecot24.js"
import { freePort } from "./Ports.js"

/** One `Login:` line of a Dovecot log. */
export interface LoginRecord {
  /** imap, pop3, … (from `imap-login:`). */
  readonly service: string
  readonly user: string
  /** All `key=value` elements of the line (`user`, `method`, `rip`, `lip`, `real_lip`, `session`, …). */
  readonly fields: Readonly<Record<string, string>>
  /** `real_lip` when logged, else `lip`: the backend address the connection reached. */
  readonly backendIp: string | undefined
  readonly line: string
}

/** Parses every successful-login line (`<service>-login: … Login: user=<u>, …` on 2.3, `Logged in:` on 2.4) of a log. */
export function parseLogins(log: string): Array<LoginRecord> {
  const out: Array<LoginRecord> = []
  for (const line of log.split("\n")) {
    const m = /\b([a-z0-9]+)-login: (?:Info: )?(?:Login|Logged in): (user=<.*)$/.exec(line)
    if (m === null) continue
    const fields: Record<string, string> = {}
    for (const el of (m[2] ?? "").matchAll(/([a-z_]+)=(<[^>]*>|[^,\s]*)/g)) {
      const k = el[1]
      const v = el[2]
      if (k === undefined || v === undefined) continue
      fields[k] = v.startsWith("<") && v.endsWith(">") ? v.slice(1, -1) : v
    }
    const user = fields["user"]
    if (user === undefined) continue
    out.push({ service: m[1] ?? "", user, fields, backendIp: fields["real_lip"] ?? fields["lip"], line })
  }
  return out
}

/** The login records of `user` (optionally only for `service`), oldest first. */
export function loginsOf(log: string, user: string, service?: string): Array<LoginRecord> {
  return parseLogins(log).filter((r) => r.user === user && (service === undefined || r.service === service))
}

/** Backend address (127.0.0.2 / 127.0.0.3) of `user`'s most recent login, undefined if none. */
export function servedBy(log: string, user: string, service?: string): string | undefined {
  return loginsOf(log, user, service).at(-1)?.backendIp
}

/** Files of a maildir's new/ and cur/ (names relative to the maildir, e.g. "new/1700….host"). */
export function maildirFiles(maildir: string): Array<string> {
  const out: Array<string> = []
  for (const sub of ["new", "cur"]) {
    try {
      for (const f of readdirSync(path.join(maildir, sub))) out.push(`${sub}/${f}`)
    } catch { /* not created yet */ }
  }
  return out.sort()
}

/** A running backend instance (two backend addresses, one Dovecot). */
export interface Backend {
  readonly dovecot: Dovecot
  /** Listen addresses, default ["127.0.0.2", "127.0.0.3"]. */
  readonly ips: ReadonlyArray<string>
  readonly imapPort: number
  readonly pop3Port: number
  readonly lmtpPort: number
  readonly users: Users
  /** Host path of the mail root (1777). */
  readonly mailDir: string
  /** Host path of `user`'s INBOX maildir. */
  maildir(user: string): string
  /** Files in `user`'s INBOX new/ and cur/ (e.g. to see an LMTP delivery). */
  mailboxFiles(user: string): Array<string>
  /** Current log text. */
  log(): string
  /** Login records for `user`. */
  logins(user: string, service?: string): Array<LoginRecord>
  /** Backend address of `user`'s most recent login. */
  servedBy(user: string, service?: string): string | undefined
  stop(): Promise<ExitInfo>
}

/** Options for startBackend23/24. */
export interface BackendOptions {
  /** Users (passwd-file); default DEFAULT_USERS (alice/bob/carol/dave: "secret"). */
  readonly users?: Users
  /** Default ["127.0.0.2", "127.0.0.3"]. */
  readonly listen?: ReadonlyArray<string>
  /** Instance subdirectory name; default "backend". */
  readonly name?: string
  /** Appended to the config. */
  readonly extra?: string
  /** IMAP port (free on every `listen` address); default a free port. */
  readonly imapPort?: number
}

function makeBackend(dovecot: Dovecot, o: {
  ips: ReadonlyArray<string>; imapPort: number; pop3Port: number; lmtpPort: number; users: Users
  mailDirHost: string; maildirOf: (u: string) => string
}): Backend {
  return {
    dovecot,
    ips: o.ips,
    imapPort: o.imapPort,
    pop3Port: o.pop3Port,
    lmtpPort: o.lmtpPort,
    users: o.users,
    mailDir: o.mailDirHost,
    maildir: o.maildirOf,
    mailboxFiles: (u) => maildirFiles(o.maildirOf(u)),
    log: () => dovecot.log(),
    logins: (u, s) => loginsOf(dovecot.log(), u, s),
    servedBy: (u, s) => servedBy(dovecot.log(), u, s),
    stop: () => dovecot.stop()
  }
}

/** What differs between a 2.3 and a 2.4 backend: where things live, the config, the start. */
interface BackendFlavour {
  /** Instance dir and mail root as Dovecot sees them. */
  readonly dir: string
  readonly mailDir: string
  /** Host path of a Dovecot path. */
  readonly hostPath: (p: string) => string
  readonly config: (o: BackendConfigOptions) => string
  /** `login_log_format_elements` in the version's variables (with real_lip, see parseLogins). */
  readonly logFormat: string
  readonly start: (o: StartOptions) => Promise<Dovecot>
  /** Host path of a user's INBOX maildir, from the host mail root. */
  readonly maildirOf: (mailDirHost: string, user: string) => string
}

async function startBackendWith(f: BackendFlavour, options: BackendOptions): Promise<Backend> {
  const ips = options.listen ?? ["127.0.0.2", "127.0.0.3"]
  const [first, ...rest] = ips
  if (first === undefined) throw new Error("startBackend: no listen address")
  const imapPort = options.imapPort ?? await freePort(first, rest)
  const pop3Port = await freePort(first, rest)
  const lmtpPort = await freePort(first, rest)
  const mailDirHost = f.hostPath(f.mailDir)
  mkdirSync(mailDirHost, { recursive: true })
  chmodSync(mailDirHost, 0o1777)
  const users = options.users ?? DEFAULT_USERS
  const usersFile = path.join(f.dir, "users")
  const config = f.config({
    dir: f.dir, mailDir: f.mailDir, listen: ips, imapPort, pop3Port, lmtpPort, usersFile,
    extra: `login_log_format_elements = ${f.logFormat}\n` + (options.extra ?? "")
  })
  const dovecot = await f.start({
    dir: f.dir, config, files: { [usersFile]: usersFileContent(users) },
    tcp: ips.flatMap((host) => [{ host, port: imapPort }, { host, port: pop3Port }, { host, port: lmtpPort }])
  })
  return makeBackend(dovecot, { ips, imapPort, pop3Port, lmtpPort, users, mailDirHost, maildirOf: (u) => f.maildirOf(mailDirHost, u) })
}

/**
 * Starts a Dovecot 2.3 backend in `<tmp>/<name>` with IMAP, POP3 and LMTP on free ports on
 * 127.0.0.2 and 127.0.0.3, passwd-file users, mail in `<tmp>/mail` (1777). Resolves when ready.
 */
export const startBackend23 = (tmpDir: string, options: BackendOptions = {}): Promise<Backend> =>
  startBackendWith({
    dir: path.join(tmpDir, options.name ?? "backend"),
    mailDir: path.join(tmpDir, "mail"),
    hostPath: (p) => p,
    config: backendConfig23,
    logFormat: "user=<%u> method=%m rip=%r lip=%l real_lip=%{real_lip} mpid=%e %c session=<%{session}>",
    start: startDovecot23,
    maildirOf: (mailDir, u) => path.join(mailDir, u)
  }, options)

/**
 * Same as startBackend23 for Dovecot 2.4 inside the chroot: instance in `<tmp.inner>/<name>`, mail
 * in `<tmp>/mail/<user>/Maildir` owned by vmail. Throws when the chroot is missing.
 */
export const startBackend24 = (tmp: Pick<ChrootTempDir, "join" | "hostPath">, options: BackendOptions = {}): Promise<Backend> =>
  startBackendWith({
    dir: tmp.join(options.name ?? "backend"),
    mailDir: tmp.join("mail"),
    hostPath: (p) => tmp.hostPath(p),
    config: backendConfig24,
    logFormat: "user=<%{user}> method=%{mechanism} rip=%{remote_ip} lip=%{local_ip} real_lip=%{real_local_ip} mpid=%{mail_pid} %{secured} session=<%{session}>",
    start: (o) => startDovecot24(o),
    maildirOf: (mailDir, u) => path.join(mailDir, u, "Maildir")
  }, options)
