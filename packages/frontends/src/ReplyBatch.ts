/**
 * Replies made while one socket read is handled, written together at its end: one write per read
 * for all the requests the read held that were answered at once (a route from memory). Used by the
 * dict and auth connections.
 *
 * @since 0.3.0
 */
export class ReplyBatch {
  private pending: string | undefined

  /** @param send writes text to the socket (and skips it when the connection is gone) */
  constructor(private readonly send: (text: string) => void) {}

  /** Start collecting (a socket read is being handled). */
  begin(): void {
    this.pending = ""
  }

  /** Collect `text` while a read is handled; `false` when none is: the caller writes it now. */
  add(text: string): boolean {
    if (this.pending === undefined) return false
    this.pending += text
    return true
  }

  /** Write what was collected so far (before closing in the middle of a read); collecting goes on. */
  flush(): void {
    const out = this.pending
    if (out === undefined || out.length === 0) return
    this.pending = ""
    this.send(out)
  }

  /** Write what was collected and stop collecting (the read is handled). */
  end(): void {
    this.flush()
    this.pending = undefined
  }
}
