/**
 * Where a login is proxied to: the one place that answers "why did this reply say `host=…` /
 * `port=…`" for every front-end.
 *
 * - dict and HTTP (`DictServer`, `HttpRoute`) and `doveroute lookup` answer a passdb lookup:
 *   {@link passdbFields} (the proxy flag, `host=<name>`, `hostip=` when usable, then the configured
 *   extra fields). Dovecot resolves the name and makes the `proxy_maybe` self check itself.
 * - The standalone auth server and the two relays hand Dovecot a finished proxy reply, so they
 *   decide here, with {@link destination}: lookup → resolve the backend's address → port → self
 *   check. The answer is a {@link Destination}; {@link authServerFields} and
 *   {@link relayFields} turn it into the fields each of them writes.
 *
 * Port: a port the reply already names wins (relays); else the configured port for the request's
 * protocol (`BackendPorts`); else none. Self: the backend's IP equals the connection's local IP and
 * the port is absent or equals the local port — this server itself, which a front-end that
 * finishes the proxy reply cannot serve (`temp_fail`).
 *
 * Plain async functions: this runs per request on the socket hot path, and a cached route
 * answers without an Effect fiber ({@link LookupService}).
 *
 * @since 0.1.0
 */
import type { ProxyFields } from "@doveroute/protocol"
import { type Backend, replyFields } from "@doveroute/routing"
import { type BackendAddress, isSelf, knownAddress, type Resolver, resolveBackend } from "./BackendAddress.js"
import { type BackendPorts, portFor } from "./BackendPort.js"
import type { ListenerLog } from "./ListenerLog.js"
import type { LookupService } from "./Lookup.js"

/** The passdb reply fields of the dict and HTTP front-ends (and `doveroute lookup`). */
export const passdbFields = replyFields

/** What {@link destination} needs from its front-end (shared by its connections). */
export interface DestinationContext {
  readonly lookup: LookupService
  readonly ports: BackendPorts
  readonly resolver?: Resolver | undefined
  readonly resolveTimeoutMs?: number | undefined
  readonly log: ListenerLog
}

/** One request to proxy. */
export interface DestinationQuery {
  readonly user: string
  /** Front-end name for routing logs and metrics (`auth`, `login-relay`, `userdb-relay`). */
  readonly frontend: string
  /** The request's tag (the passdb reply's `director_tag`; routing's Tags.ts), if any. */
  readonly tag?: string | undefined
  /** The request's protocol/service (selects the configured port). */
  readonly protocol: string | undefined
  /** A port the reply already names: it wins over the configured one (`replyPort` present). */
  readonly replyPort?: number | undefined
  /** `true` when the reply names a port (even an unusable one): no port is then configured. */
  readonly hasReplyPort?: boolean
  /** The connection's local IP and port (for the self check). */
  readonly lip: string | undefined
  readonly lport: number | undefined
  /** Make the self check (`proxy_maybe`). */
  readonly selfCheck: boolean
  /** Asked after each wait: `false` stops (the request was cancelled). Default: always wanted. */
  readonly wanted?: () => boolean
}

/** The decision for one request. */
export type Destination =
  | {
    readonly _tag: "Proxy"
    readonly backend: Backend
    /** The backend's IP (resolved from its host name when it has no usable `hostip`). */
    readonly ip: string
    /** The backend's host name when it is one (not an IP literal). */
    readonly name: string | undefined
    readonly port: number | undefined
  }
  /** Routing failed (already logged by the lookup) or no address: answer `temp_fail`. */
  | { readonly _tag: "TempFail" }
  /** The backend is this server (logged by the caller, whose wording differs). */
  | { readonly _tag: "Self"; readonly backend: Backend; readonly ip: string }
  /** The request is no longer wanted ({@link DestinationQuery.wanted}). */
  | { readonly _tag: "Gone" }

const TEMP_FAIL: Destination = { _tag: "TempFail" }
const GONE: Destination = { _tag: "Gone" }

/** The decision once the backend and its address are known: port, then the self check. */
const decide = (ctx: DestinationContext, q: DestinationQuery, backend: Backend, addr: BackendAddress): Destination => {
  if (addr._tag === "Unresolved") {
    ctx.log("Warning", "backend address unknown, answering temp_fail", { user: q.user, backend_id: backend.id, detail: addr.detail })
    return TEMP_FAIL
  }
  const port = q.hasReplyPort === true ? q.replyPort : portFor(ctx.ports, q.protocol)
  if (q.selfCheck && isSelf(addr.ip, port, q.lip, q.lport)) return { _tag: "Self", backend, ip: addr.ip }
  return { _tag: "Proxy", backend, ip: addr.ip, name: addr.name, port }
}

/**
 * The decision at once when nothing has to be waited for: the route comes from memory
 * ({@link LookupService.cached}) and the backend's address needs no DNS lookup. `undefined`:
 * use {@link destination}. Same answer as {@link destination} whenever it gives one.
 */
export const destinationNow = (ctx: DestinationContext, q: DestinationQuery): Destination | undefined => {
  const res = ctx.lookup.cached?.(q.user, q.frontend, q.tag)
  if (res === undefined || res._tag !== "Routed") return undefined
  const backend = res.route.backend
  const addr = knownAddress(backend)
  return addr === undefined ? undefined : decide(ctx, q, backend, addr)
}

/** Decide where to proxy one request. Never rejects unless the lookup service does. */
export const destination = async (ctx: DestinationContext, q: DestinationQuery): Promise<Destination> => {
  const res = await ctx.lookup.lookup(q.user, q.frontend, q.tag)
  if (q.wanted !== undefined && !q.wanted()) return GONE
  if (res._tag === "TempFail") return TEMP_FAIL
  const backend = res.route.backend
  const addr = await resolveBackend(backend, {
    ...(ctx.resolver !== undefined ? { resolver: ctx.resolver } : {}),
    ...(ctx.resolveTimeoutMs !== undefined ? { timeoutMs: ctx.resolveTimeoutMs } : {})
  })
  if (q.wanted !== undefined && !q.wanted()) return GONE
  return decide(ctx, q, backend, addr)
}

/**
 * The standalone auth server's proxy fields (before `pass=`/`master=`): the bare `proxy` token
 * (2.3 login processes need it), `host=<IP>` (always an IP), `port=` when one applies.
 */
export const authServerFields = (d: Extract<Destination, { _tag: "Proxy" }>): Array<ProxyFields.Field> => {
  const fields: Array<ProxyFields.Field> = [["proxy", undefined], ["host", d.ip]]
  if (d.port !== undefined) fields.push(["port", String(d.port)])
  return fields
}

/**
 * The fields a relay appends to Dovecot's reply: a bare `proxy` when the reply only had
 * `proxy_maybe`, `host=<IP>` (or `host=<name>\thostip=<IP>` for a backend known by name), and
 * `port=` when the reply had none and one is configured.
 */
export const relayFields = (
  d: Extract<Destination, { _tag: "Proxy" }>,
  replyHasProxy: boolean,
  replyHasPort: boolean
): Array<ProxyFields.Field> => {
  const fields: Array<ProxyFields.Field> = []
  if (!replyHasProxy) fields.push(["proxy", undefined])
  if (d.name !== undefined) fields.push(["host", d.name], ["hostip", d.ip])
  else fields.push(["host", d.ip])
  if (!replyHasPort && d.port !== undefined) fields.push(["port", String(d.port)])
  return fields
}
