import type { LookupResult, LookupService } from "@doveroute/frontends"
import { LineSplitter } from "@doveroute/protocol"
import type { Backend } from "@doveroute/routing"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as net from "node:net"

/** A line client over a UNIX socket: send raw text, read LF-terminated reply lines. */
export class LineClient {
  private readonly splitter = new LineSplitter(1 << 20)
  private waiters: Array<() => void> = []
  readonly lines: Array<string> = []
  closed = false
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.splitter.push(d, (line) => this.lines.push(line))
      this.wake()
    })
    socket.on("close", () => {
      this.closed = true
      this.wake()
    })
    socket.on("error", () => {})
  }
  private wake() {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
  static connect(path: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path })
      s.once("connect", () => resolve(new LineClient(s)))
      s.once("error", reject)
    })
  }
  send(text: string): void {
    this.socket.write(text)
  }
  /** Wait until `n` lines arrived (or the socket closed, or the timeout passed). */
  async waitLines(n: number, timeoutMs = 5000): Promise<Array<string>> {
    const deadline = Date.now() + timeoutMs
    while (this.lines.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => {
          clearTimeout(t)
          r()
        })
      })
    }
    return this.lines.slice(0, n)
  }
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.waitLines(Number.MAX_SAFE_INTEGER, timeoutMs)
    return this.closed
  }
  close(): void {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// Auth-socket test helpers (auth server, relays)
// ---------------------------------------------------------------------------------------------


/** A short temp dir for sockets. */
export const shortTmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "dvr-fe-"))

/** {@link shortTmp} removed when the current scope closes. */
export const scopedTmp = Effect.acquireRelease(
  Effect.sync(shortTmp),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

export const backend = (id: number, hostname: string, hostip: string | null, state = 0): Backend => ({ id, hostname, hostip, state })

/** backend1.test with hostip 127.0.0.2 */
export const B1 = backend(1, "backend1.test", "127.0.0.2")
/** an IP as hostname, no hostip */
export const B2 = backend(2, "127.0.0.3", null)
/** a host name only (resolved by the test resolver to 127.0.0.9) */
export const B3 = backend(3, "named.test", null)
/** a host name that does not resolve */
export const B4 = backend(4, "nowhere.invalid", null)

/** Resolver for tests: named.test → 127.0.0.9, anything else fails. */
export const testResolver = (name: string): Promise<string> =>
  name === "named.test" ? Promise.resolve("127.0.0.9") : Promise.reject(new Error(`cannot resolve ${name}`))

/**
 * A scripted routing core: `routes[user]` is the backend, or "fail" for a temporary failure; unknown
 * users go to `fallback` (B1). `hold(user)` makes that user's lookups wait until `release(user)`.
 */
export const scriptedLookup = (
  routes: Record<string, Backend | "fail"> = {},
  fallback: Backend = B1,
  options: {
    /** Also answer at once (`cached`) for users neither held nor failing, as the routing table does. */
    readonly fromMemory?: boolean
  } = {}
) => {
  const calls: Array<{ user: string; frontend: string }> = []
  const held = new Map<string, Array<() => void>>()
  const holding = new Set<string>()
  const routed = (user: string, b: Backend): LookupResult => ({ _tag: "Routed", route: { user, key: user, backend: b, source: "existing" } })
  const service: LookupService = {
    lookup: async (user, frontend): Promise<LookupResult> => {
      calls.push({ user, frontend })
      if (holding.has(user)) await new Promise<void>((r) => held.set(user, [...(held.get(user) ?? []), r]))
      const b = routes[user] ?? fallback
      if (b === "fail") return { _tag: "TempFail", reason: "Unavailable", detail: "scripted failure" }
      return routed(user, b)
    },
    ...(options.fromMemory === true
      ? {
        cached: (user: string, frontend: string): LookupResult | undefined => {
          const b = routes[user] ?? fallback
          if (holding.has(user) || b === "fail") return undefined
          calls.push({ user, frontend })
          return routed(user, b)
        }
      }
      : {})
  }
  return {
    service,
    calls,
    hold: (user: string) => void holding.add(user),
    release: (user: string) => {
      holding.delete(user)
      for (const r of held.get(user) ?? []) r()
      held.delete(user)
    }
  }
}

/** A fake Dovecot auth socket: records what it receives, sends what the test tells it to. */
export class FakeUpstream {
  readonly sockets: Array<net.Socket> = []
  private received: Array<Buffer> = []
  private constructor(readonly server: net.Server, readonly path: string, readonly greeting: Buffer | undefined) {}

  static listen(socketPath: string, greeting?: string | Buffer): Promise<FakeUpstream> {
    return new Promise((resolve, reject) => {
      let up: FakeUpstream | undefined = undefined
      const server = net.createServer((s) => {
        up!.sockets.push(s)
        s.on("data", (d: Buffer) => up!.received.push(d))
        s.on("error", () => {})
        if (up!.greeting !== undefined) s.write(up!.greeting)
      })
      up = new FakeUpstream(server, socketPath, typeof greeting === "string" ? Buffer.from(greeting, "utf8") : greeting)
      server.once("error", reject)
      server.listen(socketPath, () => resolve(up!))
    })
  }

  /** Everything received so far on all connections. */
  bytes(): Buffer {
    return Buffer.concat(this.received)
  }

  /** Wait until at least `n` bytes were received. */
  async waitBytes(n: number, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    while (this.bytes().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    return this.bytes()
  }

  async waitConnections(n: number, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.sockets.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  }

  /** Send raw bytes on connection `i` (default the last one). */
  send(data: string | Buffer, i = this.sockets.length - 1): void {
    this.sockets[i]!.write(data)
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    return new Promise((r) => this.server.close(() => r()))
  }
}

/** A raw client collecting bytes (for byte-exact relay checks). */
export class RawClient {
  private chunks: Array<Buffer> = []
  closed = false
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.chunks.push(d))
    socket.on("close", () => (this.closed = true))
    socket.on("error", () => {})
  }
  static connect(p: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path: p })
      s.once("connect", () => resolve(new RawClient(s)))
      s.once("error", reject)
    })
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }
  text(): string {
    return this.bytes().toString("utf8")
  }
  async waitFor(pred: (b: Buffer) => boolean, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    while (!pred(this.bytes()) && !this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    return this.bytes()
  }
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    return this.closed
  }
  send(data: string | Buffer): void {
    this.socket.write(data)
  }
  close(): void {
    this.socket.destroy()
  }
}
