/**
 * One handle per Dovecot version under test (2.3.19 on the host, 2.4.1 in the chroot), so that one
 * end-to-end suite runs on both: temp dir, backend, proxy, the shipped snippets' directory, and the
 * few config blocks whose syntax differs. Paths given to Dovecot are the version's own (in-chroot
 * on 2.4); `tmp.hostPath` turns one into the host path doveroute and the tests use.
 */
import { chmodSync, mkdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { type BackendOptions, startBackend23, startBackend24, type Backend } from "./Backends.js"
import { fieldsBlock } from "./ConfigParts.js"
import { proxyConfig23, staticProxyRoute23, type ProxyBase23Options, type StaticProxyRouteOptions } from "./Configs23.js"
import { proxyConfig24, staticProxyRoute24 } from "./Configs24.js"
import { dovecot23, startDovecot23 } from "./Dovecot23.js"
import { dovecot24, makeChrootTempDir, requireDovecot24, startDovecot24 } from "./Dovecot24.js"
import type { Dovecot, DovecotRunner, StartOptions } from "./DovecotInstance.js"
import { DOVECOT24_ROOT } from "./DovecotPaths.js"
import { runCommand } from "./Exec.js"
import { makeTempDir } from "./TempDir.js"
import { REPO_ROOT } from "./Daemon.js"

/** A temp dir Dovecot can reach: `join` gives Dovecot's path, `hostPath` the host's. */
export interface VersionTempDir {
  /** Host path. */
  readonly path: string
  /** Dovecot's path of the temp dir joined with the segments. */
  join(...segments: ReadonlyArray<string>): string
  /** Host path of one of Dovecot's paths. */
  hostPath(p: string): string
  cleanup(): Promise<void>
}

/** A Dovecot version under test. */
export interface DovecotVersion {
  /** `2.3` / `2.4`: the shipped snippets live in `config/dovecot-<series>`. */
  readonly series: "2.3" | "2.4"
  /** `2.3.19` / `2.4.1`, for test names. */
  readonly release: string
  /** How its tools run (2.4: `chroot ROOT …`). */
  readonly runner: DovecotRunner
  /** What a config of this version starts with (2.4: `dovecot_config_version`). */
  readonly configHeader: string
  /** A fresh temp dir (2.4: inside the chroot; throws when the chroot is missing). */
  makeTmp(): VersionTempDir
  /** Two backends on 127.0.0.2 / 127.0.0.3 below the temp dir. */
  startBackend(tmp: VersionTempDir, options?: BackendOptions): Promise<Backend>
  startDovecot(options: StartOptions): Promise<Dovecot>
  /** A proxy config: the base followed by the blocks, verbatim. */
  proxyConfig(base: ProxyBase23Options, ...blocks: ReadonlyArray<string>): string
  /** Route without doveroute: a static passdb sending everyone to `host` (the backend checks the password). */
  staticProxyRoute(o: StaticProxyRouteOptions): string
  /** A passwd-file passdb (`user:{PLAIN}pass` lines) that sets `fields` on success. */
  passwdFilePassdb(file: string, fields?: Readonly<Record<string, string>>): string
  /** A static passdb: with a password it checks it; `fields` go into its reply. */
  staticPassdb(password: string | undefined, fields?: Readonly<Record<string, string>>): string
  /**
   * Lets a proxy config serve logins locally (a proxy_maybe to itself): mail and home dirs (mode
   * 1777) below `dir` (2.4: below the temp dir) and the settings for them; returns the settings.
   */
  localMail(tmp: VersionTempDir, dir: string): string
  /** The log lines of logins the proxy served itself (proxied ones log "proxy(u,…)" instead). */
  localLogins(log: string, user: string): Array<string>
  /** The gid of a group as Dovecot's processes have it (2.4: the chroot's own /etc/group). */
  gid(group: string): Promise<number>
  /** A shipped snippet of this version (`config/dovecot-<series>/<name>`). */
  shipped(name: string): string
}

const mkdir1777 = (dir: string): void => {
  mkdirSync(dir, { recursive: true })
  chmodSync(dir, 0o1777)
}

const shippedOf = (series: string) => (name: string): string =>
  readFileSync(path.join(REPO_ROOT, "config", `dovecot-${series}`, name), "utf8")

/** Dovecot 2.3.19 on the host. */
export const v23: DovecotVersion = {
  series: "2.3",
  release: "2.3.19",
  runner: dovecot23,
  configHeader: "",
  makeTmp: () => ({ ...makeTempDir(), hostPath: (p) => p }),
  startBackend: (tmp, options) => startBackend23(tmp.path, options),
  startDovecot: startDovecot23,
  proxyConfig: proxyConfig23,
  staticProxyRoute: staticProxyRoute23,
  passwdFilePassdb: (file, fields = {}) => {
    const defaults = Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(" ")
    return `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${file}\n` +
      (defaults === "" ? "" : `  default_fields = ${defaults}\n`) + "}"
  },
  staticPassdb: (password, fields = {}) => {
    const args = [...(password === undefined ? [] : [`password=${password}`]), ...Object.entries(fields).map(([k, v]) => `${k}=${v}`)]
    return `passdb {\n  driver = static\n  args = ${args.join(" ")}\n}`
  },
  localMail: (tmp, dir) => {
    // proxyConfig23's static userdb: mail in dir/mail/<user>, home in dir/home/<user>, uid dovecot
    for (const d of ["mail", "home"]) mkdir1777(tmp.hostPath(path.join(dir, d)))
    return "first_valid_uid = 1"
  },
  localLogins: (log, user) => log.split("\n").filter((l) => l.includes(`Login: user=<${user}>`)),
  gid: async (group) => {
    const r = await runCommand("getent", ["group", group])
    if (r.code !== 0) throw new Error(`no group ${group}`)
    return Number(r.stdout.split(":")[2])
  },
  shipped: shippedOf("2.3")
}

/** Dovecot 2.4.1 in the chroot (fails, never skips, when the chroot is missing). */
export const v24: DovecotVersion = {
  series: "2.4",
  release: "2.4.1",
  runner: dovecot24,
  configHeader: "dovecot_config_version = 2.4.1\n",
  makeTmp: () => {
    requireDovecot24()
    return makeChrootTempDir()
  },
  startBackend: startBackend24,
  startDovecot: (options) => startDovecot24(options),
  proxyConfig: proxyConfig24,
  staticProxyRoute: staticProxyRoute24,
  passwdFilePassdb: (file, fields = {}) => `passdb passwd-file {\n  passwd_file_path = ${file}\n${fieldsBlock(fields)}}`,
  staticPassdb: (password, fields = {}) =>
    `passdb static {\n${password === undefined ? "" : `  password = ${password}\n`}${fieldsBlock(fields)}}`,
  localMail: (tmp) => {
    const home = tmp.join("proxy-home")
    mkdir1777(tmp.hostPath(home))
    return `mail_driver = maildir\nmail_home = ${home}/%{user}\nmail_path = ~/Maildir\nmail_uid = vmail\nmail_gid = vmail\nfirst_valid_uid = 5000\n` +
      `userdb static {\n  fields {\n    uid = vmail\n    gid = vmail\n    home = ${home}/%{user}\n  }\n}`
  },
  localLogins: (log, user) => log.split("\n").filter((l) => l.includes(`Logged in: user=<${user}>`)),
  gid: async (group) => {
    const line = readFileSync(path.join(DOVECOT24_ROOT, "etc", "group"), "utf8").split("\n").find((l) => l.startsWith(`${group}:`))
    if (line === undefined) throw new Error(`no group ${group} in the 2.4 chroot`)
    return Number(line.split(":")[2])
  },
  shipped: shippedOf("2.4")
}
