/**
 * One client connection of a load run (LoadGen.ts): plain `node:net`, the mode's handshake, then
 * requests pipelined up to the run's depth; every reply is checked by the run.
 */
import * as net from "node:net"
import { performance } from "node:perf_hooks"
import type { LoadRun } from "./LoadGen.js"

/** A request in flight: its user and send time. */
export interface Slot {
  readonly user: string
  readonly t0: number
  /** The host its reply must name, when the run knows it. */
  readonly expected: string | undefined
}

let cpidCounter = (process.pid * 64) % 1_000_000_000

/** One client connection. */
export class Conn {
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
      const slot: Slot = { user: p.user, t0: performance.now(), expected: p.expected }
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
      const bad = run.checkHost(slot, host)
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
    const bad = run.checkHost(slot, host)
    if (bad === undefined) run.good(slot.t0, t1)
    else run.error(bad, `${slot.user}: ${line}`)
  }
}
