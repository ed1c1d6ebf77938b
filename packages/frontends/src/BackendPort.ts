/**
 * The backend port put into proxy replies (`port=`) by the auth server and the relays.
 *
 * Configured as a list of specs: `N` (any protocol) or `<protocol>=N` (one protocol, e.g.
 * `imap=143`, `pop3=110`, `lmtp=24`). A protocol's own entry wins over the plain `N`. With no
 * entry for a protocol no `port=` is added, and Dovecot uses its protocol default (143, 110, …).
 * The protocol is the request's `service=` / `protocol=` value (`imap`, `pop3`, `lmtp`,
 * `submission`, `doveadm`, …).
 *
 * @since 0.1.0
 */

/** Ports by protocol plus a fallback for every other protocol. */
export interface BackendPorts {
  readonly fallback: number | undefined
  readonly byProtocol: ReadonlyMap<string, number>
}

/** No port configured: replies carry no `port=`. */
export const NO_PORTS: BackendPorts = { fallback: undefined, byProtocol: new Map() }

/** A port spec that is not `N` or `<protocol>=N` with N in 1..65535. */
export class InvalidPortSpec extends Error {
  constructor(readonly spec: string) {
    super(`invalid port ${JSON.stringify(spec)}: expected N or <protocol>=N with N in 1..65535 (e.g. 143, imap=143, pop3=110)`)
    this.name = "InvalidPortSpec"
  }
}

const parsePortNumber = (text: string): number | undefined => {
  if (!/^\d{1,5}$/.test(text)) return undefined
  const n = Number(text)
  return n >= 1 && n <= 65535 ? n : undefined
}

/**
 * Parse port specs (`["25143", "pop3=25110"]`). Empty strings are ignored; a later spec for the
 * same protocol wins.
 *
 * @throws InvalidPortSpec
 */
export const parseBackendPorts = (specs: ReadonlyArray<string>): BackendPorts => {
  let fallback: number | undefined
  const byProtocol = new Map<string, number>()
  for (const raw of specs) {
    const spec = raw.trim()
    if (spec.length === 0) continue
    const eq = spec.indexOf("=")
    if (eq === -1) {
      const n = parsePortNumber(spec)
      if (n === undefined) throw new InvalidPortSpec(raw)
      fallback = n
      continue
    }
    const protocol = spec.slice(0, eq).trim().toLowerCase()
    const n = parsePortNumber(spec.slice(eq + 1).trim())
    if (!/^[a-z0-9_-]+$/.test(protocol) || n === undefined) throw new InvalidPortSpec(raw)
    byProtocol.set(protocol, n)
  }
  return { fallback, byProtocol }
}

/** The port for a protocol: its own entry, else the fallback, else `undefined` (no `port=`). */
export const portFor = (ports: BackendPorts, protocol: string | undefined): number | undefined =>
  (protocol !== undefined ? ports.byProtocol.get(protocol.toLowerCase()) : undefined) ?? ports.fallback

/** For logs: `25143 pop3=25110`, or `-` when nothing is configured. */
export const describeBackendPorts = (ports: BackendPorts): string => {
  const parts: Array<string> = []
  if (ports.fallback !== undefined) parts.push(String(ports.fallback))
  for (const [p, n] of ports.byProtocol) parts.push(`${p}=${n}`)
  return parts.length > 0 ? parts.join(" ") : "-"
}
