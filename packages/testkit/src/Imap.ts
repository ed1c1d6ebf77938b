/**
 * Tiny IMAP4rev1 client for tests: greeting, tagged commands, LOGIN, AUTHENTICATE PLAIN (with and
 * without SASL-IR), SELECT, LOGOUT. Responses come back as raw lines.
 */
import { connectGreeted, DEFAULT_IO_TIMEOUT_MS, LineClient } from "./LineConn.js"

/** A tagged command's outcome: status, the tagged line's text, all untagged/continuation lines. */
export interface ImapResponse {
  readonly tag: string
  readonly status: "OK" | "NO" | "BAD"
  /** Text after the status on the tagged line (e.g. "Logged in"). */
  readonly text: string
  /** Untagged (`* …`) and continuation lines received before the tagged line. */
  readonly untagged: ReadonlyArray<string>
  /** The tagged line itself. */
  readonly tagged: string
}

/** IMAP quoted string (`"…"` with `\` and `"` escaped). */
export const imapQuote = (s: string): string => `"${s.replace(/[\\"]/g, (c) => "\\" + c)}"`

/** SASL PLAIN initial response: base64(authzid NUL user NUL pass). */
export const saslPlain = (user: string, pass: string, authzid = ""): string =>
  Buffer.from(`${authzid}\0${user}\0${pass}`, "utf8").toString("base64")

/** A connected IMAP client. */
export class ImapClient extends LineClient<string, ImapResponse> {
  private nextTag = 1

  /**
   * Connects to host:port and reads the greeting; rejects unless it is `* OK …` (or `* PREAUTH`).
   * `timeoutMs` (default 10 s) bounds the connect and every later read.
   */
  static async connect(host: string, port: number, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<ImapClient> {
    const [conn, greeting] = await connectGreeted({ host, port }, timeoutMs, {
      protocol: "IMAP",
      read: (c) => c.readLine(),
      accept: (g) => /^\* (OK|PREAUTH)\b/i.test(g),
      show: (g) => g
    })
    return new ImapClient(conn, greeting)
  }

  private async readUntilTagged(tag: string, onContinuation?: (line: string) => void): Promise<ImapResponse> {
    const untagged: Array<string> = []
    for (;;) {
      let line = await this.conn.readLine()
      // A literal {n} at the end of a line: its bytes and the rest of the line follow.
      let lit = /\{(\d+)\}$/.exec(line)
      while (lit !== null) {
        line += "\r\n" + (await this.conn.readBytes(Number(lit[1])))
        line += await this.conn.readLine()
        lit = /\{(\d+)\}$/.exec(line)
      }
      if (line.startsWith(tag + " ")) {
        const m = /^\S+ (OK|NO|BAD)\b ?(.*)$/i.exec(line)
        if (m === null) throw new Error(`bad tagged line: ${line}`)
        return { tag, status: (m[1] ?? "BAD").toUpperCase() as ImapResponse["status"], text: m[2] ?? "", untagged, tagged: line }
      }
      untagged.push(line)
      if (line.startsWith("+") && onContinuation !== undefined) onContinuation(line)
    }
  }

  /** Sends `<tag> <command>` and waits for the tagged reply (a NO/BAD resolves, it does not reject). */
  async command(command: string): Promise<ImapResponse> {
    const tag = `a${this.nextTag++}`
    this.conn.writeLine(`${tag} ${command}`)
    return this.readUntilTagged(tag)
  }

  /** `LOGIN "user" "pass"`. */
  login(user: string, pass: string): Promise<ImapResponse> {
    return this.command(`LOGIN ${imapQuote(user)} ${imapQuote(pass)}`)
  }

  /**
   * `AUTHENTICATE PLAIN`: with `saslIr` (default true) the credentials go on the command line
   * (RFC 4959), else they are sent after the server's `+` continuation.
   */
  async authenticatePlain(user: string, pass: string, options: { readonly saslIr?: boolean; readonly authzid?: string } = {}): Promise<ImapResponse> {
    const ir = saslPlain(user, pass, options.authzid ?? "")
    if (options.saslIr !== false) return this.command(`AUTHENTICATE PLAIN ${ir}`)
    const tag = `a${this.nextTag++}`
    this.conn.writeLine(`${tag} AUTHENTICATE PLAIN`)
    return this.readUntilTagged(tag, () => this.conn.writeLine(ir))
  }

  /** `SELECT "mailbox"` (default INBOX). */
  select(mailbox = "INBOX"): Promise<ImapResponse> {
    return this.command(`SELECT ${imapQuote(mailbox)}`)
  }

  /** `CAPABILITY`. */
  capability(): Promise<ImapResponse> {
    return this.command("CAPABILITY")
  }

  /** `LOGOUT`, then closes the socket (the BYE + tagged OK are returned). */
  logout(): Promise<ImapResponse> {
    return this.closeWith("LOGOUT")
  }
}

/**
 * Connect, LOGIN, optionally SELECT INBOX, LOGOUT. Resolves with the LOGIN (and SELECT) responses
 * and the transcript; never rejects on NO (check `login.status`).
 */
export async function imapLogin(host: string, port: number, user: string, pass: string, options: { readonly select?: boolean; readonly timeoutMs?: number } = {}): Promise<{ login: ImapResponse; select?: ImapResponse; transcript: string }> {
  const c = await ImapClient.connect(host, port, options.timeoutMs)
  try {
    const login = await c.login(user, pass)
    if (login.status !== "OK" || options.select !== true) {
      await c.logout().catch(() => undefined)
      return { login, transcript: c.transcript() }
    }
    const select = await c.select()
    await c.logout().catch(() => undefined)
    return { login, select, transcript: c.transcript() }
  } finally {
    c.close()
  }
}
