/**
 * A CRLF line-oriented TCP (or UNIX socket) connection with per-read timeouts, and the base of the
 * IMAP/POP3/LMTP/SMTP test clients built on it (greeting, transcript, closing command).
 */
import net from "node:net"

/** Where to connect: TCP host+port or a UNIX socket path. */
export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string }

/** Default timeout for connecting and for each read, in ms. */
export const DEFAULT_IO_TIMEOUT_MS = 10_000

/** A connected line reader/writer. Lines are returned without their CRLF. */
export class LineConn {
  private buffer = ""
  private readonly queue: Array<string> = []
  private waiter: { resolve: (l: string) => void; reject: (e: Error) => void } | undefined
  private closedError: Error | undefined
  /** Everything received and sent, for failure messages ("S: …" / "C: …" lines). */
  readonly transcript: Array<string> = []

  private constructor(private readonly socket: net.Socket, readonly timeoutMs: number) {
    socket.setEncoding("latin1")
    socket.on("data", (d: string) => this.onData(d))
    socket.on("error", (e) => this.fail(e))
    socket.on("close", () => this.fail(new Error("connection closed by peer")))
  }

  /** Connects; rejects on error or after `timeoutMs` (default {@link DEFAULT_IO_TIMEOUT_MS}). */
  static connect(endpoint: Endpoint, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<LineConn> {
    return new Promise((resolve, reject) => {
      const socket = "path" in endpoint ? net.connect({ path: endpoint.path }) : net.connect({ host: endpoint.host, port: endpoint.port })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`connect to ${describe(endpoint)} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      socket.once("error", (e) => { clearTimeout(timer); reject(new Error(`connect to ${describe(endpoint)}: ${e.message}`)) })
      socket.once("connect", () => {
        clearTimeout(timer)
        socket.removeAllListeners("error")
        resolve(new LineConn(socket, timeoutMs))
      })
    })
  }

  private onData(d: string): void {
    this.buffer += d
    for (;;) {
      const i = this.buffer.indexOf("\n")
      if (i < 0) break
      const line = this.buffer.slice(0, i).replace(/\r$/, "")
      this.buffer = this.buffer.slice(i + 1)
      this.transcript.push(`S: ${line}`)
      const w = this.waiter
      if (w !== undefined) { this.waiter = undefined; w.resolve(line) } else this.queue.push(line)
    }
  }

  private fail(e: Error): void {
    this.closedError ??= e
    const w = this.waiter
    if (w !== undefined) { this.waiter = undefined; w.reject(new Error(`${e.message}\n${this.transcript.join("\n")}`)) }
  }

  /** Next line; rejects after `timeoutMs` (default: the connection's) or when the peer closes. */
  readLine(timeoutMs = this.timeoutMs): Promise<string> {
    const queued = this.queue.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (this.closedError !== undefined) return Promise.reject(new Error(`${this.closedError.message}\n${this.transcript.join("\n")}`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(new Error(`no line within ${timeoutMs} ms\n${this.transcript.join("\n")}`))
      }, timeoutMs)
      this.waiter = {
        resolve: (l) => { clearTimeout(timer); resolve(l) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      }
    })
  }

  /** Reads exactly `n` bytes that follow (IMAP literals), as latin1 text. */
  async readBytes(n: number, timeoutMs = this.timeoutMs): Promise<string> {
    // Literal bytes may already have been split into lines; rebuild from the queue and buffer.
    let acc = ""
    while (acc.length < n) {
      if (this.queue.length > 0) { acc += this.queue.shift() + "\r\n"; continue }
      if (this.buffer.length > 0 && this.buffer.length >= n - acc.length) {
        const need = n - acc.length
        acc += this.buffer.slice(0, need)
        this.buffer = this.buffer.slice(need)
        break
      }
      acc += (await this.readLine(timeoutMs)) + "\r\n"
    }
    // Bytes past the literal are the rest of a line that was already split off: put it back first.
    const extra = acc.slice(n)
    if (extra.length > 0) this.queue.unshift(extra.replace(/\r\n$/, ""))
    return acc.slice(0, n)
  }

  /** Sends `line` + CRLF. */
  writeLine(line: string): void {
    this.transcript.push(`C: ${line}`)
    this.socket.write(line + "\r\n", "latin1")
  }

  /** Sends raw text (no CRLF added). */
  writeRaw(text: string): void {
    this.transcript.push(`C: <${text.length} bytes>`)
    this.socket.write(text, "latin1")
  }

  /** True once the peer has closed or an error occurred. */
  get closed(): boolean {
    return this.closedError !== undefined
  }

  /** Closes the socket (idempotent). */
  close(): void {
    this.socket.destroy()
  }
}

/** "host:port" or the socket path. */
export const describe = (e: Endpoint): string => ("path" in e ? e.path : `${e.host}:${e.port}`)

/** One SMTP/LMTP reply: the 3-digit code and its text lines (the code stripped). */
export interface SmtpReply {
  readonly code: number
  readonly lines: ReadonlyArray<string>
}

/** Reads one (multi-line) SMTP-style reply: `NNN-text` … `NNN text`. */
export async function readSmtpReply(conn: LineConn, timeoutMs?: number): Promise<SmtpReply> {
  const lines: Array<string> = []
  for (;;) {
    const line = await conn.readLine(timeoutMs)
    const m = /^(\d{3})([ -]?)(.*)$/.exec(line)
    if (m === null) throw new Error(`bad SMTP/LMTP reply line: ${line}\n${conn.transcript.join("\n")}`)
    lines.push(m[3] ?? "")
    if (m[2] !== "-") return { code: Number(m[1]), lines }
  }
}

/** A test client on a {@link LineConn}: its greeting, one command → one reply, the transcript. */
export abstract class LineClient<Greeting, Reply> {
  protected constructor(readonly conn: LineConn, readonly greeting: Greeting) {}

  /** Sends one command line and reads its reply. */
  abstract command(line: string): Promise<Reply>

  /** Everything sent and received so far. */
  transcript(): string {
    return this.conn.transcript.join("\n")
  }

  /** Sends the closing command (`QUIT`, `LOGOUT`), then closes the socket whatever the reply. */
  protected async closeWith(line: string): Promise<Reply> {
    try {
      return await this.command(line)
    } finally {
      this.conn.close()
    }
  }

  /** Closes the socket without a closing command. */
  close(): void {
    this.conn.close()
  }
}

/** How a protocol's greeting is read, accepted and shown in an error. */
export interface GreetingRule<G> {
  readonly protocol: string
  readonly read: (conn: LineConn) => Promise<G>
  readonly accept: (greeting: G) => boolean
  readonly show: (greeting: G) => string
}

/** Connects and reads the greeting; closes and rejects unless the rule accepts it. */
export async function connectGreeted<G>(endpoint: Endpoint, timeoutMs: number, rule: GreetingRule<G>): Promise<readonly [LineConn, G]> {
  const conn = await LineConn.connect(endpoint, timeoutMs)
  const greeting = await rule.read(conn)
  if (!rule.accept(greeting)) {
    conn.close()
    throw new Error(`unexpected ${rule.protocol} greeting from ${describe(endpoint)}: ${rule.show(greeting)}`)
  }
  return [conn, greeting]
}

/** A `220` greeting of SMTP or LMTP. */
export const smtpGreeting = (protocol: "SMTP" | "LMTP"): GreetingRule<SmtpReply> => ({
  protocol,
  read: (conn) => readSmtpReply(conn),
  accept: (g) => g.code === 220,
  show: (g) => `${g.code} ${g.lines.join(" ")}`
})

/** An SMTP-style client (SMTP, LMTP): every command gets one (multi-line) `NNN` reply. */
export abstract class SmtpStyleClient extends LineClient<SmtpReply, SmtpReply> {
  /** Sends one command line and reads one (multi-line) reply. */
  async command(line: string): Promise<SmtpReply> {
    this.conn.writeLine(line)
    return readSmtpReply(this.conn)
  }

  /** `QUIT`, then closes. */
  quit(): Promise<SmtpReply> {
    return this.closeWith("QUIT")
  }
}
