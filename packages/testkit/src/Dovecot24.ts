/**
 * Dovecot 2.4.1 inside the Debian trixie chroot built by scripts/mkroot24.sh. Everything runs
 * through `chroot ROOT …`; configs, sockets and temp dirs live inside the chroot, so every path has
 * an in-chroot form (what Dovecot sees) and a host form (ROOT + in-chroot path, what doveroute and
 * the tests use). chroot(8) execs dovecot, so the child's PID is the master's host PID and
 * `dovecot -F` works as a direct child.
 */
import { chmodSync, existsSync, mkdtempSync } from "node:fs"
import { rm } from "node:fs/promises"
import path from "node:path"
import { DOVECOT24_ROOT } from "./DovecotPaths.js"
import { checkConfigWith, startDovecotWith, type Dovecot, type DovecotRunner, type StartOptions } from "./DovecotInstance.js"

/** Runner for Dovecot 2.4 in the chroot at `root` (default {@link DOVECOT24_ROOT}). */
export function dovecot24Runner(root: string = DOVECOT24_ROOT): DovecotRunner {
  return {
    version: "2.4",
    root,
    hostPath: (p) => path.join(root, p),
    command: (tool, args) => ({
      cmd: "chroot",
      args: [root, tool, ...args],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" }
    })
  }
}

/** The default 2.4 runner. */
export const dovecot24: DovecotRunner = dovecot24Runner()

/** True when the 2.4 chroot exists (`ROOT/usr/sbin/dovecot` is executable there). */
export const dovecot24Available = (root: string = DOVECOT24_ROOT): boolean => existsSync(path.join(root, "usr/sbin/dovecot"))

/**
 * Throws a clear error when the 2.4 chroot is missing. Call it in `beforeAll` so the 2.4 tests
 * FAIL (not skip) on a machine where `scripts/install-deps.sh` has not built the chroot.
 */
export function requireDovecot24(root: string = DOVECOT24_ROOT): void {
  if (!dovecot24Available(root)) {
    throw new Error(`Dovecot 2.4 chroot missing at ${root} (no usr/sbin/dovecot). ` +
      `Build it with: sudo bash scripts/install-deps.sh   (or: sudo bash scripts/mkroot24.sh ${root})`)
  }
}

/** A temp directory inside the chroot: `inner` is the path Dovecot sees, `path` the host path. */
export interface ChrootTempDir {
  /** Host path (ROOT + inner). */
  readonly path: string
  /** In-chroot path, e.g. /tmp/dvr-AbC123. */
  readonly inner: string
  /** In-chroot path joined with segments. */
  join(...segments: ReadonlyArray<string>): string
  /** Host path of an in-chroot path. */
  hostPath(inner: string): string
  cleanup(): Promise<void>
}

/** Creates `ROOT/tmp/dvr-XXXXXX` (mode 0755); see {@link ChrootTempDir}. Requires the chroot. */
export function makeChrootTempDir(root: string = DOVECOT24_ROOT): ChrootTempDir {
  requireDovecot24(root)
  const host = mkdtempSync(path.join(root, "tmp", "dvr-"))
  chmodSync(host, 0o755)
  const inner = "/" + path.relative(root, host)
  let removed = false
  return {
    path: host,
    inner,
    join: (...segments) => path.join(inner, ...segments),
    hostPath: (p) => path.join(root, p),
    cleanup: async () => {
      if (removed) return
      removed = true
      await rm(host, { recursive: true, force: true, maxRetries: 3 })
    }
  }
}

/** `chroot ROOT doveconf -n -c configPath` (in-chroot path); rejects with its output on failure. */
export const checkConfig24 = (configPath: string, runner: DovecotRunner = dovecot24): Promise<string> =>
  checkConfigWith(runner, configPath)

/**
 * Like startDovecot23 but inside the chroot: `dir`, `paths` and `files` keys are in-chroot
 * paths. Throws (see {@link requireDovecot24}) when the chroot is missing.
 */
export async function startDovecot24(options: StartOptions, runner: DovecotRunner = dovecot24): Promise<Dovecot> {
  requireDovecot24(runner.root)
  return startDovecotWith(runner, options)
}
