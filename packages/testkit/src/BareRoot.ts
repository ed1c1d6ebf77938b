/**
 * A fresh bare Debian root (debootstrap --variant=minbase, from the tarball cached by
 * scripts/mkroot-bare.sh) for package tests. Commands run as
 * `unshare --mount --propagation private -- sh -c 'mount proc; mount --rbind /dev; exec chroot ROOT …'`:
 * /proc and /dev exist inside the root only in that private mount namespace, which ends with its
 * last process, so nothing stays mounted on the host and removing the root cannot reach the host's
 * /dev. chroot(8) and unshare(1) exec, so a spawned daemon's PID is its host PID.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { runChecked, runCommand, type CommandResult, type RunOptions } from "./Exec.js"
import { REPO_ROOT } from "./Daemon.js"
import { spawnManaged, type ManagedProcess } from "./Process.js"

/** A Debian suite with a cached bare root. */
export type BareSuite = "bookworm" | "trixie"

/** PATH and locale inside the root (nothing else comes from the test's environment). */
const CHROOT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "HOME=/root"]

/** A root unpacked under /var/tmp/doveroute; see the module comment. */
export interface BareRoot {
  readonly suite: BareSuite
  /** Host path of the root. */
  readonly dir: string
  /** Host path of an in-root path. */
  host(inner: string): string
  /** `sh -c script` inside the root (as root); never rejects on a non-zero exit. */
  sh(script: string, options?: RunOptions & { readonly env?: Readonly<Record<string, string>> }): Promise<CommandResult>
  /** Like {@link sh} but rejects with the output on a non-zero exit. */
  shChecked(script: string, options?: RunOptions & { readonly env?: Readonly<Record<string, string>> }): Promise<CommandResult>
  /** A long-running command inside the root (argv, no shell). */
  spawn(argv: ReadonlyArray<string>, env?: Readonly<Record<string, string>>): Promise<ManagedProcess>
  /** Removes the root (refuses while anything is mounted below it). */
  remove(): Promise<void>
}

/** The cached tarball of `suite`, built by scripts/mkroot-bare.sh when missing (needs the mirror). */
export async function bareRootTarball(suite: BareSuite): Promise<string> {
  const r = await runCommand("bash", [path.join(REPO_ROOT, "scripts", "mkroot-bare.sh"), suite], { timeoutMs: 600_000 })
  const tarball = r.stdout.trim().split("\n").pop() ?? ""
  if (r.code !== 0 || !fs.existsSync(tarball)) {
    throw new Error(`no bare ${suite} root: scripts/mkroot-bare.sh ${suite} exited ${r.code}\n${r.stderr}`)
  }
  return tarball
}

const mountedUnder = (dir: string): Array<string> =>
  fs.readFileSync("/proc/mounts", "utf8").split("\n")
    .map((l) => (l.split(" ")[1] ?? "").replace(/\\040/g, " "))
    .filter((m) => m === dir || m.startsWith(dir + "/"))

/** Unpacks a fresh bare root of `suite` into a new directory under /var/tmp/doveroute. */
export async function makeBareRoot(suite: BareSuite): Promise<BareRoot> {
  const tarball = await bareRootTarball(suite)
  fs.mkdirSync("/var/tmp/doveroute", { recursive: true })
  const dir = fs.mkdtempSync(`/var/tmp/doveroute/pkg-${suite}-`)
  await runChecked("sh", ["-c", 'zstd -dc "$1" | tar -C "$2" --numeric-owner -xf -', "sh", tarball, dir], { timeoutMs: 120_000 })
  // the root's "/" as on a real system (mkdtemp made it 0700): other users reach /usr, /etc, …
  fs.chmodSync(dir, 0o755)
  const wrap = (argv: ReadonlyArray<string>, env: Readonly<Record<string, string>>): Array<string> => [
    "--mount", "--propagation", "private", "--",
    "sh", "-c", 'set -e; r=$1; shift; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; exec chroot "$r" "$@"',
    "sh", dir, "/usr/bin/env", "-i", ...CHROOT_ENV, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv
  ]
  const sh = (script: string, options: RunOptions & { readonly env?: Readonly<Record<string, string>> } = {}) =>
    runCommand("unshare", wrap(["sh", "-c", script], options.env ?? {}), { timeoutMs: options.timeoutMs ?? 120_000 })
  return {
    suite,
    dir,
    host: (inner) => path.join(dir, inner),
    sh,
    shChecked: async (script, options = {}) => {
      const r = await sh(script, options)
      if (r.code !== 0) throw new Error(`in the ${suite} root: ${script}\nexit ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
      return r
    },
    spawn: (argv, env = {}) => spawnManaged("unshare", wrap(argv, env)),
    remove: async () => {
      const mounts = mountedUnder(dir)
      if (mounts.length > 0) throw new Error(`not removing ${dir}: still mounted: ${mounts.join(", ")}`)
      await runChecked("rm", ["-rf", "--one-file-system", dir], { timeoutMs: 120_000 })
    }
  }
}
