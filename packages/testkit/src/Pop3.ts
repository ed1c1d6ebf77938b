/**
 * Tiny POP3 client for tests: greeting, USER/PASS, STAT, QUIT.
 */
import { connectGreeted, DEFAULT_IO_TIMEOUT_MS, LineClient } from "./LineConn.js"

/** A POP3 status reply: ok (`+OK`) or not (`-ERR`), its text and the raw line. */
export interface Pop3Reply {
  readonly ok: boolean
  readonly text: string
  readonly line: string
}

const parse = (line: string): Pop3Reply => {
  const m = /^([+-]\S*)\s?(.*)$/.exec(line)
  return { ok: (m?.[1] ?? "").toUpperCase() === "+OK", text: m?.[2] ?? line, line }
}

/** A connected POP3 client. */
export class Pop3Client extends LineClient<string, Pop3Reply> {
  /** Connects and reads the greeting; rejects unless it is `+OK`. `timeoutMs` default 10 s. */
  static async connect(host: string, port: number, timeoutMs = DEFAULT_IO_TIMEOUT_MS): Promise<Pop3Client> {
    const [conn, greeting] = await connectGreeted({ host, port }, timeoutMs, {
      protocol: "POP3",
      read: (c) => c.readLine(),
      accept: (g) => g.startsWith("+OK"),
      show: (g) => g
    })
    return new Pop3Client(conn, greeting)
  }

  /** Sends one command line and reads the single-line status reply. */
  async command(line: string): Promise<Pop3Reply> {
    this.conn.writeLine(line)
    return parse(await this.conn.readLine())
  }

  /** `USER name`. */
  user(name: string): Promise<Pop3Reply> {
    return this.command(`USER ${name}`)
  }

  /** `PASS secret`. */
  pass(secret: string): Promise<Pop3Reply> {
    return this.command(`PASS ${secret}`)
  }

  /** USER then PASS; resolves with the PASS reply (or the failed USER reply). */
  async login(name: string, secret: string): Promise<Pop3Reply> {
    const u = await this.user(name)
    if (!u.ok) return u
    return this.pass(secret)
  }

  /** `STAT` → message count and total size in octets (undefined on -ERR). */
  async stat(): Promise<{ reply: Pop3Reply; count?: number; size?: number }> {
    const reply = await this.command("STAT")
    const m = /^(\d+) (\d+)/.exec(reply.text)
    return reply.ok && m !== null ? { reply, count: Number(m[1]), size: Number(m[2]) } : { reply }
  }

  /** `QUIT`, then closes the socket. */
  quit(): Promise<Pop3Reply> {
    return this.closeWith("QUIT")
  }
}
