/**
 * Tiny SMTP client for tests: EHLO and AUTH PLAIN (for Postfix SASL through doveroute).
 */
import { connectGreeted, DEFAULT_IO_TIMEOUT_MS, smtpGreeting, SmtpStyleClient, type SmtpReply } from "./LineConn.js"
import { saslPlain } from "./Imap.js"

/** A connected SMTP client. */
export class SmtpClient extends SmtpStyleClient {
  /** Connects and reads the 220 greeting (rejects on another code). `timeoutMs` default 10 s. */
  static async connect(host: string, port: number, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<SmtpClient> {
    const [conn, greeting] = await connectGreeted({ host, port }, timeoutMs, smtpGreeting("SMTP"))
    return new SmtpClient(conn, greeting)
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
}
