/**
 * The health probe's connection: a line-based conversation over TCP that can be upgraded to TLS
 * in place (STARTTLS) or start in TLS, with one deadline for the whole probe ({@link Wire.abort}).
 * Failures are {@link ProbeFailure}s of a closed kind.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as tls from "node:tls"

/** What went wrong: closed list, used in log lines (`failure=`) and metrics labels. */
export type FailureKind = "network" | "timeout" | "tls" | "protocol" | "login"
export const FAILURE_KINDS: ReadonlyArray<FailureKind> = ["network", "timeout", "tls", "protocol", "login"]

/** A failed step, with its kind; the message is safe to show (no password). */
export class ProbeFailure extends Error {
  constructor(readonly kind: FailureKind, message: string) {
    super(message)
  }
}

/** Longest line accepted from a backend. */
const MAX_LINE = 8192

/** A server line made safe for a log line or a column: control characters dropped, 200 characters at most. */
export const shown = (line: string): string => line.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, 200)

/**
 * A line-based conversation over a socket that can be upgraded to TLS in place (STARTTLS). Every
 * wait also ends when {@link Wire.abort} is called (the probe's deadline).
 */
export class Wire {
  /** The step under way, for a timeout's message: `connect`, `greeting`, `STARTTLS`, `login` … */
  phase = "connect"
  private sock: net.Socket | undefined
  private buf = ""
  private readonly lines: Array<string> = []
  private waiter: (() => void) | undefined
  private failure: Error | undefined
  private readonly aborted: Promise<never>
  private rejectAborted!: (e: Error) => void

  constructor() {
    this.aborted = new Promise<never>((_, reject) => {
      this.rejectAborted = reject
    })
    this.aborted.catch(() => {})
  }

  /** Stop at once: every pending and later wait fails with `e`. */
  abort(e: Error): void {
    this.fail(e)
    this.rejectAborted(e)
    this.sock?.destroy()
  }

  destroy(): void {
    this.sock?.destroy()
  }

  private fail(e: Error): void {
    if (this.failure === undefined) this.failure = e
    this.wake()
  }

  private wake(): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private race<A>(p: Promise<A>): Promise<A> {
    return Promise.race([p, this.aborted])
  }

  private attach(sock: net.Socket): void {
    this.sock = sock
    sock.on("data", (chunk: Buffer) => {
      this.buf += chunk.toString("latin1")
      let nl: number
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        this.lines.push(this.buf.slice(0, nl).replace(/\r$/, ""))
        this.buf = this.buf.slice(nl + 1)
      }
      if (this.buf.length > MAX_LINE) this.fail(new ProbeFailure("protocol", `a line longer than ${MAX_LINE} bytes`))
      this.wake()
    })
    sock.on("error", (e) => this.fail(new ProbeFailure(this.phase === "TLS handshake" ? "tls" : "network", e.message)))
    sock.on("close", () => this.fail(new ProbeFailure("network", `connection closed during ${this.phase}`)))
  }

  /** Plain TCP connection. */
  async connect(host: string, port: number): Promise<void> {
    this.phase = "connect"
    const sock = net.connect({ host, port })
    this.sock = sock // so that abort() ends a connect still under way
    await this.race(new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve)
      sock.once("error", (e) => reject(new ProbeFailure("network", e.message)))
    }))
    this.attach(sock)
  }

  /** Implicit TLS, or STARTTLS over the current connection (`existing`). */
  async tls(options: tls.ConnectionOptions, existing = false): Promise<void> {
    if (existing) {
      if (this.lines.length > 0 || this.buf.length > 0) {
        throw new ProbeFailure("protocol", "the server sent data after its STARTTLS reply (refused: it could be injected)")
      }
      this.sock?.removeAllListeners("data")
      this.sock?.removeAllListeners("close")
      this.sock?.removeAllListeners("error")
      this.sock?.on("error", () => {})
    }
    this.phase = "TLS handshake"
    const t = tls.connect(existing ? { ...options, socket: this.sock! } : options)
    this.sock = t
    await this.race(new Promise<void>((resolve, reject) => {
      t.once("secureConnect", resolve)
      t.once("error", (e) => reject(tlsFailure(e)))
      t.once("close", () => reject(new ProbeFailure("tls", "connection closed during the TLS handshake")))
    }))
    this.attach(t)
  }

  /** Send one line (CRLF added). */
  send(line: string): void {
    this.sock?.write(line + "\r\n")
  }

  /** The next line; fails when the connection fails or the deadline passes. */
  async line(): Promise<string> {
    for (;;) {
      const l = this.lines.shift()
      if (l !== undefined) return l
      if (this.failure !== undefined) throw this.failure
      await this.race(new Promise<void>((resolve) => {
        this.waiter = resolve
      }))
    }
  }
}

/** Node's certificate error codes in words. */
const CERT_PROBLEMS: Readonly<Record<string, string>> = {
  ERR_TLS_CERT_ALTNAME_INVALID: "certificate does not match the backend's hostname",
  CERT_HAS_EXPIRED: "certificate has expired",
  CERT_NOT_YET_VALID: "certificate is not yet valid",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "certificate not trusted",
  UNABLE_TO_GET_ISSUER_CERT: "certificate not trusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "certificate not trusted",
  SELF_SIGNED_CERT_IN_CHAIN: "certificate not trusted (self-signed CA not in tls_ca_file)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "certificate not trusted (self-signed)"
}

export const tlsFailure = (e: Error): ProbeFailure => {
  const code = (e as NodeJS.ErrnoException).code
  const problem = code !== undefined ? CERT_PROBLEMS[code] : undefined
  return new ProbeFailure("tls", problem !== undefined ? `${problem} (${code}: ${e.message})` : `TLS handshake failed: ${e.message}`)
}

