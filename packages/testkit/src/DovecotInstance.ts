/**
 * Process control shared by Dovecot 2.3 (host) and 2.4 (chroot): validate a config with
 * `doveconf -n`, run `dovecot -F -c FILE` as our child, wait until it is ready, stop it with
 * SIGTERM, read its log, run doveadm against it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { runCommand, type CommandResult } from "./Exec.js"
import { instancePaths, type InstancePaths } from "./DovecotPaths.js"
import { waitForPath, waitForTcp } from "./Ports.js"
import { spawnManaged, type ExitInfo, type ManagedProcess } from "./Process.js"

/** How to reach one Dovecot installation: directly on the host or through `chroot ROOT`. */
export interface DovecotRunner {
  readonly version: "2.3" | "2.4"
  /** Host path of the chroot, "" on the host. */
  readonly root: string
  /** Host path for a path as Dovecot sees it. */
  hostPath(p: string): string
  /** The command line that runs Dovecot tool `tool` (dovecot, doveconf, doveadm) with `args`. */
  command(tool: string, args: ReadonlyArray<string>): { cmd: string; args: Array<string>; env: NodeJS.ProcessEnv }
}

/** A TCP endpoint to wait for. */
export interface TcpEndpoint {
  readonly host: string
  readonly port: number
}

/** Options for starting an instance. */
export interface StartOptions {
  /** Instance directory as Dovecot sees it (in-chroot path for 2.4); layout: {@link instancePaths}. */
  readonly dir: string
  /** Config text, written to `<dir>/dovecot.conf` before the check and start. */
  readonly config: string
  /** TCP endpoints that must accept connections before the instance counts as ready. */
  readonly tcp?: ReadonlyArray<TcpEndpoint>
  /**
   * Paths (as Dovecot sees them) that must exist before it counts as ready;
   * default `[<base_dir>/login/login]`.
   */
  readonly paths?: ReadonlyArray<string>
  /** Readiness timeout in ms; default 15 000. */
  readonly timeoutMs?: number
  /** Extra files to write first: path (as Dovecot sees it) → content. */
  readonly files?: Readonly<Record<string, string>>
}

/** A running Dovecot master started by us (`dovecot -F`, a direct child). */
export interface Dovecot {
  readonly version: "2.3" | "2.4"
  /** Host PID of the master. */
  readonly pid: number
  /** Paths as Dovecot sees them (in-chroot for 2.4). */
  readonly paths: InstancePaths
  /** The same paths on the host (identical for 2.3). */
  readonly hostPaths: InstancePaths
  /** Host path for a path as Dovecot sees it. */
  hostPath(p: string): string
  /** Contents of the instance's log file ("" when not yet created). */
  log(): string
  /** Master's own stdout/stderr (startup errors before the log is open). */
  output(): string
  /** `doveadm -c <config> args…`; never rejects for a non-zero exit. */
  doveadm(args: ReadonlyArray<string>, timeoutMs?: number): Promise<CommandResult>
  /** True once the master has exited. */
  exited(): boolean
  /** SIGTERM the master and wait for its exit (SIGKILL after 10 s); resolves with the exit info. */
  stop(): Promise<ExitInfo>
}

/** Reads a file, "" when missing. */
const readOr = (p: string): string => {
  try { return readFileSync(p, "utf8") } catch { return "" }
}

/** Last `n` lines of `text`. */
export const tail = (text: string, n = 40): string => text.split("\n").slice(-n - 1).join("\n")

/**
 * `doveconf -n -c FILE` for `configPath` (as Dovecot sees it). Resolves with doveconf's output;
 * rejects with doveconf's output when it exits non-zero.
 */
export async function checkConfigWith(runner: DovecotRunner, configPath: string): Promise<string> {
  const c = runner.command("doveconf", ["-n", "-c", configPath])
  const r = await runCommand(c.cmd, c.args, { env: c.env, timeoutMs: 20_000 })
  if (r.code !== 0) {
    throw new Error(`doveconf (${runner.version}) rejected ${configPath} (exit ${r.code}):\n${r.stderr}\n${r.stdout}`)
  }
  return r.stdout
}

/** Writes `config` (and `files`), checks it, starts `dovecot -F`, waits until ready. */
export async function startDovecotWith(runner: DovecotRunner, options: StartOptions): Promise<Dovecot> {
  const paths = instancePaths(options.dir)
  const hostPaths = instancePaths(runner.hostPath(options.dir))
  mkdirSync(hostPaths.dir, { recursive: true, mode: 0o755 })
  for (const [p, content] of Object.entries(options.files ?? {})) {
    const hp = runner.hostPath(p)
    mkdirSync(path.dirname(hp), { recursive: true, mode: 0o755 })
    writeFileSync(hp, content)
  }
  writeFileSync(hostPaths.configPath, options.config)
  await checkConfigWith(runner, paths.configPath)

  const c = runner.command("dovecot", ["-F", "-c", paths.configPath])
  const proc: ManagedProcess = await spawnManaged(c.cmd, c.args, { env: c.env })
  const readLog = () => readOr(hostPaths.logPath)
  const abortIf = () => {
    const info = proc.exitInfo()
    if (info === undefined) return undefined
    return `dovecot ${runner.version} (${paths.configPath}) exited early (code ${info.code}, signal ${info.signal})\n` +
      `output:\n${proc.output()}\nlog:\n${tail(readLog())}`
  }
  const timeoutMs = options.timeoutMs ?? 15_000
  try {
    const waitPaths = options.paths ?? [path.join(paths.baseDir, "login", "login")]
    for (const p of waitPaths) await waitForPath(runner.hostPath(p), { timeoutMs, abortIf })
    for (const t of options.tcp ?? []) await waitForTcp(t.host, t.port, { timeoutMs, abortIf })
  } catch (err) {
    await proc.stop()
    const msg = err instanceof Error ? err.message : String(err)
    throw new Error(`${msg}\n--- dovecot output:\n${proc.output()}\n--- log tail:\n${tail(readLog())}`)
  }

  return {
    version: runner.version,
    pid: proc.pid,
    paths,
    hostPaths,
    hostPath: (p) => runner.hostPath(p),
    log: readLog,
    output: () => proc.output(),
    doveadm: (args, timeoutMs = 20_000) => {
      const d = runner.command("doveadm", ["-c", paths.configPath, ...args])
      return runCommand(d.cmd, d.args, { env: d.env, timeoutMs })
    },
    exited: () => proc.exitInfo() !== undefined,
    stop: () => proc.stop()
  }
}

/** Stops all given instances in parallel; resolves when every master has exited. */
export async function stopDovecots(instances: ReadonlyArray<Dovecot | undefined>): Promise<Array<ExitInfo | undefined>> {
  return Promise.all(instances.map((d) => d?.stop()))
}

/** True when `p` exists on the host. */
export const hostExists = (p: string): boolean => existsSync(p)
