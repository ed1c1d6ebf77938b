import * as net from "node:net"

/** A line client over a UNIX socket: send raw text, read LF-terminated reply lines. */
export class LineClient {
  private buf = ""
  private waiters: Array<() => void> = []
  readonly lines: Array<string> = []
  closed = false
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding("utf8")
    socket.on("data", (d: string) => {
      this.buf += d
      let i: number
      while ((i = this.buf.indexOf("\n")) !== -1) {
        this.lines.push(this.buf.slice(0, i))
        this.buf = this.buf.slice(i + 1)
      }
      this.wake()
    })
    socket.on("close", () => {
      this.closed = true
      this.wake()
    })
    socket.on("error", () => {})
  }
  private wake() {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
  static connect(path: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path })
      s.once("connect", () => resolve(new LineClient(s)))
      s.once("error", reject)
    })
  }
  send(text: string): void {
    this.socket.write(text)
  }
  /** Wait until `n` lines arrived (or the socket closed, or the timeout passed). */
  async waitLines(n: number, timeoutMs = 5000): Promise<Array<string>> {
    const deadline = Date.now() + timeoutMs
    while (this.lines.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => {
          clearTimeout(t)
          r()
        })
      })
    }
    return this.lines.slice(0, n)
  }
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.waitLines(Number.MAX_SAFE_INTEGER, timeoutMs)
    return this.closed
  }
  close(): void {
    this.socket.destroy()
  }
}
