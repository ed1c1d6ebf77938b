/**
 * How a relay completes a proxy reply from Dovecot's auth (`docs/protocols.md` §8), shared by
 * the login relay (`OK` lines) and the userdb relay (`PASS` lines):
 *
 * - Only lines of the relay's reply command that ask for proxying without a host
 *   (`ProxyFields.needsRoute`: `proxy`/`proxy_maybe`/`director_proxy_maybe`, no `host=`) are
 *   touched; everything else passes byte for byte.
 * - The user routed is `destuser` over `user`, cut at the master-user separator `*`; the reply's
 *   `director_tag` (from Dovecot's passdb) is the request's tag (routing's Tags.ts).
 * - Appended, never reordered: `host=<ip>` (or `host=<name>\thostip=<ip>` when the backend has a
 *   host name), `port=<n>` when the reply has no `port` and one is configured for the request's
 *   protocol, and a bare `proxy` when the reply only had `proxy_maybe` (`Destination.ts`).
 * - Replaced by `FAIL\t<id>\tcode=temp_fail` when no backend can be given (store trouble, no
 *   backend up, unresolvable host name, no user name) and when the backend is this very server
 *   (its IP equals the reply's/request's `lip` and the port is absent or equals `lport`): the real
 *   auth has already forgotten a proxied request, so a local login is impossible at this point.
 *
 * @since 0.1.0
 */
import { FieldCheck, ProxyFields, TabEscape } from "@doveroute/protocol"
import { destination, type DestinationContext, relayFields } from "./Destination.js"

/** What the relay saw in the client's request with a given id. */
export interface RequestInfo {
  readonly protocol: string | undefined
  readonly lip: string | undefined
  readonly lport: string | undefined
}

/** Remembers the requests in flight on one relayed connection, by id (bounded). */
export class RequestTable {
  private readonly byId = new Map<string, RequestInfo>()
  constructor(private readonly limit = 10_000) {}

  set(id: string, info: RequestInfo): void {
    if (this.byId.size >= this.limit) {
      const oldest = this.byId.keys().next()
      if (!oldest.done) this.byId.delete(oldest.value)
    }
    this.byId.delete(id)
    this.byId.set(id, info)
  }

  /** The request's info, removing it (a final reply ends the request). */
  take(id: string): RequestInfo | undefined {
    const info = this.byId.get(id)
    this.byId.delete(id)
    return info
  }

  get size(): number {
    return this.byId.size
  }
}

/** Pull protocol/lip/lport out of a request line's fields (`service=` or `protocol=`; real_lip wins). */
export const requestInfo = (fields: ReadonlyArray<TabEscape.KeyValue>): RequestInfo => {
  let protocol: string | undefined
  let lip: string | undefined
  let realLip: string | undefined
  let lport: string | undefined
  for (const kv of fields) {
    switch (kv.key) {
      case "service":
      case "protocol":
        protocol = kv.value
        break
      case "lip":
        lip = kv.value
        break
      case "real_lip":
        realLip = kv.value
        break
      case "lport":
        lport = kv.value
        break
    }
  }
  return { protocol, lip: realLip ?? lip, lport }
}

/** Remember a request line (`AUTH\t<id>\t<mech>\t…` or `PASS\t<id>\t<user>\t…`): its fields start at the fourth. */
export const rememberRequest = (requests: RequestTable, line: string): void => {
  const args = TabEscape.splitLine(line)
  if (args[1] !== undefined) requests.set(args[1], requestInfo(args.slice(3).map(TabEscape.parseKeyValue)))
}

/** The safety-net reply when a rewrite rejects: temp_fail for the line's id. */
export const rewriteErrorLine = (line: Buffer): string =>
  ProxyFields.tempFailLine(ProxyFields.parseReplyLine(line.toString("utf8"))?.id ?? "0")

/** Settings shared by both relays. */
export interface RelayRouteContext extends DestinationContext {
  /** Name for routing logs (`login-relay`, `userdb-relay`). */
  readonly frontend: string
}

const toPort = (text: string | undefined): number | undefined =>
  text !== undefined && /^\d{1,5}$/.test(text) ? Number(text) : undefined

/**
 * Route one reply line (bytes without LF) whose command is the relay's reply command and which
 * {@link ProxyFields.needsRoute}; resolves with the line to write (with LF): the original bytes
 * plus the appended fields, or the temp_fail line. Never rejects.
 */
export const completeProxyReply = async (
  ctx: RelayRouteContext,
  line: Uint8Array,
  reply: ProxyFields.ReplyLine,
  request: RequestInfo | undefined
): Promise<string | Uint8Array> => {
  const fail = ProxyFields.tempFailLine(reply.id)
  const user = ProxyFields.routeUser(reply.fields)
  if (user === undefined || user.length === 0) {
    ctx.log("Warning", "proxy reply without a user name, answering temp_fail", { id: reply.id })
    return fail
  }
  const bad = FieldCheck.firstBadField([["user", user]])
  if (bad !== undefined) {
    ctx.log("Warning", "proxy reply with an unusable user name, answering temp_fail", { id: reply.id, reason: FieldCheck.describeBadField(bad) })
    return fail
  }
  const replyPort = ProxyFields.fieldValue(reply.fields, "port")
  const lip = ProxyFields.fieldValue(reply.fields, "lip") ?? request?.lip
  const d = await destination(ctx, {
    user,
    frontend: ctx.frontend,
    tag: ProxyFields.routeTag(reply.fields),
    protocol: request?.protocol,
    hasReplyPort: replyPort !== undefined,
    replyPort: toPort(replyPort),
    lip,
    lport: toPort(ProxyFields.fieldValue(reply.fields, "lport") ?? request?.lport),
    selfCheck: true
  })
  if (d._tag !== "Proxy") {
    if (d._tag === "Self") {
      ctx.log("Warning", "user's backend is this server: the relay cannot turn a proxied login into a local one", {
        user,
        backend_id: d.backend.id,
        host: d.ip,
        lip
      })
    }
    return fail
  }
  const extra = relayFields(d, ProxyFields.hasProxy(reply.fields), replyPort !== undefined)
  ctx.log("Debug", "routed proxy reply", { user, host: d.ip, port: d.port ?? "-" })
  const withLf = new Uint8Array(line.length + 1)
  withLf.set(line, 0)
  withLf[line.length] = 0x0a
  return ProxyFields.appendFieldsBytes(withLf, extra)
}

/**
 * The rewrite step of a relay for reply command `command` (`OK` or `PASS`): `undefined` for
 * lines to pass unchanged, else the promise of the completed line. `requests.take` is called for
 * every reply of the command (and for `FAIL`/`NOTFOUND`), so finished requests are forgotten.
 */
export const proxyRewriter = (
  ctx: RelayRouteContext,
  command: "OK" | "PASS",
  requests: RequestTable,
  finalCommands: ReadonlySet<string>
) =>
(bytes: Buffer): Promise<string | Uint8Array> | undefined => {
  // cheap prefix test first: most lines are not replies of interest
  const tab = bytes.indexOf(9)
  if (tab <= 0) return undefined
  const cmd = bytes.toString("latin1", 0, tab)
  if (cmd !== command && !finalCommands.has(cmd)) return undefined
  const line = bytes.toString("utf8")
  const reply = ProxyFields.parseReplyLine(line)
  if (reply === undefined) return undefined
  const request = requests.take(reply.id)
  if (cmd !== command || !ProxyFields.needsRoute(reply.fields)) return undefined
  // the user name would be garbled: do not route on it
  if (!Buffer.from(line, "utf8").equals(bytes)) {
    ctx.log("Warning", "proxy reply is not valid UTF-8, answering temp_fail", { id: reply.id })
    return Promise.resolve(ProxyFields.tempFailLine(reply.id))
  }
  return completeProxyReply(ctx, bytes, reply, request)
}
