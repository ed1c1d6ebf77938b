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
import { performance } from "node:perf_hooks"
import { type LatencySummary, LatencyRecorder } from "./Latency.js"
import { Conn, type Slot } from "./LoadConn.js"

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

const DICT_KEY_PREFIX = "shared/passdb/"

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

export class LoadRun {
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
  /**
   * Per pool user: the expected host, looked up once per run (not per reply: with a million users
   * a Map read per reply made the generator, not the server, the limit).
   */
  private readonly poolExpected: Array<string | undefined> | undefined
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
    const expected = o.expected
    this.poolExpected = expected === undefined ? undefined : o.users.map((u) => expected.get(u))
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
  pick(): { user: string; tail: string; expected: string | undefined } | undefined {
    const users = this.o.users
    if (this.o.sequential === true) {
      if (this.seqNext >= users.length) return undefined
      const i = this.seqNext++
      return { user: users[i]!, tail: this.poolReq[i]!, expected: this.poolExpected?.[i] }
    }
    if (users.length === 0 || (this.newShare > 0 && Math.random() < this.newShare)) {
      const user = this.newPrefix + String(this.newUsers++)
      return { user, tail: this.requestTail(user), expected: this.o.expected?.get(user) }
    }
    const i = Math.floor(Math.random() * users.length)
    return { user: users[i]!, tail: this.poolReq[i]!, expected: this.poolExpected?.[i] }
  }

  /** Checks the host of a reply; returns an error kind or undefined when correct. */
  checkHost(slot: Slot, host: string | undefined): string | undefined {
    if (host === undefined) return "no-host"
    const user = slot.user
    const exp = slot.expected
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


/** A representative request line of a mode (for sizing the bare server's reply, docs). */
export const sampleRequest = (mode: LoadMode, user: string, password = "secret"): string =>
  mode === "dict"
    ? `L${DICT_KEY_PREFIX}${user}\t${user}\n`
    : `AUTH\t1\tPLAIN\tservice=imap\tresp=${plainResp(user, password)}\n`
