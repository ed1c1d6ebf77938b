/**
 * Child processes owned by the test run: spawned by us, output captured, stopped by PID with
 * SIGTERM and awaited. Only PIDs started here are ever signalled; at process exit any child still
 * running gets SIGTERM so no Dovecot master outlives a crashed test worker.
 */
import { spawn, type ChildProcess } from "node:child_process"

/** How a managed child ended: exit `code` (null when killed by a signal) or `signal`. */
export interface ExitInfo {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A running child started with {@link spawnManaged}. */
export interface ManagedProcess {
  /** Host PID of the child. */
  readonly pid: number
  /** Command line, for messages. */
  readonly description: string
  /** Resolves when the child has exited. */
  readonly exited: Promise<ExitInfo>
  /** Exit info once exited, else undefined. */
  exitInfo(): ExitInfo | undefined
  /** Captured stdout + stderr so far (interleaved in arrival order, capped at 4 MiB). */
  output(): string
  /**
   * SIGTERM, then wait up to `timeoutMs` (default 10 000) for the exit; then SIGKILL and wait
   * again. Resolves with the exit info; idempotent.
   */
  stop(timeoutMs?: number): Promise<ExitInfo>
}

/** Options for {@link spawnManaged}. */
export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** Also copy the child's output to this process's stderr (debugging). */
  readonly echo?: boolean
}

const live = new Map<number, ChildProcess>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const child of live.values()) {
      try { child.kill("SIGTERM") } catch { /* already gone */ }
    }
  })
}

const MAX_OUTPUT = 4 * 1024 * 1024

/** Spawns `cmd args…` as a child of this process (stdin closed, stdout/stderr captured). */
export function spawnManaged(cmd: string, args: ReadonlyArray<string>, options: SpawnOptions = {}): Promise<ManagedProcess> {
  installExitHook()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {})
    })
    const description = [cmd, ...args].join(" ")
    let out = ""
    const collect = (d: string) => {
      if (out.length < MAX_OUTPUT) out += d
      if (options.echo === true) process.stderr.write(d)
    }
    child.stdout?.setEncoding("utf8").on("data", collect)
    child.stderr?.setEncoding("utf8").on("data", collect)
    let info: ExitInfo | undefined
    const exited = new Promise<ExitInfo>((res) => {
      child.on("exit", (code, signal) => {
        info = { code, signal }
        if (child.pid !== undefined) live.delete(child.pid)
        res(info)
      })
    })
    child.once("error", (err) => {
      if (child.pid === undefined) reject(new Error(`cannot start ${description}: ${err.message}`))
    })
    child.once("spawn", () => {
      const pid = child.pid
      if (pid === undefined) return reject(new Error(`cannot start ${description}: no pid`))
      live.set(pid, child)
      let stopping: Promise<ExitInfo> | undefined
      resolve({
        pid,
        description,
        exited,
        exitInfo: () => info,
        output: () => out,
        stop: (timeoutMs = 10_000) => {
          stopping ??= (async () => {
            if (info !== undefined) return info
            child.kill("SIGTERM")
            const timedOut = Symbol("timeout")
            let timer: NodeJS.Timeout | undefined
            const r = await Promise.race([
              exited,
              new Promise<typeof timedOut>((res) => { timer = setTimeout(() => res(timedOut), timeoutMs) })
            ])
            clearTimeout(timer)
            if (r !== timedOut) return r
            child.kill("SIGKILL")
            return exited
          })()
          return stopping
        }
      })
    })
  })
}

/** Stops all given processes in parallel (see {@link ManagedProcess.stop}). */
export function stopAll(processes: ReadonlyArray<{ stop(): Promise<unknown> } | undefined>): Promise<void> {
  return Promise.all(processes.map((p) => p?.stop())).then(() => undefined)
}
