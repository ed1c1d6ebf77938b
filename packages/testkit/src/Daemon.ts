/**
 * The doveroute daemon and CLI as child processes (`node packages/cli/bin/doveroute.mjs …`).
 * Contract: `doveroute serve [--config FILE] [--store URL] [--strategy mapping|shard]
 * [--dict-socket PATH] [--extra-field KEY[=VALUE] …]` runs until SIGTERM, then removes its sockets
 * and exits 0; `backend add|list`, `lookup` are one-shot commands.
 */
import { fileURLToPath } from "node:url"
import path from "node:path"
import { runCommand, type CommandResult } from "./Exec.js"
import { waitForPath, waitForTcp, type WaitOptions } from "./Ports.js"
import { spawnManaged } from "./Process.js"
import { stopDovecots, type Dovecot } from "./DovecotInstance.js"

/** Repository root (resolved from this file: packages/testkit/src → ../../..). */
export const REPO_ROOT: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

/** The CLI launcher, `<repo>/packages/cli/bin/doveroute.mjs`. */
export const CLI_BIN: string = path.join(REPO_ROOT, "packages", "cli", "bin", "doveroute.mjs")

/** Options for {@link startDaemon}. */
export interface DaemonOptions {
  /** Arguments after `serve`. */
  readonly args: ReadonlyArray<string>
  /** Host paths (sockets) that must exist before the daemon counts as ready. */
  readonly waitFor?: ReadonlyArray<string>
  /** TCP endpoints that must accept before it counts as ready. */
  readonly waitForTcp?: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Readiness timeout in ms; default 20 000. */
  readonly timeoutMs?: number
  /** Copy the daemon's output to stderr as it comes. */
  readonly echo?: boolean
}

/** A running `doveroute serve`. */
export interface RunningDaemon {
  readonly pid: number
  /** stdout+stderr captured so far. */
  logs(): string
  /** True once it has exited. */
  exited(): boolean
  /** SIGTERM and wait (SIGKILL after 10 s); resolves with the exit code (null: killed by signal). */
  stop(): Promise<number | null>
}

/**
 * Spawns `node <CLI_BIN> serve <args>` and waits for `waitFor` paths / TCP endpoints. Rejects with
 * the captured logs when it exits first or is not ready within `timeoutMs`.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const proc = await spawnManaged(process.execPath, [CLI_BIN, "serve", ...options.args], {
    env: { ...process.env, ...(options.env ?? {}) },
    cwd: REPO_ROOT,
    ...(options.echo !== undefined ? { echo: options.echo } : {})
  })
  const wait: WaitOptions = {
    timeoutMs: options.timeoutMs ?? 20_000,
    abortIf: () => {
      const info = proc.exitInfo()
      return info === undefined ? undefined : `doveroute exited early (code ${info.code}, signal ${info.signal})`
    }
  }
  try {
    for (const p of options.waitFor ?? []) await waitForPath(p, wait)
    for (const t of options.waitForTcp ?? []) await waitForTcp(t.host, t.port, wait)
  } catch (err) {
    await proc.stop()
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- doveroute ${options.args.join(" ")} output:\n${proc.output()}`)
  }
  return {
    pid: proc.pid,
    logs: () => proc.output(),
    exited: () => proc.exitInfo() !== undefined,
    stop: async () => (await proc.stop()).code
  }
}

/** Runs `node <CLI_BIN> args…` to completion (default timeout 30 s); never rejects on non-zero exit. */
export function runCli(args: ReadonlyArray<string>, options: { readonly env?: Readonly<Record<string, string>>; readonly timeoutMs?: number; readonly input?: string } = {}): Promise<CommandResult> {
  return runCommand(process.execPath, [CLI_BIN, ...args], {
    env: { ...process.env, ...(options.env ?? {}) },
    cwd: REPO_ROOT,
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.input !== undefined ? { input: options.input } : {})
  })
}

/**
 * A test's teardown: stops the daemons and the Dovecots together, then removes the temp dir (any
 * of them may be undefined when a `beforeAll` failed half-way); resolves with the daemons' exit
 * codes, in order.
 */
export async function teardown(
  daemons: ReadonlyArray<RunningDaemon | undefined>,
  dovecots: ReadonlyArray<Dovecot | undefined>,
  tmp?: { cleanup(): Promise<void> }
): Promise<Array<number | null | undefined>> {
  const [codes] = await Promise.all([Promise.all(daemons.map((d) => d?.stop())), stopDovecots(dovecots)])
  await tmp?.cleanup()
  return codes
}
