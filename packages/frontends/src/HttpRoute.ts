/**
 * HTTP route endpoint for Dovecot 2.4 passdb chains: `lua/http-route.lua` (a Lua passdb using
 * Dovecot's built-in `dovecot.http.client`) asks doveroute where a user goes
 * (docs/lua-director.md §6). 2.4 removed `passdb dict`, so this is how a 2.4 chain such as
 * `pam` (`result_success = continue-ok`) → routing passdb (`skip = unauthenticated`) reaches
 * the daemon.
 *
 * - `GET /route?user=<u>&protocol=<p>&tag=<t>` (`service=` is accepted for `protocol=`; `tag`,
 *   optional, is the passdb's `director_tag`: used when the user is placed, routing's Tags.ts;
 *   empty = none):
 *   - `200`, `text/plain`: the passdb reply fields, TAB-separated, `key=value` or a bare `key`
 *     for a flag — the same fields as the dict front-end (`passdbFields` in `Destination.ts`: proxy flag, `host`,
 *     `hostip` when non-empty, the configured extra fields), built fresh per request;
 *   - `503` on a temporary failure (store down, no backend with `state = 0`, …): the Lua passdb
 *     answers an internal failure, the client sees `temp_fail`;
 *   - `400` for a bad request: no or empty `user`, any query parameter (name or value) with a
 *     control character (NUL, TAB, CR, LF, other C0, DEL), a query that is not valid
 *     percent-encoded UTF-8 (never guessed: a wrongly decoded name would be routed as another
 *     user), `protocol` with characters outside `[A-Za-z0-9_.-]`, a `tag` that is not a tag name,
 *     `tag` given more than once (the first occurrence of any other name wins);
 * - every other path: `404` (other methods on `/route` too).
 *
 * Who may ask: its answers say where every user's mail is, and a first lookup writes a row. It
 * listens on a UNIX socket (the default in the shipped configs: mode/owner/group decide who can
 * connect) or on loopback TCP (`127.0.0.0/8`, `::1`) with a shared token, which a TCP listener
 * must have (refused at start without one; any other address is refused too). With a token,
 * `/route` first checks `Authorization: Bearer <token>` (constant time): `401` without it, `403`
 * for a wrong one, in both cases before the store is touched. Requests in absolute form
 * (`GET http://localhost/route?…`, what Dovecot's HTTP client sends through
 * `proxy_socket_path`) are served like `GET /route?…`.
 *
 * Never a secret: configured extra fields holding one (`password=`, `pass=`) are not sent over
 * HTTP (logged at start); a master password belongs in Dovecot's passdb configuration.
 *
 * Built on @effect/platform's `HttpRouter` and `NodeHttpServer`.
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { FieldCheck } from "@doveroute/protocol"
import { type ExtraField, type ProxyFlag, SECRET_KEYS, validTag } from "@doveroute/routing"
import { passdbFields } from "./Destination.js"
import { Data, Effect, Layer, Redacted } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import { constantTimeEquals } from "./Authenticator.js"
import * as ListenerCounts from "./ListenerCounts.js"
import { Lookup, type LookupService } from "./Lookup.js"
import { formatHttpListen, type HttpListen, listenProblem } from "./HttpListen.js"
import { ListenerError, socketFile, type SocketPermissions } from "./UnixListener.js"

export * from "./HttpListen.js"

/** HTTP route endpoint settings (socket permissions apply to a UNIX socket only). */
export interface HttpRouteOptions extends SocketPermissions {
  readonly listen: HttpListen
  readonly proxyFlag: ProxyFlag
  readonly extraFields: ReadonlyArray<ExtraField>
  /** Shared token callers send as `Authorization: Bearer <token>`; required for TCP. */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Max concurrent connections (Node's `server.maxConnections`: more are closed at once); default 10 000. */
  readonly maxConnections?: number | undefined
}

/** A query parameter problem (answered with 400). */
class BadRequest extends Data.TaggedError("BadRequest")<{ readonly detail: string }> {}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** Percent-decode one query component to bytes, then strict UTF-8; `+` is a space. */
const decodeComponent = (raw: string): string => {
  const bytes: Array<number> = []
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new BadRequest({ detail: "invalid percent-encoding in the query" })
      bytes.push(parseInt(hex, 16))
      i += 2
    } else if (c === 0x2b /* + */) {
      bytes.push(0x20)
    } else if (c < 0x80) {
      bytes.push(c)
    } else {
      // raw non-ASCII in the request line: Node hands it over as latin1; take the bytes as they came
      bytes.push(c & 0xff)
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes))
  } catch {
    throw new BadRequest({ detail: "the query is not valid UTF-8" })
  }
}

/** Every `name=value` pair of a request URL's query, strictly decoded, in order (repeats kept). */
const queryPairs = (url: string): Array<readonly [string, string]> => {
  const q = url.indexOf("?")
  if (q === -1) return []
  const out: Array<readonly [string, string]> = []
  for (const part of (url.slice(q + 1).split("#")[0] ?? "").split("&")) {
    if (part.length === 0) continue
    const eq = part.indexOf("=")
    out.push([decodeComponent(eq === -1 ? part : part.slice(0, eq)), eq === -1 ? "" : decodeComponent(part.slice(eq + 1))])
  }
  return out
}

/** The query parameters of a request, from {@link queryPairs}: the first occurrence of a name wins. */
const firstWins = (pairs: ReadonlyArray<readonly [string, string]>): Map<string, string> => {
  const out = new Map<string, string>()
  for (const [name, value] of pairs) if (!out.has(name)) out.set(name, value)
  return out
}

const PROTOCOL_RE = /^[A-Za-z0-9_.-]{0,64}$/
const UNSAFE_VALUE = /[\t\r\n]/

/** What one `/route` request asks for, or why it is bad. */
export const parseRouteRequest = (url: string): { readonly user: string; readonly protocol: string; readonly tag?: string } => {
  const pairs = queryPairs(url)
  const q = firstWins(pairs)
  for (const [name, value] of q) {
    const bad = FieldCheck.firstBadField([["a parameter name", name], [/^[A-Za-z0-9_-]+$/.test(name) ? name : "a parameter", value]])
    if (bad !== undefined) throw new BadRequest({ detail: FieldCheck.describeBadField(bad) })
  }
  const user = q.get("user")
  if (user === undefined || user.length === 0) throw new BadRequest({ detail: "missing or empty user parameter" })
  const protocol = q.get("protocol") ?? q.get("service") ?? ""
  if (!PROTOCOL_RE.test(protocol)) throw new BadRequest({ detail: "invalid protocol parameter" })
  // the first occurrence wins for the other names; a second `tag` (even an empty or malformed
  // one) would be ignored, and the user placed in another pool: refused
  if (pairs.filter(([name]) => name === "tag").length > 1) throw new BadRequest({ detail: "the tag parameter is given more than once" })
  const tag = q.get("tag") ?? ""
  if (tag !== "" && !validTag(tag)) throw new BadRequest({ detail: "invalid tag parameter" })
  return tag === "" ? { user, protocol } : { user, protocol, tag }
}

/** Encode reply fields as the response body: `key=value` / bare `key`, TAB-separated. */
export const encodeFields = (fields: ReadonlyArray<readonly [string, string | undefined]>): string =>
  fields.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join("\t")

const PLAIN = { contentType: "text/plain; charset=utf-8", headers: { "cache-control": "no-store" } } as const

/** Whether an `Authorization` header carries the token: `ok`, `missing` (no Bearer token) or `wrong`. */
export const checkToken = (expected: Redacted.Redacted<string>, header: string | undefined): "ok" | "missing" | "wrong" => {
  const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  if (m === null) return "missing"
  return constantTimeEquals(m[1]!, Redacted.value(expected)) ? "ok" : "wrong"
}

/** The configured extra fields that may go over HTTP: every one but secrets (`password=`, `pass=`). */
export const httpExtraFields = (extra: ReadonlyArray<ExtraField>): ReadonlyArray<ExtraField> =>
  extra.filter((f) => !SECRET_KEYS.has(f.key))

/** The HTTP app: the `/route` handler on a router (everything else is 404). */
export const makeApp = (lookup: LookupService, options: Pick<HttpRouteOptions, "proxyFlag" | "extraFields" | "token">) => {
  // options.extraFields is the daemon's live list (a SIGHUP reload replaces it in place): filter per request
  const token = options.token
  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/route",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (token !== undefined) {
          const verdict = checkToken(token, request.headers["authorization"])
          if (verdict !== "ok") {
            yield* Effect.logWarning(verdict === "missing" ? "http route: request without the token refused" : "http route: wrong token refused").pipe(
              Effect.annotateLogs({ listener: "http" })
            )
            return verdict === "missing"
              ? HttpServerResponse.text("unauthorized: send Authorization: Bearer <http.token>\n", {
                ...PLAIN,
                status: 401,
                headers: { ...PLAIN.headers, "www-authenticate": "Bearer" }
              })
              : HttpServerResponse.text("forbidden: wrong token\n", { ...PLAIN, status: 403 })
          }
        }
        let parsed: { readonly user: string; readonly protocol: string; readonly tag?: string }
        try {
          parsed = parseRouteRequest(request.url)
        } catch (e) {
          const detail = e instanceof BadRequest ? e.detail : "bad request"
          yield* Effect.logDebug("http route: bad request").pipe(Effect.annotateLogs({ listener: "http", detail }))
          return HttpServerResponse.text(`bad request: ${detail}\n`, { ...PLAIN, status: 400 })
        }
        const res = yield* Effect.promise(() => lookup.lookup(parsed.user, "http", parsed.tag))
        if (res._tag === "TempFail") {
          return HttpServerResponse.text(`temporary failure: ${res.reason}\n`, { ...PLAIN, status: 503 })
        }
        const fields = passdbFields(res.route.backend, options.proxyFlag, httpExtraFields(options.extraFields))
        if (fields.some(([k, v]) => UNSAFE_VALUE.test(k) || (v !== undefined && UNSAFE_VALUE.test(v)))) {
          yield* Effect.logWarning("http route: a reply field contains TAB/CR/LF; answering 503").pipe(
            Effect.annotateLogs({ listener: "http", user: parsed.user, backend_id: res.route.backend.id })
          )
          return HttpServerResponse.text("temporary failure: unencodable backend row\n", { ...PLAIN, status: 503 })
        }
        yield* Effect.logDebug("http route: routed").pipe(
          Effect.annotateLogs({ listener: "http", user: parsed.user, protocol: parsed.protocol, host: res.route.backend.hostname })
        )
        return HttpServerResponse.text(encodeFields(fields), { ...PLAIN, status: 200 })
      })
    ),
    // other paths and methods: a plain 404, not an "unhandled error" log line per request
    Effect.catchTag("RouteNotFound", () => HttpServerResponse.text("not found\n", { ...PLAIN, status: 404 }))
  )
}

/** `http://host/path?q` (absolute form, sent to a proxy) → `/path?q`; other targets unchanged. */
export const originForm = (target: string): string => {
  if (!/^https?:\/\//i.test(target)) return target
  try {
    const u = new URL(target)
    return u.pathname + u.search
  } catch {
    return target
  }
}

/**
 * The HTTP route listener as a layer: listens for the layer's lifetime. Needs {@link Lookup}.
 * Fails at start (`ListenerError`) for a non-loopback address, a port in use or a live socket.
 */
export const layer = (options: HttpRouteOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const lookup = yield* Lookup
      const l = options.listen
      const where = formatHttpListen(l)
      const problem = listenProblem(l, options.mode, options.token !== undefined)
      if (problem !== undefined) return yield* new ListenerError({ reason: "Open", path: where, detail: problem })
      const dropped = options.extraFields.filter((f) => SECRET_KEYS.has(f.key)).map((f) => f.key)
      if (dropped.length > 0) {
        yield* Effect.logWarning("http route: secret extra fields are not sent over HTTP; set them in Dovecot's passdb").pipe(
          Effect.annotateLogs({ listener: "http", fields: dropped.join(",") })
        )
      }
      // runs before the platform's handler: absolute-form targets become origin-form
      const server = http.createServer((req) => {
        if (req.url !== undefined) req.url = originForm(req.url)
      })
      server.maxConnections = options.maxConnections ?? 10_000
      // open connections for the metrics scrape: counted on connect and close only
      let open = 0
      server.on("connection", (socket: net.Socket) => {
        open++
        socket.once("close", () => open--)
      })
      const unregister = ListenerCounts.register("http", () => open)
      yield* Effect.addFinalizer(() => Effect.sync(unregister))
      const make = (at: { readonly host: string; readonly port: number } | { readonly path: string }) =>
        // loaded here, not at the top: Settings imports this module, and admin commands must not load
        // the HTTP server stack (undici, ws) at every start
        Effect.promise(() => import("@effect/platform-node/NodeHttpServer")).pipe(
          Effect.flatMap((NodeHttpServer) => NodeHttpServer.make(() => server, at)),
          Effect.mapError((e) => new ListenerError({ reason: "Open", path: where, detail: e.cause instanceof Error ? e.cause.message : String(e.cause) }))
        )
      // a UNIX socket is bound 0600 at a staging name, then published with its permissions (SocketFile)
      const httpServer = l._tag === "Tcp"
        ? yield* make({ host: l.host, port: l.port })
        : yield* socketFile(l.path, options, (bindPath) => make({ path: bindPath }))
      yield* httpServer.serve(makeApp(lookup, options))
      yield* Effect.logInfo("listening").pipe(
        Effect.annotateLogs({
          listener: "http",
          address: where,
          token: options.token !== undefined ? "required" : "none",
          ...(l._tag === "Unix" ? { mode: "0" + (options.mode ?? 0o660).toString(8) } : {})
        })
      )
    })
  )
