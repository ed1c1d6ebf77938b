/**
 * The load generator: plain `node:net` on the hot path (no Effect), closed loop, N connections,
 * each keeping up to `depth` requests in flight. Every reply is checked; a wrong or failed reply
 * is an error and never counts as throughput.
 *
 * Modes:
 * - `auth`: Dovecot auth-client protocol. Per connection: read the server handshake up to `DONE`
 *   (must start with `VERSION\t1\t…` and offer `MECH\tPLAIN`), send `VERSION\t1\t2` + `CPID`, then
 *   `AUTH\t<id>\tPLAIN\tservice=imap\tresp=<b64 \0user\0pass>` pipelined; replies matched by id.
 *   Correct = `OK\t<id>\tuser=<user>…` with `host=<expected host>`.
 * - `dict`: Dovecot dict proxy protocol. Per connection `H3\t2\t0\t\tdirector`, then
 *   `Lshared/passdb/<user>\t<user>`; replies in order. Correct = `O{…"host":"<expected>"…}`.
 * - `line`: the same AUTH request lines (same sizes) with no handshake; each line must get exactly
 *   `lineReply` back, in order (for the bare-socket limit).
 *
 * Expected hosts: `expected.get(user)` when known (e.g. from a warm-up pass or the rows inserted);
 * otherwise the host must be in `hosts` (when given) and the same user must always get the same
 * host within the run (`seen` collects them, so the caller can check them against the store).
 */
import { Sasl, TabEscape } from "@doveroute/protocol"
import * as net from "node:net"
import { performance } from "node:perf_hooks"
import { type LatencySummary, LatencyRecorder } from "./Latency.js"

export type LoadMode = "auth" | "dict" | "line"

export interface LoadOptions {
  readonly mode: LoadMode
  /** UNIX socket path of the server. */
  readonly socket: string
  readonly connections: number
  /** Requests in flight per connection (default 1: one request, wait, next, like a login process). */
  readonly depth?: number
  /** Measured window in ms (default 5000); ignored when `sequential`. */
  readonly durationMs?: number
  /** Load before the measured window, not counted in throughput/latency (default 0). Errors still count. */
  readonly warmupMs?: number
  /** Known ("warm") user pool; requests pick uniformly at random from it. */
  readonly users: ReadonlyArray<string>
  /** Share of requests (0..1) that use a never-seen user `<newUserPrefix><n>` (default 0). */
  readonly newShare?: number
  /** Prefix of first-time users; must be unique per run (default `new-<random>-`). */
  readonly newUserPrefix?: string
  /** Expected host per user. */
  readonly expected?: ReadonlyMap<string, string>
  /** Valid hosts for users without an expectation. */
  readonly hosts?: ReadonlySet<string>
  /** Filled with user → host for every user without an expectation. */
  readonly seen?: Map<string, string>
  /** Send every pool user exactly once (spread over the connections), then stop. */
  readonly sequential?: boolean
  /** PLAIN password (default "secret"). */
  readonly password?: string
  /** `service=` of AUTH (default "imap"). */
  readonly service?: string
  /** Line mode: the exact reply line expected (without LF). */
  readonly lineReply?: string
  /** Dict name in the hello (default "director"). */
  readonly dictName?: string
  /** Wait for outstanding replies after the window (default 10 000 ms); what is left counts as `timeout`. */
  readonly drainTimeoutMs?: number
  /** Connect + handshake timeout (default 10 000 ms). */
  readonly connectTimeoutMs?: number
}

export interface LoadResult {
  readonly mode: LoadMode
  readonly connections: number
  readonly depth: number
  readonly newShare: number
  /** Length of the measured window in ms. */
  readonly windowMs: number
  /** Correct replies completed inside the window. */
  readonly ok: number
  /** `ok` per second of window. */
  readonly rps: number
  /** Latency of the correct replies inside the window (µs, send → reply). */
  readonly latencyUs: LatencySummary
  /** Wrong, failed, lost or missing replies over the whole run (warm-up and drain included). */
  readonly errors: number
  readonly errorKinds: Readonly<Record<string, number>>
  /** The first few offending lines, prefixed with the error kind. */
  readonly errorSamples: ReadonlyArray<string>
  /** Requests sent / reply lines received over the whole run. */
  readonly sent: number
  readonly replies: number
  /** Mean reply size in bytes, LF included. */
  readonly replyBytesMean: number
  /** First-time users sent. */
  readonly newUsers: number
}

interface Slot {
  readonly user: string
  readonly t0: number
}

const DICT_KEY_PREFIX = "shared/passdb/"
let cpidCounter = (process.pid * 64) % 1_000_000_000

/** `\0user\0password` as base64, PLAIN's initial response. */
const plainResp = (user: string, password: string): string => Sasl.encodePlain("", user, password)

/**
 * Runs one load run and resolves with its result. Rejects only when no connection can be opened
 * (or none finishes its handshake) within the connect timeout.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const run = new LoadRun(o)
  return run.start()
}

class LoadRun {
  readonly depth: number
  readonly newShare: number
  readonly password: string
  readonly service: string
  readonly newPrefix: string
  readonly lat = new LatencyRecorder()
  readonly errorKinds: Record<string, number> = {}
  readonly errorSamples: Array<string> = []
  /** Per pool user: the request line minus the per-request id part (auth/line: after the id). */
  private readonly poolReq: Array<string>
  errors = 0
  ok = 0
  sent = 0
  replies = 0
  replyBytes = 0
  newUsers = 0
  seqNext = 0
  /** Measured window [wStart, wEnd) in performance.now() ms; Infinity until started. */
  wStart = Infinity
  wEnd = Infinity
  running = false
  conns: Array<Conn> = []
  private onIdle: (() => void) | undefined

  constructor(readonly o: LoadOptions) {
    this.depth = Math.max(1, Math.floor(o.depth ?? 1))
    this.newShare = Math.min(1, Math.max(0, o.newShare ?? 0))
    this.password = o.password ?? "secret"
    this.service = o.service ?? "imap"
    this.newPrefix = o.newUserPrefix ?? `new-${Math.random().toString(36).slice(2, 8)}-`
    if (o.mode === "line" && o.lineReply === undefined) throw new Error("line mode needs lineReply")
    if (o.users.length === 0 && this.newShare < 1 && o.sequential !== true) throw new Error("no users and newShare < 1")
    this.poolReq = o.users.map((u) => this.requestTail(u))
  }

  /** The part of a request line that depends only on the user. */
  private requestTail(user: string): string {
    if (this.o.mode === "dict") {
      const u = TabEscape.escape(user)
      return `L${DICT_KEY_PREFIX}${u}\t${u}\n`
    }
    return `\tPLAIN\tservice=${this.service}\tresp=${plainResp(user, this.password)}\n`
  }

  error(kind: string, line: string): void {
    this.errors++
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1
    if (this.errorSamples.length < 8) this.errorSamples.push(`${kind}: ${line.length > 300 ? line.slice(0, 300) + "…" : line}`)
  }

  /** Next user to send: `[user, precomputed tail or undefined]`, or undefined when nothing is left (sequential). */
  pick(): { user: string; tail: string } | undefined {
    const users = this.o.users
    if (this.o.sequential === true) {
      if (this.seqNext >= users.length) return undefined
      const i = this.seqNext++
      return { user: users[i]!, tail: this.poolReq[i]! }
    }
    if (users.length === 0 || (this.newShare > 0 && Math.random() < this.newShare)) {
      const user = this.newPrefix + String(this.newUsers++)
      return { user, tail: this.requestTail(user) }
    }
    const i = Math.floor(Math.random() * users.length)
    return { user: users[i]!, tail: this.poolReq[i]! }
  }

  /** Checks the host of a reply; returns an error kind or undefined when correct. */
  checkHost(user: string, host: string | undefined): string | undefined {
    if (host === undefined) return "no-host"
    const exp = this.o.expected?.get(user)
    if (exp !== undefined) return exp === host ? undefined : "wrong-host"
    if (this.o.hosts !== undefined && !this.o.hosts.has(host)) return "unknown-host"
    const seen = this.o.seen
    if (seen !== undefined) {
      const prev = seen.get(user)
      if (prev === undefined) seen.set(user, host)
      else if (prev !== host) return "inconsistent-host"
    }
    return undefined
  }

  /** A correct reply for a request sent at t0 arrived at t1. */
  good(t0: number, t1: number): void {
    if (t1 >= this.wStart && t1 < this.wEnd) {
      this.ok++
      this.lat.add((t1 - t0) * 1000)
    }
  }

  canSend(): boolean {
    return this.running
  }

  maybeIdle(): void {
    if (this.onIdle === undefined) return
    for (const c of this.conns) if (c.inFlight > 0 && !c.dead) return
    const f = this.onIdle
    this.onIdle = undefined
    f()
  }

  async start(): Promise<LoadResult> {
    const o = this.o
    const connectTimeout = o.connectTimeoutMs ?? 10_000
    const n = Math.max(1, Math.floor(o.connections))
    this.conns = Array.from({ length: n }, () => new Conn(this))
    const ready = await Promise.allSettled(this.conns.map((c) => c.open(connectTimeout)))
    const failed = ready.filter((r) => r.status === "rejected") as Array<PromiseRejectedResult>
    if (failed.length === n) {
      for (const c of this.conns) c.close()
      throw new Error(`load: no connection to ${o.socket} could be opened: ${String(failed[0]!.reason)}`)
    }
    for (const r of failed) this.error("connect", String(r.reason))

    const t0 = performance.now()
    const sequential = o.sequential === true
    this.wStart = sequential ? t0 : t0 + (o.warmupMs ?? 0)
    this.wEnd = sequential ? Infinity : this.wStart + (o.durationMs ?? 5000)
    this.running = true
    for (const c of this.conns) c.kick()

    if (sequential) {
      await new Promise<void>((resolve) => {
        this.onIdle = resolve
        this.maybeIdle()
      })
      this.wEnd = performance.now()
      this.running = false
    } else {
      await new Promise((r) => setTimeout(r, Math.max(0, this.wEnd - performance.now())))
      this.running = false
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.onIdle = undefined
          resolve()
        }, o.drainTimeoutMs ?? 10_000)
        this.onIdle = () => {
          clearTimeout(timer)
          resolve()
        }
        this.maybeIdle()
      })
    }
    for (const c of this.conns) {
      if (!c.dead && c.inFlight > 0) for (let i = 0; i < c.inFlight; i++) this.error("timeout", `no reply within the drain timeout (${c.inFlight} outstanding)`)
      c.close()
    }
    const windowMs = Math.max(1e-6, this.wEnd - this.wStart)
    return {
      mode: o.mode,
      connections: n,
      depth: this.depth,
      newShare: this.newShare,
      windowMs: Math.round(windowMs),
      ok: this.ok,
      rps: Math.round((this.ok / windowMs) * 1000),
      latencyUs: this.lat.summary(),
      errors: this.errors,
      errorKinds: { ...this.errorKinds },
      errorSamples: [...this.errorSamples],
      sent: this.sent,
      replies: this.replies,
      replyBytesMean: this.replies === 0 ? 0 : Math.round((this.replyBytes / this.replies) * 10) / 10,
      newUsers: this.newUsers
    }
  }
}

/** One client connection. */
class Conn {
  socket: net.Socket | undefined
  tail = ""
  ready = false
  dead = false
  inFlight = 0
  nextId = 1
  /** auth: by id. */
  readonly byId = new Map<number, Slot>()
  /** dict/line: in order. */
  fifo: Array<Slot> = []
  fifoHead = 0
  private handshake: Array<string> = []
  private resolveReady: (() => void) | undefined
  private rejectReady: ((e: Error) => void) | undefined

  constructor(readonly run: LoadRun) {}

  open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`connect/handshake timeout after ${timeoutMs} ms`)), timeoutMs)
      const fail = (e: Error) => {
        clearTimeout(timer)
        this.dead = true
        this.socket?.destroy()
        this.resolveReady = undefined
        this.rejectReady = undefined
        reject(e)
      }
      this.resolveReady = () => {
        clearTimeout(timer)
        this.resolveReady = undefined
        this.rejectReady = undefined
        resolve()
      }
      this.rejectReady = fail
      const s = net.connect({ path: this.run.o.socket })
      this.socket = s
      s.setEncoding("utf8")
      s.on("data", this.onData)
      s.on("error", (e) => {
        if (this.rejectReady !== undefined) return this.rejectReady(e)
        this.lost(`socket error: ${e.message}`)
      })
      s.on("close", () => {
        if (this.rejectReady !== undefined) return this.rejectReady(new Error("closed during handshake"))
        this.lost("connection closed by the server")
      })
      s.once("connect", () => {
        const mode = this.run.o.mode
        if (mode === "dict") {
          s.write(`H3\t2\t0\t\t${this.run.o.dictName ?? "director"}\n`)
          this.markReady()
        } else if (mode === "line") {
          this.markReady()
        }
        // auth: wait for the server's handshake up to DONE (onData)
      })
    })
  }

  private markReady(): void {
    this.ready = true
    this.resolveReady?.()
  }

  private lost(why: string): void {
    if (this.dead) return
    this.dead = true
    if (this.inFlight > 0) {
      for (let i = 0; i < this.inFlight; i++) this.run.error("lost", why)
    } else if (this.run.running) {
      this.run.error("disconnect", why)
    }
    this.inFlight = 0
    this.byId.clear()
    this.fifo = []
    this.fifoHead = 0
    this.run.maybeIdle()
  }

  close(): void {
    this.dead = true
    this.socket?.destroy()
  }

  kick(): void {
    if (this.dead || !this.ready) return
    const out = this.fill("")
    if (out.length > 0) this.socket!.write(out)
  }

  /** Appends requests until `depth` are in flight; returns `out`. */
  private fill(out: string): string {
    const run = this.run
    if (!run.canSend()) return out
    const mode = run.o.mode
    while (this.inFlight < run.depth) {
      const p = run.pick()
      if (p === undefined) break
      const slot: Slot = { user: p.user, t0: performance.now() }
      if (mode === "auth") {
        const id = this.nextId++
        if (this.nextId > 0xffffffff) this.nextId = 1
        this.byId.set(id, slot)
        out += `AUTH\t${id}${p.tail}`
      } else if (mode === "line") {
        this.fifo.push(slot)
        out += `AUTH\t${this.nextId++}${p.tail}`
      } else {
        this.fifo.push(slot)
        out += p.tail
      }
      this.inFlight++
      run.sent++
    }
    return out
  }

  private onData = (chunk: string): void => {
    let buf = this.tail.length > 0 ? this.tail + chunk : chunk
    let start = 0
    let out = ""
    for (let nl = buf.indexOf("\n"); nl !== -1; nl = buf.indexOf("\n", start)) {
      const line = buf.slice(start, nl)
      start = nl + 1
      if (!this.ready) {
        this.onHandshakeLine(line)
        if (this.dead) return
        continue
      }
      this.onReply(line)
      if (this.dead) return
      out = this.fill(out)
    }
    this.tail = start < buf.length ? buf.slice(start) : ""
    buf = ""
    if (this.tail.length > 70_000) {
      this.run.error("line-too-long", this.tail.slice(0, 100))
      this.close()
      this.lost("line too long")
      return
    }
    if (out.length > 0) this.socket!.write(out)
    if (this.inFlight === 0) this.run.maybeIdle()
  }

  private onHandshakeLine(line: string): void {
    this.handshake.push(line)
    if (this.handshake.length === 1 && !line.startsWith("VERSION\t1\t")) {
      return this.rejectReady?.(new Error(`bad auth handshake: ${JSON.stringify(line)}`))
    }
    if (line !== "DONE") return
    if (!this.handshake.some((l) => l === "MECH\tPLAIN" || l.startsWith("MECH\tPLAIN\t"))) {
      return this.rejectReady?.(new Error(`server offers no PLAIN: ${JSON.stringify(this.handshake)}`))
    }
    this.socket!.write(`VERSION\t1\t2\nCPID\t${++cpidCounter}\n`)
    this.markReady()
  }

  private onReply(line: string): void {
    const run = this.run
    const t1 = performance.now()
    run.replies++
    run.replyBytes += line.length + 1
    const mode = run.o.mode
    if (mode === "auth") return this.onAuthReply(line, t1)
    if (this.fifoHead >= this.fifo.length) return run.error("unexpected", line)
    const slot = this.fifo[this.fifoHead++]!
    if (this.fifoHead > 1024 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead)
      this.fifoHead = 0
    }
    this.inFlight--
    if (mode === "line") {
      if (line === run.o.lineReply) run.good(slot.t0, t1)
      else run.error("wrong-reply", line)
      return
    }
    // dict
    const c = line.charCodeAt(0)
    if (c === 79 /* O */) {
      let host: string | undefined
      const i = line.indexOf("\"host\":\"")
      if (i !== -1) {
        const e = line.indexOf("\"", i + 8)
        if (e !== -1) host = line.slice(i + 8, e)
      }
      const bad = run.checkHost(slot.user, host)
      if (bad === undefined) run.good(slot.t0, t1)
      else run.error(bad, `${slot.user}: ${line}`)
    } else if (c === 78 /* N */) {
      run.error("not-found", `${slot.user}: ${line}`)
    } else if (c === 70 /* F */) {
      run.error("fail", `${slot.user}: ${line}`)
    } else {
      run.error("unexpected", `${slot.user}: ${line}`)
    }
  }

  private onAuthReply(line: string, t1: number): void {
    const run = this.run
    const t = line.indexOf("\t")
    const cmd = t === -1 ? line : line.slice(0, t)
    if (cmd !== "OK" && cmd !== "FAIL" && cmd !== "CONT") return run.error("unexpected", line)
    const t2 = line.indexOf("\t", t + 1)
    const id = Number(t2 === -1 ? line.slice(t + 1) : line.slice(t + 1, t2))
    const slot = this.byId.get(id)
    if (slot === undefined) return run.error("unknown-id", line)
    this.byId.delete(id)
    this.inFlight--
    if (cmd === "FAIL") return run.error("fail", `${slot.user}: ${line}`)
    if (cmd === "CONT") return run.error("cont", `${slot.user}: ${line}`)
    // OK\t<id>\tuser=<user>[\t…]: user= first (Dovecot rule), then the passdb fields
    const u = t2 + 6
    if (t2 === -1 || !line.startsWith("user=", t2 + 1) || !line.startsWith(slot.user, u) ||
      (u + slot.user.length !== line.length && line.charCodeAt(u + slot.user.length) !== 9)) {
      return run.error("wrong-user", `${slot.user}: ${line}`)
    }
    let host: string | undefined
    const h = line.indexOf("\thost=", t2)
    if (h !== -1) {
      const e = line.indexOf("\t", h + 6)
      host = e === -1 ? line.slice(h + 6) : line.slice(h + 6, e)
    }
    const bad = run.checkHost(slot.user, host)
    if (bad === undefined) run.good(slot.t0, t1)
    else run.error(bad, `${slot.user}: ${line}`)
  }
}

/** A representative request line of a mode (for sizing the bare server's reply, docs). */
export const sampleRequest = (mode: LoadMode, user: string, password = "secret"): string =>
  mode === "dict"
    ? `L${DICT_KEY_PREFIX}${user}\t${user}\n`
    : `AUTH\t1\tPLAIN\tservice=imap\tresp=${plainResp(user, password)}\n`
