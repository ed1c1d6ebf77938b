/**
 * Byte-level line framing for Dovecot's LF-terminated protocols.
 *
 * Splits on 0x0A before decoding, so a UTF-8 character cut between two socket reads is decoded
 * whole (@effect/platform's `Socket.toChannelString` decodes every chunk on its own, which turns such
 * a character into U+FFFD). Enforces a maximum line length in bytes; a longer line is a
 * protocol error for that connection only.
 *
 * @since 0.1.0
 */

/** Thrown by {@link LineSplitter.push} / {@link LineSplitter.pushBytes} when a line exceeds the limit (the caller closes the connection). */
export class LineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`line longer than ${limit} bytes`)
    this.name = "LineTooLongError"
  }
}

export class LineSplitter {
  private parts: Array<Buffer> = []
  private len = 0
  /** @param maxLine maximum line length in bytes, without the LF */
  constructor(private readonly maxLine: number) {}

  /** Feed one chunk; `onLine` is called for every complete line (without LF, CR kept), decoded as UTF-8. */
  push(chunk: Uint8Array, onLine: (line: string) => void): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (this.len > 0) return this.pushBytes(buf, (line) => onLine(line.toString("utf8")))
    // nothing pending (the usual case): decode each line straight from the chunk
    let start = 0
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      if (nl - start > this.maxLine) throw new LineTooLongError(this.maxLine)
      const line = buf.toString("utf8", start, nl)
      start = nl + 1
      onLine(line)
      // the callback may not push into this splitter, so nothing became pending meanwhile
    }
    if (start < buf.length) this.pushBytes(buf.subarray(start), (line) => onLine(line.toString("utf8")))
  }

  /**
   * Feed one chunk; `onLine` gets every complete line as bytes (without LF, not decoded: invalid
   * UTF-8 passes unchanged). A line that fits in one chunk is a view of that chunk.
   */
  pushBytes(chunk: Uint8Array, onLine: (line: Buffer) => void): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let start = 0
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      const lineLen = this.len + nl - start
      if (lineLen > this.maxLine) throw new LineTooLongError(this.maxLine)
      let line: Buffer
      if (this.len === 0) {
        line = buf.subarray(start, nl)
      } else {
        this.parts.push(buf.subarray(start, nl))
        line = Buffer.concat(this.parts, lineLen)
        this.parts = []
        this.len = 0
      }
      start = nl + 1
      onLine(line)
    }
    if (start < buf.length) {
      this.len += buf.length - start
      if (this.len > this.maxLine) throw new LineTooLongError(this.maxLine)
      // copy: the caller may reuse its buffer
      this.parts.push(Buffer.from(buf.subarray(start)))
    }
  }

  /** Bytes buffered of an unfinished line. */
  get pending(): number {
    return this.len
  }
}
