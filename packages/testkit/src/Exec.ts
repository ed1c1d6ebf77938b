/**
 * Running external commands (doveconf, doveadm, psql, the doveroute CLI) with captured output.
 */
import { spawn } from "node:child_process"

/** Outcome of a finished command: exit `code` (null when killed by a signal), captured text. */
export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Options for {@link runCommand}. */
export interface RunOptions {
  /** Kill (SIGKILL) the command after this many milliseconds; default 30 000. */
  readonly timeoutMs?: number
  /** Environment; default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv
  /** Working directory; default: this process's. */
  readonly cwd?: string
  /** Text written to the command's stdin (stdin is closed either way). */
  readonly input?: string
}

/**
 * Runs `cmd args…` to completion and returns its exit code and output. Never rejects for a
 * non-zero exit; rejects only when the command cannot be started (e.g. ENOENT) or on timeout.
 */
export function runCommand(cmd: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 30_000
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {})
    })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    child.stdout.setEncoding("utf8").on("data", (d: string) => { stdout += d })
    child.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d })
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("error", (err) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${cmd}: ${err.message}`))
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (timedOut) {
        reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
      } else {
        resolve({ code, signal, stdout, stderr })
      }
    })
    child.stdin.on("error", () => { /* command may exit before reading stdin */ })
    child.stdin.end(options.input ?? "")
  })
}

/** Like {@link runCommand} but rejects with the command's output when it exits non-zero. */
export async function runChecked(cmd: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<CommandResult> {
  const r = await runCommand(cmd, args, options)
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  }
  return r
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
