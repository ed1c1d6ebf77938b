/**
 * Tiny LMTP client for tests: LHLO, MAIL FROM, RCPT TO, DATA (one reply per accepted recipient),
 * QUIT. Returns reply codes.
 */
import { connectGreeted, DEFAULT_IO_TIMEOUT_MS, readSmtpReply, smtpGreeting, SmtpStyleClient, type Endpoint, type SmtpReply } from "./LineConn.js"

/** A connected LMTP client (TCP or UNIX socket). */
export class LmtpClient extends SmtpStyleClient {
  /** Connects and reads the 220 greeting (rejects on another code). `timeoutMs` default 10 s. */
  static async connect(endpoint: Endpoint, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<LmtpClient> {
    const [conn, greeting] = await connectGreeted(endpoint, timeoutMs, smtpGreeting("LMTP"))
    return new LmtpClient(conn, greeting)
  }

  /** `LHLO name`; 250 with the extension lines. */
  lhlo(name = "testkit.local"): Promise<SmtpReply> {
    return this.command(`LHLO ${name}`)
  }

  /** `MAIL FROM:<address>`; 250 expected. */
  mailFrom(address: string): Promise<SmtpReply> {
    return this.command(`MAIL FROM:<${address}>`)
  }

  /** `RCPT TO:<address>`; 250 accepted, 4xx/5xx refused (e.g. unknown user, proxy failure). */
  rcptTo(address: string): Promise<SmtpReply> {
    return this.command(`RCPT TO:<${address}>`)
  }

  /**
   * `DATA`, the dot-stuffed `message`, `.`; then one reply per accepted recipient
   * (`acceptedRecipients`). Returns the DATA reply (354 expected) and the per-recipient replies.
   */
  async data(message: string, acceptedRecipients: number): Promise<{ start: SmtpReply; replies: ReadonlyArray<SmtpReply> }> {
    const start = await this.command("DATA")
    if (start.code !== 354) return { start, replies: [] }
    const body = message.replace(/\r?\n/g, "\r\n").split("\r\n").map((l) => (l.startsWith(".") ? "." + l : l)).join("\r\n")
    this.conn.writeRaw(body + (body.endsWith("\r\n") ? "" : "\r\n") + ".\r\n")
    const replies: Array<SmtpReply> = []
    for (let i = 0; i < acceptedRecipients; i++) replies.push(await readSmtpReply(this.conn))
    return { start, replies }
  }
}

/** Outcome of {@link lmtpDeliver}: reply codes of each step. */
export interface LmtpDelivery {
  readonly lhlo: number
  readonly mailFrom: number
  /** One code per recipient, in order. */
  readonly rcpt: ReadonlyArray<number>
  /** DATA's own code (354), or undefined when no recipient was accepted. */
  readonly data?: number
  /** One final code per accepted recipient. */
  readonly delivered: ReadonlyArray<number>
  readonly transcript: string
}

/** Delivers one message to `to` over LMTP and returns every reply code. */
export async function lmtpDeliver(endpoint: Endpoint, o: { readonly from: string; readonly to: ReadonlyArray<string>; readonly message: string; readonly timeoutMs?: number }): Promise<LmtpDelivery> {
  const c = await LmtpClient.connect(endpoint, o.timeoutMs)
  try {
    const lhlo = (await c.lhlo()).code
    const mailFrom = (await c.mailFrom(o.from)).code
    const rcpt: Array<number> = []
    for (const r of o.to) rcpt.push((await c.rcptTo(r)).code)
    const accepted = rcpt.filter((x) => x >= 200 && x < 300).length
    if (accepted === 0) {
      await c.quit().catch(() => undefined)
      return { lhlo, mailFrom, rcpt, delivered: [], transcript: c.transcript() }
    }
    const d = await c.data(o.message, accepted)
    await c.quit().catch(() => undefined)
    return { lhlo, mailFrom, rcpt, data: d.start.code, delivered: d.replies.map((r) => r.code), transcript: c.transcript() }
  } finally {
    c.close()
  }
}
