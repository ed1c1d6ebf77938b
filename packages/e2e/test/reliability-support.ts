// Support for the issue-8 reliability tests (reliability-*.test.ts): the daemon as a child with a
// raised fd limit, protocol clients for every listener, fake Dovecot upstreams for the relays, the
// known secrets and the checks every test ends with (daemon alive, no fatal/Unhandled, no secret
// in any log line or error message).
import { AuthMasterCodec, CLI_BIN, REPO_ROOT, spawnManaged, waitForPath, waitForTcp, type ManagedProcess } from "@doveroute/testkit"
import { AuthClient, LineSplitter } from "@doveroute/protocol"
import * as net from "node:net"
import { expect } from "vitest"

// ---- secrets -----------------------------------------------------------------------------------

/** The master password every reliability daemon runs with (`auth_mode=password`). */
export const MASTER_PASSWORD = "Mstr-7vQ2-zK9w-secret"
/** Passwords users type in the scenarios (right and wrong ones). */
export const USER_PASSWORDS = ["alice-pw-Xq81-secret", "wrong-pw-Jd72-secret", "relay-pw-Pp04-secret", "lmtp-pw-Rt55-secret"] as const
/** The password in the PostgreSQL store URL of the fault tests (trust auth ignores it). */
export const DB_PASSWORD = "db-pw-Hh31-secret"

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

/** Every form a secret could leak in: plain, base64 alone, and inside the PLAIN messages we send. */
export const secretNeedles = (): Array<string> => {
  const out = new Set<string>()
  for (const s of [MASTER_PASSWORD, ...USER_PASSWORDS, DB_PASSWORD]) {
    out.add(s)
    out.add(b64(s))
    out.add(encodeURIComponent(s))
  }
  for (const resp of sentResponses) out.add(resp)
  return [...out]
}

/** base64 SASL responses sent by {@link AuthLineClient} (they embed passwords). */
const sentResponses = new Set<string>()

/** Fails with the offending line when `text` contains any secret. */
export const expectNoSecrets = (text: string, where: string): void => {
  const hits: Array<string> = []
  for (const needle of secretNeedles()) {
    const i = text.indexOf(needle)
    if (i !== -1) hits.push(`${JSON.stringify(needle)} in: ${text.slice(Math.max(0, text.lastIndexOf("\n", i) + 1), text.indexOf("\n", i) === -1 ? undefined : text.indexOf("\n", i)).slice(0, 300)}`)
  }
  expect(hits, `secrets in ${where}`).toEqual([])
}

// ---- the daemon --------------------------------------------------------------------------------

/** A daemon child: logs, liveness, SIGTERM stop, SIGKILL. */
export interface Daemon {
  readonly pid: number
  readonly proc: ManagedProcess
  logs(): string
  alive(): boolean
  stop(): Promise<number | null>
  kill9(): Promise<void>
}

export interface DaemonStart {
  readonly args: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly waitFor?: ReadonlyArray<string>
  readonly waitForTcp?: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** Open-file limit for the child (`ulimit -n`, at most the hard limit); default unchanged. */
  readonly nofile?: number
}

/**
 * `doveroute serve <args>` as a child: `bash -c 'ulimit -n N; exec node …'` (exec keeps the PID,
 * so SIGKILL reaches node itself). Waits for the sockets / TCP endpoints.
 */
export async function startDaemon(o: DaemonStart): Promise<Daemon> {
  const quoted = [process.execPath, CLI_BIN, "serve", ...o.args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")
  const script = o.nofile !== undefined ? `ulimit -n ${o.nofile} && exec ${quoted}` : `exec ${quoted}`
  const proc = await spawnManaged("bash", ["-c", script], {
    env: { ...process.env, ...(o.env ?? {}) },
    cwd: REPO_ROOT,
    ...(process.env["DVR_ECHO"] !== undefined ? { echo: true } : {})
  })
  const wait = {
    timeoutMs: 30_000,
    abortIf: () => {
      const i = proc.exitInfo()
      return i === undefined ? undefined : `doveroute exited early (${JSON.stringify(i)}):\n${proc.output()}`
    }
  }
  try {
    // connectable, not just present: after a kill -9 the old socket file is still there
    for (const p of o.waitFor ?? []) {
      await waitForPath(p, wait)
      const deadline = Date.now() + wait.timeoutMs
      while (!(await unixAccepts(p))) {
        const why = wait.abortIf()
        if (why !== undefined) throw new Error(why)
        if (Date.now() > deadline) throw new Error(`${p} does not accept connections`)
        await new Promise((r) => setTimeout(r, 25))
      }
    }
    for (const t of o.waitForTcp ?? []) await waitForTcp(t.host, t.port, wait)
  } catch (e) {
    await proc.stop()
    throw e
  }
  return {
    pid: proc.pid,
    proc,
    logs: () => proc.output(),
    alive: () => proc.exitInfo() === undefined,
    stop: async () => (await proc.stop()).code,
    kill9: async () => {
      if (proc.exitInfo() === undefined) process.kill(proc.pid, "SIGKILL")
      await proc.exited
    }
  }
}

/** True when a UNIX socket accepts a connection (closed at once). */
const unixAccepts = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect({ path })
    c.once("connect", () => {
      c.destroy()
      resolve(true)
    })
    c.once("error", () => resolve(false))
  })

/** The checks after every scenario: alive, nothing fatal or unhandled logged, no secret. */
export const expectHealthy = (d: Daemon, where: string): void => {
  expect(d.alive(), `${where}: daemon alive`).toBe(true)
  const bad = d.logs().split("\n").filter((l) => /fatal|unhandled|uncaught|level=ERROR/i.test(l))
  expect(bad.slice(0, 5), `${where}: fatal/unhandled/error log lines`).toEqual([])
  expectNoSecrets(d.logs(), `${where}: daemon output`)
}

/** Open-file limit usable for children (the hard limit). */
export const hardNofile = async (): Promise<number> => {
  const { runCommand } = await import("@doveroute/testkit")
  const r = await runCommand("bash", ["-c", "ulimit -Hn"])
  const n = Number(r.stdout.trim())
  return Number.isFinite(n) ? n : 1024
}

// ---- line clients ------------------------------------------------------------------------------

/** A raw connection that collects bytes and notices the close. */
export class RawConn {
  private chunks: Array<Buffer> = []
  closed = false
  private waiters: Array<() => void> = []
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d)
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
  static connect(target: string | { readonly host: string; readonly port: number }): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = typeof target === "string" ? net.connect({ path: target }) : net.connect(target)
      s.once("error", reject)
      s.once("connect", () => {
        s.off("error", reject)
        resolve(new RawConn(s))
      })
    })
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }
  text(): string {
    return this.bytes().toString("utf8")
  }
  lines(): Array<string> {
    const t = this.text()
    const parts = t.split("\n")
    return parts.slice(0, -1)
  }
  send(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data)
  }
  /** Wait until `pred` holds, the peer closed, or the timeout passed; resolves with `pred()`. */
  async until(pred: () => boolean, timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!pred() && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => {
          clearTimeout(t)
          r()
        })
      })
    }
    return pred()
  }
  async waitClosed(timeoutMs = 3000): Promise<boolean> {
    await this.until(() => this.closed, timeoutMs)
    return this.closed
  }
  close(): void {
    this.socket.destroy()
  }
}

/** Auth-client protocol client: handshake, PLAIN logins matched by id. */
export class AuthLineClient {
  private nextId = 1
  private readonly lines = new LineSplitter(1 << 20)
  private readonly pending = new Map<string, (line: string) => void>()
  private handshake: Array<string> = []
  private done!: () => void
  readonly ready: Promise<void>
  closed = false

  private constructor(readonly socket: net.Socket) {
    this.ready = new Promise((r) => (this.done = r))
    socket.on("data", (d: Buffer) => this.lines.push(d, (line) => {
      if (this.handshake !== undefined && !this.handshake.includes("DONE")) {
        this.handshake.push(line)
        if (line === "DONE") this.done()
        return
      }
      const id = line.split("\t")[1] ?? ""
      const cb = this.pending.get(id)
      if (cb !== undefined && !line.startsWith("CONT\t")) {
        this.pending.delete(id)
        cb(line)
      }
    }))
    const fail = () => {
      this.closed = true
      for (const cb of this.pending.values()) cb("X closed")
      this.pending.clear()
      // a connection closed before the handshake finished: `ready` must not hang (logins then say "X closed")
      this.done()
    }
    socket.on("close", fail)
    socket.on("error", () => {})
  }

  static async connect(target: string, minor = 2): Promise<AuthLineClient> {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ path: target })
      c.once("error", reject)
      c.once("connect", () => resolve(c))
    })
    const c = new AuthLineClient(s)
    s.write(`VERSION\t1\t${minor}\nCPID\t${process.pid}\n`)
    return c
  }

  /** A PLAIN login with an initial response; resolves with the final line (`OK…`/`FAIL…`, `X closed`). */
  login(user: string, password: string, extra = "service=imap"): Promise<string> {
    const id = String(this.nextId++)
    const resp = b64(`\0${user}\0${password}`)
    sentResponses.add(resp)
    return new Promise((resolve) => {
      if (this.closed) return resolve("X closed")
      this.pending.set(id, resolve)
      this.socket.write(`AUTH\t${id}\tPLAIN\t${extra}\tresp=${resp}\n`)
    })
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Auth-master protocol client (userdb relay): PASS lookups, replies in order. */
export class MasterLineClient {
  private nextId = 1
  private readonly lines = new LineSplitter(1 << 20)
  private readonly pending = new Map<string, (line: string) => void>()
  closed = false
  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.lines.push(d, (line) => {
      const id = line.split("\t")[1] ?? ""
      const cb = this.pending.get(id)
      if (cb !== undefined && /^(PASS|USER|NOTFOUND|FAIL)\t/.test(line)) {
        this.pending.delete(id)
        cb(line)
      }
    }))
    socket.on("close", () => {
      this.closed = true
      for (const cb of this.pending.values()) cb("X closed")
      this.pending.clear()
    })
    socket.on("error", () => {})
  }
  static async connect(target: string): Promise<MasterLineClient> {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ path: target })
      c.once("error", reject)
      c.once("connect", () => resolve(c))
    })
    s.write("VERSION\t1\t0\n")
    return new MasterLineClient(s)
  }
  pass(user: string): Promise<string> {
    const id = String(this.nextId++)
    return new Promise((resolve) => {
      if (this.closed) return resolve("X closed")
      this.pending.set(id, resolve)
      this.socket.write(`PASS\t${id}\t${user}\tservice=lmtp\tlip=127.0.0.1\tlport=24\n`)
    })
  }
  close(): void {
    this.socket.destroy()
  }
}

// ---- fake Dovecot upstreams for the relays ------------------------------------------------------

/**
 * A stand-in for Dovecot's login socket (`login/login`) or `auth-userdb`: sends the handshake,
 * answers AUTH (PLAIN, password `USER_PASSWORDS[2]` right) or PASS with a proxy reply **without**
 * `host=` (the relay completes it), and — like Dovecot — closes the connection on a line it cannot
 * parse. Users named `evil…` get hostile reply lines instead (what a broken upstream could send).
 */
export class FakeDovecot {
  readonly sockets = new Set<net.Socket>()
  received = 0
  private evilCounter = 0
  private constructor(readonly server: net.Server, readonly kind: "login" | "userdb", private readonly evil: ReadonlyArray<string>) {}

  static listen(path: string, kind: "login" | "userdb", evilReplies: ReadonlyArray<string> = []): Promise<FakeDovecot> {
    return new Promise((resolve, reject) => {
      let fake: FakeDovecot | undefined
      const server = net.createServer((s) => fake!.accept(s))
      fake = new FakeDovecot(server, kind, evilReplies)
      server.once("error", reject)
      server.listen(path, () => resolve(fake!))
    })
  }

  private accept(s: net.Socket): void {
    this.sockets.add(s)
    s.on("close", () => this.sockets.delete(s))
    s.on("error", () => {})
    s.write(
      this.kind === "login"
        ? "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t4242\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"
        : "VERSION\t1\t1\nSPID\t4242\n"
    )
    let buf = Buffer.alloc(0)
    s.on("data", (d: Buffer) => {
      this.received += d.length
      buf = Buffer.concat([buf, d])
      let nl: number
      while ((nl = buf.indexOf(10)) !== -1) {
        // bytes in, bytes out (latin1): like Dovecot, never re-encode what a client sent
        const line = buf.subarray(0, nl).toString("latin1")
        buf = buf.subarray(nl + 1)
        const reply = this.answer(line, () => this.evil[this.evilCounter++ % Math.max(1, this.evil.length)] ?? "")
        if (reply === "close") return void s.destroy()
        if (reply !== undefined) s.write(Buffer.from(reply, "latin1"))
      }
      if (buf.length > 16384) s.destroy()
    })
  }

  private answer(line: string, nextEvil: () => string): string | "close" | undefined {
    if (this.kind === "login") {
      const m = AuthClient.decodeClientLine(line)
      switch (m._tag) {
        case "Invalid":
          return "close"
        case "Version":
        case "Cpid":
        case "Cancel":
          return undefined
        case "Cont":
          return `FAIL\t${m.id}\n`
        case "Auth": {
          const raw = m.resp === undefined ? undefined : Buffer.from(m.resp, "base64").toString("latin1").split("\0")
          const user = raw?.[1] ?? ""
          if (user.startsWith("evil")) return nextEvil() + "\n"
          if (raw === undefined || raw[2] !== Buffer.from(USER_PASSWORDS[2]).toString("latin1")) return `FAIL\t${m.id}\tuser=${user}\n`
          return `OK\t${m.id}\tuser=${user}\tproxy\tpass=${raw[2]}\n`
        }
      }
    }
    const r = AuthMasterCodec.decodeRequest(line)
    switch (r._tag) {
      case "Invalid":
      case "Cpid":
        return "close"
      case "Pass":
        if (r.user.startsWith("evil")) return nextEvil() + "\n"
        return `PASS\t${r.id}\tuser=${r.user}\tproxy=y\n`
      case "User":
        return `USER\t${r.id}\t${r.user}\tuid=5000\n`
      case "List":
        return `DONE\t${r.id}\t\n`
      default:
        return undefined
    }
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    return new Promise((r) => this.server.close(() => r()))
  }
}

// ---- measuring ---------------------------------------------------------------------------------

/** p-th percentile (0–100) of numbers. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}

/** Run `fn` in a loop until `stop()` says so; records each result and latency. */
export function loop<T>(fn: () => Promise<T>, check: (r: T) => boolean) {
  const results: Array<{ ok: boolean; ms: number; value: T }> = []
  let running = true
  const done = (async () => {
    while (running) {
      const t0 = performance.now()
      const value = await fn()
      results.push({ ok: check(value), ms: performance.now() - t0, value })
    }
  })()
  return {
    results,
    stop: async () => {
      running = false
      await done
    }
  }
}
