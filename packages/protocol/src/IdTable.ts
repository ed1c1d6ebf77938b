/**
 * The requests in flight on one connection, by request id: a `Map<number, V>` for the few entries
 * a connection usually has. Up to {@link SMALL} entries it is two parallel arrays searched
 * linearly; past that it moves to a `Map`. A login that is answered within the socket read that
 * brought it enters and leaves the table at once, and V8's `Map` pays for that churn (about a
 * microsecond per request on the auth hot path, measured); the arrays do not.
 *
 * @since 0.3.0
 */

/** Entries kept in the arrays before the table moves to a `Map`. */
export const SMALL = 16

export class IdTable<V> {
  private ids: Array<number> = []
  private vals: Array<V> = []
  private big: Map<number, V> | undefined

  get size(): number {
    return this.big !== undefined ? this.big.size : this.ids.length
  }

  get(id: number): V | undefined {
    if (this.big !== undefined) return this.big.get(id)
    const i = this.ids.indexOf(id)
    return i < 0 ? undefined : this.vals[i]
  }

  has(id: number): boolean {
    return this.big !== undefined ? this.big.has(id) : this.ids.indexOf(id) >= 0
  }

  set(id: number, value: V): this {
    if (this.big !== undefined) {
      this.big.set(id, value)
      return this
    }
    const i = this.ids.indexOf(id)
    if (i >= 0) this.vals[i] = value
    else if (this.ids.length < SMALL) {
      this.ids.push(id)
      this.vals.push(value)
    } else {
      this.big = new Map(this.ids.map((k, j) => [k, this.vals[j]!] as const))
      this.big.set(id, value)
      this.ids = []
      this.vals = []
    }
    return this
  }

  delete(id: number): boolean {
    if (this.big !== undefined) {
      const had = this.big.delete(id)
      // back to the arrays once the burst is over
      if (this.big.size === 0) this.big = undefined
      return had
    }
    const i = this.ids.indexOf(id)
    if (i < 0) return false
    const last = this.ids.length - 1
    this.ids[i] = this.ids[last]!
    this.vals[i] = this.vals[last]!
    this.ids.pop()
    this.vals.pop()
    return true
  }

  clear(): void {
    this.ids = []
    this.vals = []
    this.big = undefined
  }

  values(): IterableIterator<V> {
    return this.big !== undefined ? this.big.values() : this.vals.slice().values()
  }
}
