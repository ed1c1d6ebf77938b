/**
 * The byte relay under the login relay and the userdb relay (the 2.3 Director's pattern,
 * `docs/protocols.md` §8): for every accepted client connection open one connection to
 * Dovecot's own auth socket and copy bytes both ways.
 *
 * - Client → Dovecot: every chunk is forwarded **verbatim** and at once. A copy is split into
 *   lines for {@link RelayRules.observeClientLine} (e.g. remembering each request's protocol).
 *   With {@link RelayRules.filterClientLine} client bytes are forwarded line by line instead, and
 *   a line the filter refuses closes the client connection without reaching Dovecot.
 * - Dovecot → client: split into lines **as bytes** (so even invalid UTF-8 passes unchanged); a
 *   line for which {@link RelayRules.rewrite} returns `undefined` is forwarded byte for byte;
 *   otherwise its replacement is written when the promise settles (a rejection becomes the rules'
 *   fallback line).
 * - Ordering: `ordered` rules keep Dovecot's line order (a line waiting for routing holds back the
 *   lines after it); unordered rules let later lines overtake a pending one (fine for the
 *   auth-client protocol, where answers are matched by id).
 * - Dovecot unreachable, or Dovecot closing: the client is closed (after pending rewrites are
 *   written). The client closing closes the Dovecot connection.
 * - Flow control: while `maxRequests` rewrites are pending, or Dovecot does not take the client's
 *   bytes, the client is not read from; while the client does not read, Dovecot is not read from.
 *
 * @since 0.1.0
 */
import { LineSplitter } from "@doveroute/protocol"
import * as net from "node:net"
import { type ConnectionHandler, DEFAULT_MAX_REQUESTS, type Flow } from "./UnixListener.js"

/** Longest line accepted from either side before the relay gives up on the connection (1 MiB). */
export const RELAY_MAX_LINE = 1024 * 1024

/** What a relay does with the lines it sees. */
export interface RelayRules {
  /** Keep Dovecot's line order towards the client. */
  readonly ordered: boolean
  /** A complete client → Dovecot line (text, without LF), after it was forwarded. */
  readonly observeClientLine?: (line: string) => void
  /**
   * A complete Dovecot → client line (bytes, without LF). `undefined`: forward unchanged.
   * A promise: write its result (text or bytes, **with** LF) instead.
   */
  readonly rewrite: (line: Buffer) => Promise<string | Uint8Array> | undefined
  /** The line written when a rewrite promise rejects (it must not: a safety net). */
  readonly onRewriteError: (line: Buffer) => string
  /** Longest client line observed (or filtered), in bytes; default {@link RELAY_MAX_LINE}. */
  readonly clientMaxLine?: number
  /**
   * Which client lines may reach Dovecot (bytes without LF): `undefined` = forward, a string =
   * refuse (why, for the log) and close the client. Without it, bytes pass verbatim.
   */
  readonly filterClientLine?: (line: Buffer) => string | undefined
}

const LF = Buffer.from("\n")

type Slot = { data: Buffer | undefined }

/** One relayed connection: client socket ⇄ Dovecot socket. */
export class RelayConnection implements ConnectionHandler {
  private readonly upstream: net.Socket
  private readonly fromUpstream = new LineSplitter(RELAY_MAX_LINE)
  private readonly fromClient: LineSplitter
  private readonly queue: Array<Slot> = []
  private readonly maxRequests: number
  private pending = 0
  private upstreamEnded = false
  private closed = false
  private observing = true
  private upstreamPaused = false

  constructor(
    private readonly client: net.Socket,
    upstreamPath: string,
    private readonly rules: RelayRules,
    private readonly onUpstreamError: (detail: string) => void,
    private readonly flow?: Flow,
    maxRequests?: number,
    private readonly onRefused?: (why: string) => void
  ) {
    this.fromClient = new LineSplitter(rules.clientMaxLine ?? RELAY_MAX_LINE)
    this.maxRequests = Math.max(1, maxRequests ?? DEFAULT_MAX_REQUESTS)
    this.upstream = net.connect({ path: upstreamPath })
    this.upstream.on("drain", () => this.flow?.release("upstream"))
    this.upstream.on("data", this.onUpstreamData)
    this.upstream.on("error", (e) => {
      this.onUpstreamError(e.message)
      this.close()
    })
    this.upstream.on("close", () => {
      this.upstreamEnded = true
      this.maybeEndClient()
    })
  }

  inFlight = (): number => this.pending

  onData = (chunk: Buffer): void => {
    if (this.closed) return
    if (this.rules.filterClientLine !== undefined) return this.onFilteredData(chunk, this.rules.filterClientLine)
    this.toUpstream(chunk)
    if (!this.observing || this.rules.observeClientLine === undefined) return
    try {
      this.fromClient.pushBytes(chunk, (line) => this.rules.observeClientLine!(line.toString("utf8")))
    } catch {
      // an over-long client line: stop observing; Dovecot decides what to do with it
      this.observing = false
    }
  }

  private toUpstream(data: Buffer): void {
    // Dovecot does not take the bytes as fast as the client sends them: stop reading the client
    if (!this.upstream.write(data)) this.flow?.hold("upstream")
  }

  private onFilteredData(chunk: Buffer, filter: (line: Buffer) => string | undefined): void {
    const out: Array<Buffer> = []
    let refused: string | undefined
    try {
      this.fromClient.pushBytes(chunk, (line) => {
        if (refused !== undefined) return
        refused = filter(line)
        if (refused !== undefined) return
        out.push(line, LF)
        this.rules.observeClientLine?.(line.toString("utf8"))
      })
    } catch (e) {
      refused ??= (e as Error).message
    }
    if (out.length > 0) this.toUpstream(Buffer.concat(out))
    if (refused !== undefined) {
      this.onRefused?.(refused)
      this.close()
    }
  }

  onClose = (): void => {
    this.closed = true
    this.upstream.destroy()
  }

  private close(): void {
    this.closed = true
    this.upstream.destroy()
    this.client.destroy()
  }

  private maybeEndClient(): void {
    if (this.upstreamEnded && this.pending === 0 && !this.closed) {
      this.closed = true
      this.client.end()
    }
  }

  private onUpstreamData = (chunk: Buffer): void => {
    if (this.closed) return
    try {
      this.fromUpstream.pushBytes(chunk, this.onUpstreamLine)
    } catch (e) {
      this.onUpstreamError((e as Error).message)
      return this.close()
    }
    this.flush()
  }

  private onUpstreamLine = (line: Buffer): void => {
    let replaced: Promise<string | Uint8Array> | undefined
    try {
      replaced = this.rules.rewrite(line)
    } catch {
      replaced = Promise.reject(new Error("rewrite threw"))
    }
    if (replaced === undefined) {
      this.queue.push({ data: Buffer.concat([line, LF]) })
      return
    }
    const slot: Slot = { data: undefined }
    const copy = Buffer.from(line)
    this.pending++
    if (this.pending >= this.maxRequests) this.flow?.hold("requests")
    if (this.rules.ordered) this.queue.push(slot)
    replaced
      .then(
        (out) => (typeof out === "string" ? Buffer.from(out, "utf8") : Buffer.from(out.buffer, out.byteOffset, out.byteLength)),
        () => Buffer.from(this.rules.onRewriteError(copy), "utf8")
      )
      .then((data) => {
        this.pending--
        if (this.pending < this.maxRequests) this.flow?.release("requests")
        if (this.rules.ordered) {
          slot.data = data
        } else {
          this.queue.push({ data })
        }
        this.flush()
        this.maybeEndClient()
      })
      .catch(() => this.close())
  }

  private flush(): void {
    const out: Array<Buffer> = []
    while (this.queue.length > 0 && this.queue[0]!.data !== undefined) out.push(this.queue.shift()!.data!)
    if (out.length > 0 && !this.closed && !this.client.destroyed) {
      // the client does not read its replies: stop reading Dovecot's until it does
      if (!this.client.write(out.length === 1 ? out[0]! : Buffer.concat(out)) && !this.upstreamPaused) {
        this.upstreamPaused = true
        this.upstream.pause()
        this.client.once("drain", () => {
          this.upstreamPaused = false
          this.upstream.resume()
        })
      }
    }
  }
}
