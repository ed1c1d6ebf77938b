/**
 * Dovecot 2.3.19 from the host's Debian packages (/usr/sbin/dovecot, /usr/bin/doveconf,
 * /usr/bin/doveadm). Paths are host paths.
 */
import { existsSync } from "node:fs"
import { checkConfigWith, startDovecotWith, type Dovecot, type DovecotRunner, type StartOptions } from "./DovecotInstance.js"

/** Runner for the host's Dovecot 2.3. */
export const dovecot23: DovecotRunner = {
  version: "2.3",
  root: "",
  hostPath: (p) => p,
  command: (tool, args) => ({ cmd: tool, args: [...args], env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env["PATH"] ?? ""}` } })
}

/** True when the host has Dovecot 2.3 installed (`/usr/sbin/dovecot`). */
export const dovecot23Available = (): boolean => existsSync("/usr/sbin/dovecot")

/** `doveconf -n -c configPath`; resolves with its output, rejects with it on a non-zero exit. */
export const checkConfig23 = (configPath: string): Promise<string> => checkConfigWith(dovecot23, configPath)

/**
 * Writes the config into `<dir>/dovecot.conf`, validates it, runs `dovecot -F -c …` as a child and
 * waits (default 15 s) for `<base_dir>/login/login` and the given TCP endpoints. Rejects with the
 * master's output and log tail when it exits early or never gets ready.
 */
export const startDovecot23 = (options: StartOptions): Promise<Dovecot> => startDovecotWith(dovecot23, options)
