/**
 * A real Dovecot 2.3.19 Director ring on loopback (the Director is still in Debian 12's
 * dovecot-core): two director instances, each with its own base_dir, ring port and IMAP port,
 * `director_servers` naming both, `director_mail_servers` naming the backends, and a static
 * `proxy=y nopassword=y` passdb (the director adds the host; the backend checks the password).
 */
import path from "node:path"
import { joinConfig, NO_AUTH_PENALTY_23 } from "./Configs23.js"
import { instancePaths } from "./DovecotPaths.js"
import { type Dovecot, stopDovecots } from "./DovecotInstance.js"
import { startDovecot23 } from "./Dovecot23.js"
import type { CommandResult } from "./Exec.js"
import { sleep } from "./Exec.js"
import { freePorts } from "./Ports.js"

/** Options for {@link startDirectorRing23}. */
export interface DirectorRingOptions {
  /** Parent directory; the instances live in `<tmpDir>/director1`, `<tmpDir>/director2`. */
  readonly tmpDir: string
  /** The `director_mail_servers` value (IPs, `IP1-IP2` ranges, `@tag`s). */
  readonly mailServers: string
  /** The backends' IMAP port (the passdb's `port`). */
  readonly backendImapPort: number
  /** Readiness timeout of the ring (both directors synced), ms; default 30 000. */
  readonly timeoutMs?: number
}

/** A running ring. */
export interface DirectorRing {
  readonly directors: ReadonlyArray<Dovecot>
  /** IMAP port of each director (on 127.0.0.1). */
  readonly imapPorts: ReadonlyArray<number>
  /** `doveadm -c <director i config> args…` (default the first director). */
  doveadm(args: ReadonlyArray<string>, i?: number): Promise<CommandResult>
  stop(): Promise<void>
}

/** The config of director `i` of a ring on 127.0.0.1 `ringPorts`. */
export function directorConfig23(o: {
  readonly dir: string
  readonly ringPorts: ReadonlyArray<number>
  readonly i: number
  readonly imapPort: number
  readonly mailServers: string
  readonly backendImapPort: number
}): string {
  const p = instancePaths(o.dir)
  return joinConfig(
    `instance_name = dvr-director${o.i + 1}
base_dir = ${p.baseDir}
state_dir = ${p.stateDir}
log_path = ${p.logPath}
log_timestamp = "%H:%M:%S.%{usecs} "
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
director_servers = ${o.ringPorts.map((port) => `127.0.0.1:${port}`).join(" ")}
director_mail_servers = ${o.mailServers}`,
    // the login processes (dovenull) reach the director through login/director and notify it of
    // ended proxy sessions through login/proxy-notify (both mode 0 by default)
    `service director {\n  unix_listener login/director {\n    mode = 0666\n  }\n  fifo_listener login/proxy-notify {\n    mode = 0666\n  }\n` +
      `  inet_listener {\n    address = 127.0.0.1\n    port = ${o.ringPorts[o.i]}\n  }\n}`,
    `service imap-login {\n  executable = imap-login director\n  inet_listener imap {\n    port = ${o.imapPort}\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}`,
    NO_AUTH_PENALTY_23,
    `passdb {\n  driver = static\n  args = proxy=y nopassword=y port=${o.backendImapPort}\n}`,
    `userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=${o.dir}/home/%u\n}`
  )
}

/** True when `doveadm director ring status` shows this director (self) and both its connections synced. */
const synced = (r: CommandResult) => {
  const rows = r.stdout.split("\n").slice(1).filter((l) => l.trim() !== "")
  return r.code === 0 && rows.length >= 3 && rows.every((l) => /\bsynced\b/.test(l))
}

/** Start two directors that form one ring; resolves once both report the ring synced. */
export async function startDirectorRing23(o: DirectorRingOptions): Promise<DirectorRing> {
  const ringPorts = await freePorts(2)
  const imapPorts = await freePorts(2)
  const directors: Array<Dovecot> = []
  try {
    for (const i of [0, 1]) {
      const dir = path.join(o.tmpDir, `director${i + 1}`)
      directors.push(await startDovecot23({
        dir,
        config: directorConfig23({ dir, ringPorts, i, imapPort: imapPorts[i]!, mailServers: o.mailServers, backendImapPort: o.backendImapPort }),
        paths: [path.join(instancePaths(dir).baseDir, "director-admin")],
        tcp: [{ host: "127.0.0.1", port: imapPorts[i]! }]
      }))
    }
    const deadline = Date.now() + (o.timeoutMs ?? 30_000)
    for (;;) {
      const states = await Promise.all(directors.map((d) => d.doveadm(["director", "ring", "status"])))
      if (states.every(synced)) break
      if (Date.now() > deadline) throw new Error(`director ring not synced:\n${states.map((s) => s.stdout + s.stderr).join("\n")}`)
      await sleep(200)
    }
  } catch (e) {
    await stopDovecots(directors)
    throw e
  }
  return {
    directors,
    imapPorts,
    doveadm: (args, i = 0) => directors[i]!.doveadm(args),
    stop: async () => {
      await stopDovecots(directors)
    }
  }
}
