/**
 * Where a proxy connects for a routed backend, and whether that is the proxy itself.
 *
 * Login processes have no DNS: `host=` must be an IP unless `hostip=` is given
 * (`docs/protocols.md` §3). Dovecot's own auth resolves a host name before it answers; the
 * standalone auth server and the relays do the same here:
 * 1. a usable `hostip` (not NULL, not empty) that is an IP is the address;
 * 2. else a `hostname` that is an IP is the address;
 * 3. else the name (`hostip` if set, otherwise `hostname`) is resolved with the system resolver
 *    (`dns.lookup`, so `/etc/hosts` counts) and the first address is used. A failure or a timeout
 *    is a temporary failure (`temp_fail`), never a wrong backend.
 *
 * "Self" follows Dovecot's `proxy_maybe` rule (`docs/protocols.md` §4): the backend IP equals the connection's local
 * IP (`real_lip`, default `lip`) **and** the reply's port is absent or equals `lport`.
 *
 * @since 0.1.0
 */
import { type Backend, usableHostip } from "@doveroute/routing"
import * as dns from "node:dns"
import * as net from "node:net"

/** A backend address: `ip` to connect to; `name` when the backend is known by a host name. */
export type BackendAddress =
  | { readonly _tag: "Address"; readonly ip: string; readonly name: string | undefined }
  | { readonly _tag: "Unresolved"; readonly detail: string }

/** A resolver: name → first IP (rejects on failure). Injectable for tests. */
export type Resolver = (name: string) => Promise<string>

/** The system resolver (`dns.lookup`, honours `/etc/hosts`). */
export const systemResolver: Resolver = (name) => dns.promises.lookup(name).then((r) => r.address)

/** Options of {@link resolveBackend}. */
export interface ResolveOptions {
  readonly resolver?: Resolver
  /** Give up after this many ms (default 5000). */
  readonly timeoutMs?: number
}

const withTimeout = <A>(p: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)
    p.then(
      (a) => {
        clearTimeout(timer)
        resolve(a)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      }
    )
  })

/**
 * The backend's address when it needs no DNS lookup (a usable IP `hostip`, or an IP literal as the
 * host name with no `hostip`); `undefined` when {@link resolveBackend} has to ask the resolver.
 * Same answers as {@link resolveBackend} for those backends.
 */
export const knownAddress = (backend: Backend): BackendAddress | undefined => {
  // backends are immutable values (a change replaces the object): their answer is kept with them
  const seen = addressOf.get(backend)
  if (seen !== undefined) return seen === NEEDS_DNS ? undefined : seen
  const found = findKnownAddress(backend)
  addressOf.set(backend, found ?? NEEDS_DNS)
  return found
}

const NEEDS_DNS = "needs-dns" as const
const addressOf = new WeakMap<Backend, BackendAddress | typeof NEEDS_DNS>()

const findKnownAddress = (backend: Backend): BackendAddress | undefined => {
  const hostip = usableHostip(backend)
  const hostnameIsIp = net.isIP(backend.hostname) !== 0
  if (hostip !== undefined && net.isIP(hostip) !== 0) return { _tag: "Address", ip: hostip, name: hostnameIsIp ? undefined : backend.hostname }
  if (hostip === undefined && hostnameIsIp) return { _tag: "Address", ip: backend.hostname, name: undefined }
  return undefined
}

/** The address to put into a proxy reply for `backend` (see the module doc). Never rejects. */
export const resolveBackend = async (backend: Backend, options: ResolveOptions = {}): Promise<BackendAddress> => {
  const known = knownAddress(backend)
  if (known !== undefined) return known
  const hostip = usableHostip(backend)
  const name = net.isIP(backend.hostname) !== 0 ? undefined : backend.hostname
  const target = hostip ?? backend.hostname
  if (target.length === 0) return { _tag: "Unresolved", detail: `backend ${backend.id} has no hostname` }
  try {
    const ip = await withTimeout((options.resolver ?? systemResolver)(target), options.timeoutMs ?? 5000, `DNS lookup for ${target}`)
    if (net.isIP(ip) === 0) return { _tag: "Unresolved", detail: `DNS lookup for ${target} gave ${JSON.stringify(ip)}` }
    return { _tag: "Address", ip, name }
  } catch (e) {
    return { _tag: "Unresolved", detail: `DNS lookup for ${target} failed: ${(e as Error).message}` }
  }
}

/** Normalise an IP for comparison: IPv4-mapped IPv6 → IPv4, IPv6 lower-case. */
export const normalizeIp = (ip: string): string => {
  const lower = ip.trim().toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower)
  return mapped !== null ? mapped[1]! : lower
}

/**
 * Dovecot's `proxy_maybe` self test: `ip` equals `localIp` and `port` is absent or equals
 * `localPort`. False when the local IP is unknown.
 */
export const isSelf = (ip: string, port: number | undefined, localIp: string | undefined, localPort: number | undefined): boolean =>
  localIp !== undefined && localIp.length > 0 && normalizeIp(ip) === normalizeIp(localIp) &&
  (port === undefined || port === localPort)
