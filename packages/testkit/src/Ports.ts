/**
 * Free TCP ports and readiness waits (TCP port accepting, file/socket path existing).
 */
import { existsSync } from "node:fs"
import net from "node:net"
import { sleep } from "./Exec.js"

// Ports handed out by this process; never handed out twice, so two instances started from one
// test file cannot race for the same port between freePort() and the server's bind().
const handedOut = new Set<number>()

const bindOnce = (host: string, port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(undefined))
    server.listen({ host, port, exclusive: true }, () => {
      const addr = server.address()
      const got = typeof addr === "object" && addr !== null ? addr.port : undefined
      server.close(() => resolve(got))
    })
  })

/**
 * A TCP port that is free on `host` (bind to port 0, read the port, close). Also checks that the
 * same port is free on every address in `alsoOn` (e.g. both backend addresses 127.0.0.2 and
 * 127.0.0.3). Never returns the same port twice within one process. Rejects after 50 attempts.
 */
export async function freePort(host = "127.0.0.1", alsoOn: ReadonlyArray<string> = []): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindOnce(host, 0)
    if (port === undefined || handedOut.has(port)) continue
    let ok = true
    for (const other of alsoOn) {
      if ((await bindOnce(other, port)) !== port) { ok = false; break }
    }
    if (!ok) continue
    handedOut.add(port)
    return port
  }
  throw new Error(`freePort: no free port found on ${[host, ...alsoOn].join(", ")}`)
}

/** `n` distinct free ports (see {@link freePort}). */
export async function freePorts(n: number, host = "127.0.0.1", alsoOn: ReadonlyArray<string> = []): Promise<Array<number>> {
  const ports: Array<number> = []
  for (let i = 0; i < n; i++) ports.push(await freePort(host, alsoOn))
  return ports
}

/** True when a TCP connection to host:port is accepted (the connection is closed at once). */
export function tcpAccepts(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (ok: boolean) => {
      socket.removeAllListeners()
      socket.on("error", () => {})
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })
}

/** Options for the wait functions. `timeoutMs` default 10 000; `intervalMs` (poll) default 25. */
export interface WaitOptions {
  readonly timeoutMs?: number
  readonly intervalMs?: number
  /** Checked on every poll; when it returns a string the wait fails at once with that message. */
  readonly abortIf?: () => string | undefined
}

async function pollUntil(what: string, check: () => Promise<boolean> | boolean, options: WaitOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const intervalMs = options.intervalMs ?? 25
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const abort = options.abortIf?.()
    if (abort !== undefined) throw new Error(`gave up waiting for ${what}: ${abort}`)
    if (await check()) return
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** Waits until host:port accepts TCP connections; rejects after `timeoutMs` (default 10 s). */
export function waitForTcp(host: string, port: number, options: WaitOptions = {}): Promise<void> {
  return pollUntil(`tcp ${host}:${port}`, () => tcpAccepts(host, port, 500), options)
}

/** Waits until `path` exists (e.g. a UNIX socket); rejects after `timeoutMs` (default 10 s). */
export function waitForPath(path: string, options: WaitOptions = {}): Promise<void> {
  return pollUntil(`path ${path}`, () => existsSync(path), options)
}

/**
 * Polls `probe` (every 50 ms) until it holds or `timeoutMs` (default 5 s) has passed, and never
 * rejects: the caller asserts afterwards what it waited for, e.g. a line Dovecot's log process
 * writes a moment after the login it records.
 */
export async function settle(probe: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!probe() && Date.now() < deadline) await sleep(50)
}

/**
 * Waits until `read()` (a log) matches `pattern` and resolves with the first matching line
 * (Dovecot's log process writes a line a moment after the client got its answer); rejects after
 * `timeoutMs` (default 10 s) naming the pattern.
 */
export async function waitForLog(read: () => string, pattern: RegExp, options: WaitOptions = {}): Promise<string> {
  let line: string | undefined
  await pollUntil(`a log line matching ${pattern}`, () => (line = read().split("\n").find((l) => pattern.test(l))) !== undefined, options)
  return line!
}

/** Waits until `check()` is true; rejects after `timeoutMs` (default 10 s) naming `what`. */
export function waitUntil(what: string, check: () => Promise<boolean> | boolean, options: WaitOptions = {}): Promise<void> {
  return pollUntil(what, check, options)
}
