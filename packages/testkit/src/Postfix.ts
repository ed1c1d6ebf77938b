/**
 * A private Postfix instance for SASL tests: its own config directory, queue and data directories
 * below a temp dir, one `smtpd` on 127.0.0.1:<port> and only the services smtpd needs (no qmgr,
 * no pickup: nothing is ever delivered). `smtpd_sasl_type = dovecot` points at an auth socket.
 *
 * The master runs as our direct child (`master -d -c DIR`, the same binary `postfix start-fg`
 * uses) and is stopped with SIGTERM; the system Postfix is never touched. Needs root (the master
 * and `postfix check` run as root, smtpd as the `postfix` user) and the Debian `postfix` package
 * (scripts/install-deps.sh installs it with "No configuration").
 */
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { runCommand } from "./Exec.js"
import { waitForTcp } from "./Ports.js"
import { spawnManaged } from "./Process.js"

/** The Postfix master binary (Debian). */
export const POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"

/** True when Postfix is installed. */
export const postfixAvailable = (): boolean => existsSync(POSTFIX_MASTER) && existsSync("/usr/sbin/postfix")

/** Options for {@link startPostfix}. */
export interface PostfixOptions {
  /** Instance directory (etc/, spool/, data/, postfix.log below it). Must be traversable by `postfix`. */
  readonly dir: string
  /** smtpd port on 127.0.0.1. */
  readonly port: number
  /** `smtpd_sasl_path`: the Dovecot-protocol auth socket (absolute; must be connectable by `postfix`). */
  readonly saslPath: string
  /** Readiness timeout in ms; default 15 000. */
  readonly timeoutMs?: number
}

/** A running private Postfix. */
export interface Postfix {
  readonly pid: number
  readonly port: number
  /** Postfix's own log (maillog_file). */
  log(): string
  stop(): Promise<void>
}

const uidOf = (user: string): number => {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const f = line.split(":")
    if (f[0] === user && f[2] !== undefined) return Number(f[2])
  }
  throw new Error(`no system user ${user} (is Postfix installed?)`)
}

/** Writes main.cf/master.cf, creates the queue with `postfix check`, starts the master, waits for smtpd's port. */
export async function startPostfix(o: PostfixOptions): Promise<Postfix> {
  const etc = path.join(o.dir, "etc")
  const spool = path.join(o.dir, "spool")
  const data = path.join(o.dir, "data")
  const logFile = path.join(o.dir, "postfix.log")
  for (const d of [etc, spool, data]) mkdirSync(d, { recursive: true, mode: 0o755 })
  chownSync(data, uidOf("postfix"), -1)
  writeFileSync(
    path.join(etc, "main.cf"),
    `compatibility_level = 3.6
queue_directory = ${spool}
data_directory = ${data}
mail_owner = postfix
setgid_group = postdrop
myhostname = dvr-postfix.test
mydomain = test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = ${logFile}
maillog_file_prefixes = ${o.dir}
alias_maps =
alias_database =
biff = no
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${o.saslPath}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
`
  )
  // chroot column "n" everywhere: absolute paths, no copy of the auth socket in the queue dir
  writeFileSync(
    path.join(etc, "master.cf"),
    `127.0.0.1:${o.port} inet n - n - - smtpd
postlog    unix-dgram n - n - 1 postlogd
anvil      unix - - n - 1 anvil
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
rewrite    unix - - n - - trivial-rewrite
cleanup    unix n - n - 0 cleanup
scache     unix - - n - 1 scache
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
`
  )
  const check = await runCommand("postfix", ["-c", etc, "check"], { env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin` } })
  if (check.code !== 0) throw new Error(`postfix check failed (exit ${check.code}):\n${check.stdout}${check.stderr}`)
  const proc = await spawnManaged(POSTFIX_MASTER, ["-d", "-c", etc], { env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin` } })
  const readLog = () => {
    try {
      return readFileSync(logFile, "utf8")
    } catch {
      return ""
    }
  }
  try {
    await waitForTcp("127.0.0.1", o.port, {
      timeoutMs: o.timeoutMs ?? 15_000,
      abortIf: () => (proc.exitInfo() !== undefined ? `postfix master exited: ${proc.output()}\n${readLog()}` : undefined)
    })
  } catch (e) {
    await proc.stop()
    throw e
  }
  return {
    pid: proc.pid,
    port: o.port,
    log: readLog,
    stop: async () => {
      await proc.stop()
    }
  }
}
