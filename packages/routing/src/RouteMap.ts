/**
 * The routing table's key → backend id map, kept outside the JavaScript heap.
 *
 * A million users in a `Map<string, number>` are a million strings and hash-table entries that
 * the garbage collector walks at every major collection, and that the heap's growth headroom
 * doubles under load. Here the keys live in one byte arena and the entries in typed arrays
 * (open addressing, linear probing), so the table costs about 50–70 bytes per user and adds
 * almost nothing to the heap the collector scans.
 *
 * Keys whose characters are all below U+0100 are stored one byte per character, others as UTF-16
 * code units (two bytes each); either way a lookup compares the string's char codes directly, with
 * no encoding step. Deleted entries leave a tombstone; the map compacts itself when they make up
 * half of it. Values are backend ids (integers in the int32 range).
 *
 * Same contract as the parts of `Map<string, number>` the table uses: `get`, `set`, `delete`,
 * `has`, `size`, `values()`, and iteration in insertion order (with compaction keeping that order).
 *
 * @since 0.3.0
 */

const EMPTY = 0
const TOMBSTONE = -1
const MIN_CAPACITY = 16
const FIELDS = 4
const HASH = 0
const OFFSET = 1
const LENGTH = 2
const VALUE = 3
const DELETED = -1

/** FNV-1a over the string's UTF-16 code units, as a non-zero 32-bit integer. */
const hashKey = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h | 0 || 1
}

const isNarrow = (key: string): boolean => {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0xff) return false
  return true
}

const nextPow2 = (n: number): number => {
  let c = MIN_CAPACITY
  while (c < n) c *= 2
  return c
}

/** A string → int32 map stored in typed arrays (see the module doc). */
export class RouteMap implements Iterable<[string, number]> {
  /** Open-addressing index: entry number + 1, {@link EMPTY} or {@link TOMBSTONE}. */
  private index: Int32Array
  private mask: number
  /**
   * Per entry, {@link FIELDS} int32s side by side (one cache line for a lookup): the key's hash,
   * its offset in the arena, its length in chars × 2 + 1 when stored as UTF-16 (-1: deleted), the value.
   */
  private meta: Int32Array
  private arena: Uint8Array
  private arenaUsed = 0
  /** Entries written (live and deleted). */
  private written = 0
  private live = 0
  /** Index slots that are not EMPTY (live + tombstones), for the load factor. */
  private usedSlots = 0

  constructor(expected = 0) {
    const cap = nextPow2(Math.max(MIN_CAPACITY, expected * 2))
    this.index = new Int32Array(cap)
    this.mask = cap - 1
    this.meta = new Int32Array(Math.max(8, expected) * FIELDS)
    this.arena = new Uint8Array(Math.max(256, expected * 24))
  }

  /** Build from pairs (tests, small tables). */
  static from(pairs: Iterable<readonly [string, number]>): RouteMap {
    const m = new RouteMap()
    for (const [k, v] of pairs) m.set(k, v)
    return m
  }

  get size(): number {
    return this.live
  }

  /** Bytes held by the map's arrays (for the table's memory figures). */
  get bytes(): number {
    return this.index.byteLength + this.meta.byteLength + this.arena.byteLength
  }

  get(key: string): number | undefined {
    const e = this.find(key, hashKey(key))
    return e < 0 ? undefined : this.meta[e * FIELDS + VALUE]
  }

  has(key: string): boolean {
    return this.find(key, hashKey(key)) >= 0
  }

  set(key: string, value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
      throw new RangeError(`RouteMap: value ${value} is not an int32`)
    }
    const h = hashKey(key)
    const found = this.find(key, h)
    if (found >= 0) {
      this.meta[found * FIELDS + VALUE] = value
      return this
    }
    if ((this.usedSlots + 1) * 4 > this.index.length * 3) this.rehash(this.live + 1)
    const e = this.append(key, h, value)
    let slot = h & this.mask
    let firstTomb = -1
    for (;;) {
      const s = this.index[slot]!
      if (s === EMPTY) break
      if (s === TOMBSTONE && firstTomb < 0) firstTomb = slot
      slot = (slot + 1) & this.mask
    }
    if (firstTomb >= 0) this.index[firstTomb] = e + 1
    else {
      this.index[slot] = e + 1
      this.usedSlots++
    }
    this.live++
    return this
  }

  delete(key: string): boolean {
    const h = hashKey(key)
    let slot = h & this.mask
    for (;;) {
      const s = this.index[slot]!
      if (s === EMPTY) return false
      if (s !== TOMBSTONE && this.matches(s - 1, key, h)) {
        this.index[slot] = TOMBSTONE
        this.meta[(s - 1) * FIELDS + LENGTH] = DELETED
        this.live--
        if (this.written > 64 && this.live * 2 < this.written) this.rehash(this.live)
        return true
      }
      slot = (slot + 1) & this.mask
    }
  }

  *entries(): IterableIterator<[string, number]> {
    for (let e = 0; e < this.written; e++) if (this.isLive(e)) yield [this.keyAt(e), this.meta[e * FIELDS + VALUE]!]
  }

  [Symbol.iterator](): IterableIterator<[string, number]> {
    return this.entries()
  }

  *keys(): IterableIterator<string> {
    for (let e = 0; e < this.written; e++) if (this.isLive(e)) yield this.keyAt(e)
  }

  *values(): IterableIterator<number> {
    for (let e = 0; e < this.written; e++) if (this.isLive(e)) yield this.meta[e * FIELDS + VALUE]!
  }

  /** Call `f` for every live entry, in insertion order (no iterator objects). */
  forEachValue(f: (value: number) => void): void {
    for (let e = 0; e < this.written; e++) if (this.isLive(e)) f(this.meta[e * FIELDS + VALUE]!)
  }

  private isLive(e: number): boolean {
    return this.meta[e * FIELDS + LENGTH]! !== DELETED
  }

  private find(key: string, h: number): number {
    let slot = h & this.mask
    for (;;) {
      const s = this.index[slot]!
      if (s === EMPTY) return -1
      if (s !== TOMBSTONE && this.matches(s - 1, key, h)) return s - 1
      slot = (slot + 1) & this.mask
    }
  }

  private matches(e: number, key: string, h: number): boolean {
    const m = this.meta
    const at = e * FIELDS
    if (m[at + HASH] !== h) return false
    const lw = m[at + LENGTH]!
    if (lw >>> 1 !== key.length || lw === DELETED) return false
    const off = m[at + OFFSET]!
    const a = this.arena
    if ((lw & 1) === 0) {
      for (let i = 0; i < key.length; i++) if (a[off + i] !== key.charCodeAt(i)) return false
    } else {
      for (let i = 0; i < key.length; i++) {
        if ((a[off + 2 * i]! | (a[off + 2 * i + 1]! << 8)) !== key.charCodeAt(i)) return false
      }
    }
    return true
  }

  private keyAt(e: number): string {
    const off = this.meta[e * FIELDS + OFFSET]!
    const lw = this.meta[e * FIELDS + LENGTH]!
    const len = lw >>> 1
    const a = this.arena
    let out = ""
    if ((lw & 1) === 0) {
      for (let i = 0; i < len; i += 4096) out += String.fromCharCode(...a.subarray(off + i, off + Math.min(len, i + 4096)))
    } else {
      const units: Array<number> = []
      for (let i = 0; i < len; i++) units.push(a[off + 2 * i]! | (a[off + 2 * i + 1]! << 8))
      for (let i = 0; i < len; i += 4096) out += String.fromCharCode(...units.slice(i, i + 4096))
    }
    return out
  }

  /** Write a new entry (key into the arena); returns its number. */
  private append(key: string, h: number, value: number): number {
    const narrow = isNarrow(key)
    const need = narrow ? key.length : key.length * 2
    if (this.arenaUsed + need > this.arena.length) {
      const grown = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + need))
      grown.set(this.arena.subarray(0, this.arenaUsed))
      this.arena = grown
    }
    const off = this.arenaUsed
    const a = this.arena
    if (narrow) for (let i = 0; i < key.length; i++) a[off + i] = key.charCodeAt(i)
    else {
      for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i)
        a[off + 2 * i] = c & 0xff
        a[off + 2 * i + 1] = c >>> 8
      }
    }
    this.arenaUsed += need
    if ((this.written + 1) * FIELDS > this.meta.length) {
      const grown = new Int32Array(this.meta.length * 2)
      grown.set(this.meta.subarray(0, this.written * FIELDS))
      this.meta = grown
    }
    const e = this.written++
    const at = e * FIELDS
    this.meta[at + HASH] = h
    this.meta[at + OFFSET] = off
    this.meta[at + LENGTH] = key.length * 2 + (narrow ? 0 : 1)
    this.meta[at + VALUE] = value
    return e
  }

  /** Drop deleted entries (keeping order) and rebuild the index for `expected` live entries. */
  private rehash(expected: number): void {
    if (this.live < this.written) {
      let w = 0
      let arenaW = 0
      const a = this.arena
      const m = this.meta
      for (let e = 0; e < this.written; e++) {
        const lw = m[e * FIELDS + LENGTH]!
        if (lw === DELETED) continue
        const bytes = (lw & 1) === 0 ? lw >>> 1 : lw & ~1
        const off = m[e * FIELDS + OFFSET]!
        if (off !== arenaW) a.copyWithin(arenaW, off, off + bytes)
        m[w * FIELDS + HASH] = m[e * FIELDS + HASH]!
        m[w * FIELDS + OFFSET] = arenaW
        m[w * FIELDS + LENGTH] = lw
        m[w * FIELDS + VALUE] = m[e * FIELDS + VALUE]!
        arenaW += bytes
        w++
      }
      this.written = w
      this.arenaUsed = arenaW
    }
    const cap = nextPow2(Math.max(MIN_CAPACITY, expected * 2))
    if (cap !== this.index.length) {
      this.index = new Int32Array(cap)
      this.mask = cap - 1
    } else this.index.fill(EMPTY)
    for (let e = 0; e < this.written; e++) {
      let slot = this.meta[e * FIELDS + HASH]! & this.mask
      while (this.index[slot] !== EMPTY) slot = (slot + 1) & this.mask
      this.index[slot] = e + 1
    }
    this.usedSlots = this.written
  }
}
