/**
 * The auth penalty: a remote IP that keeps failing waits longer before each new attempt is even
 * looked at, as Dovecot's auth server does (docs/protocols.md §2.9).
 *
 * Per remote IP (`rip`; an IPv6 address counts by its /48, so one host cannot spread over its
 * addresses) the penalty is a count 0–4 and the time of the last failure:
 * - a request from an IP with penalty `p > 0` starts after `min(2 · 2^p, 15)` seconds;
 * - each failure sets the count to one more than the count the request started with (at most 4);
 *   the same user and password failing again does not raise it (a client retrying one typo);
 * - a success clears it, and so do 15 s without a failure from that address.
 * Requests without `rip`, or flagged `no-penalty` by the login process (Dovecot sets it for
 * `login_trusted_networks`), are never delayed. Memory is bounded: at most {@link MAX_IPS}
 * addresses, the oldest forgotten first.
 *
 * @since 0.1.0
 */
import CRC32 from "crc-32"
import * as net from "node:net"

/** The first penalty step in seconds, the cap (also the quiet time that clears a count), the largest count. */
export const PENALTY_INIT_SECS = 2
export const PENALTY_MAX_SECS = 15
export const PENALTY_MAX = 4

/** Addresses tracked at most. */
export const MAX_IPS = 100_000
/** Recent user/password checksums kept per address (a repeat of one of them is not a new guess). */
const CHECKSUMS_KEPT = 4

/** Delay in seconds for a penalty count. */
export const penaltySecs = (penalty: number): number =>
  Math.min(PENALTY_INIT_SECS * 2 ** penalty, PENALTY_MAX_SECS)

interface Entry {
  penalty: number
  lastMs: number
  checksums: Array<number>
}

/** The key of a remote IP: the address itself, an IPv6 address cut to its /48; `undefined` for none. */
export const penaltyIdent = (rip: string | undefined): string | undefined => {
  if (rip === undefined || rip.length === 0) return undefined
  const family = net.isIP(rip)
  if (family === 0) return undefined
  if (family === 4) return rip
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(rip)
  if (mapped !== null) return mapped[1]
  return `${expandV6(rip).slice(0, 3).join(":")}::/48`
}

const expandV6 = (ip: string): Array<string> => {
  const [head, tail] = ip.split("::") as [string, string | undefined]
  const h = head === "" ? [] : head.split(":")
  const t = tail === undefined || tail === "" ? [] : tail.split(":")
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t]
  return groups.map((g) => parseInt(g, 16).toString(16))
}

/** The penalty table of one auth listener. `now` is injectable for tests. */
export class AuthPenalty {
  private readonly ips = new Map<string, Entry>()

  constructor(private readonly now: () => number = Date.now) {}

  /** The count a request from `ident` starts with (after the quiet-time decay). */
  current(ident: string | undefined): number {
    if (ident === undefined) return 0
    const e = this.ips.get(ident)
    if (e === undefined) return 0
    // Dovecot drops the count step by step from the top (15, 15, 8, 4 s) while the quiet time covers
    // the step; as the top step is the longest, that is: all of it after 15 s, none of it before
    if (this.now() - e.lastMs >= PENALTY_MAX_SECS * 1000) {
      this.ips.delete(ident)
      return 0
    }
    return e.penalty
  }

  /** Milliseconds a request that starts with count `penalty` waits. */
  static delayMs(penalty: number): number {
    return penalty <= 0 ? 0 : penaltySecs(penalty) * 1000
  }

  /** A failure of a request that started with count `startedWith`. */
  failed(ident: string | undefined, startedWith: number, user: string, password: string): void {
    if (ident === undefined) return
    const sum = CRC32.str(`${user}\u0000${password}`)
    const e = this.ips.get(ident)
    const now = this.now()
    if (e === undefined) {
      this.remember(ident, { penalty: Math.min(startedWith + 1, PENALTY_MAX), lastMs: now, checksums: [sum] })
      return
    }
    e.lastMs = now
    if (e.checksums.includes(sum)) return
    e.checksums.push(sum)
    if (e.checksums.length > CHECKSUMS_KEPT) e.checksums.shift()
    e.penalty = Math.min(Math.max(startedWith, 0) + 1, PENALTY_MAX)
    // keep the newest last, so the oldest is dropped first when full
    this.ips.delete(ident)
    this.ips.set(ident, e)
  }

  /** A success: the address starts afresh. */
  succeeded(ident: string | undefined): void {
    if (ident !== undefined) this.ips.delete(ident)
  }

  /** Addresses tracked (for tests and metrics). */
  size(): number {
    return this.ips.size
  }

  private remember(ident: string, e: Entry): void {
    if (this.ips.size >= MAX_IPS) {
      const oldest = this.ips.keys().next()
      if (!oldest.done) this.ips.delete(oldest.value)
    }
    this.ips.set(ident, e)
  }
}
