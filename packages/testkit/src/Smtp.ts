/**
 * Tiny SMTP client for tests: EHLO and AUTH PLAIN (for Postfix SASL through doveroute).
 */
import { LineConn, DEFAULT_IO_TIMEOUT_MS, readSmtpReply, type SmtpReply } from "./LineConn.js"
import { saslPlain } from "./Imap.js"

/** A connected SMTP client. */
export class SmtpClient {
  private constructor(readonly conn: LineConn, readonly greeting: SmtpReply) {}

  /** Connects and reads the 220 greeting (rejects on another code). `timeoutMs` default 10 s. */
  static async connect(host: string, port: number, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<SmtpClient> {
    const conn = await LineConn.connect({ host, port }, timeoutMs)
    const greeting = await readSmtpReply(conn)
    if (greeting.code !== 220) {
      conn.close()
      throw new Error(`unexpected SMTP greeting: ${greeting.code} ${greeting.lines.join(" ")}`)
    }
    return new SmtpClient(conn, greeting)
  }

  /** Everything sent and received so far. */
  transcript(): string {
    return this.conn.transcript.join("\n")
  }

  /** Sends one command line and reads one (multi-line) reply. */
  async command(line: string): Promise<SmtpReply> {
    this.conn.writeLine(line)
    return readSmtpReply(this.conn)
  }

  /** `EHLO name`; the reply lines list the extensions (e.g. "AUTH PLAIN LOGIN"). */
  ehlo(name = "testkit.local"): Promise<SmtpReply> {
    return this.command(`EHLO ${name}`)
  }

  /**
   * `AUTH PLAIN <base64>` (initial response) or, with `initialResponse: false`, `AUTH PLAIN` then
   * the credentials after the 334. 235 = success, 535 = bad credentials, 454 = temporary failure.
   */
  async authPlain(user: string, pass: string, options: { readonly initialResponse?: boolean } = {}): Promise<SmtpReply> {
    const ir = saslPlain(user, pass)
    if (options.initialResponse !== false) return this.command(`AUTH PLAIN ${ir}`)
    const first = await this.command("AUTH PLAIN")
    if (first.code !== 334) return first
    return this.command(ir)
  }

  /** `QUIT`, then closes. */
  async quit(): Promise<SmtpReply> {
    try {
      return await this.command("QUIT")
    } finally {
      this.conn.close()
    }
  }

  /** Closes without QUIT. */
  close(): void {
    this.conn.close()
  }
}
