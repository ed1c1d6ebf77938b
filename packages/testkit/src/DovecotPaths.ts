/**
 * Where things live: the Dovecot 2.4 chroot, its tarball cache, and the per-instance layout that
 * the config generators and the start functions share.
 */
import path from "node:path"

/** Host path of the Dovecot 2.4.1 trixie chroot (env DOVEROUTE_DOVECOT24_ROOT overrides). */
export const DOVECOT24_ROOT: string = process.env["DOVEROUTE_DOVECOT24_ROOT"] ?? "/var/tmp/doveroute/dovecot24-root"

/** Host directory holding the chroot tarball cache (env DOVEROUTE_CACHE_DIR overrides). */
export const DOVEROUTE_CACHE_DIR: string = process.env["DOVEROUTE_CACHE_DIR"] ?? "/var/cache/doveroute"

/** Fixed files and directories of one Dovecot instance below its directory `dir`. */
export interface InstancePaths {
  /** The instance directory itself. */
  readonly dir: string
  /** `dir/dovecot.conf` */
  readonly configPath: string
  /** `dir/run`: `base_dir` (sockets: `login/login`, `auth-client`, `auth-userdb`, …). */
  readonly baseDir: string
  /** `dir/state`: `state_dir`. */
  readonly stateDir: string
  /** `dir/dovecot.log`: `log_path` (all of Dovecot's logging, debug included). */
  readonly logPath: string
}

/** The layout used for an instance living in `dir` (paths as Dovecot sees them). */
export function instancePaths(dir: string): InstancePaths {
  return {
    dir,
    configPath: path.join(dir, "dovecot.conf"),
    baseDir: path.join(dir, "run"),
    stateDir: path.join(dir, "state"),
    logPath: path.join(dir, "dovecot.log")
  }
}
