/**
 * Dict proxy server for Dovecot 2.3 `passdb driver=dict` (and any dict client, e.g. 2.4
 * `doveadm dict get`).
 *
 * Keys served (after Dovecot's `shared/` prefix):
 * - `shared/passdb/<user>` — `key = passdb/%u` in `dict.conf.ext`;
 * - `shared/route/<protocol>/<user>` — `key = route/%s/%u` (per-protocol keys).
 * The value is the passdb reply as the JSON object Dovecot's `format = json` expects, e.g.
 * `{"proxy_maybe":"y","host":"backend1.test","hostip":"127.0.0.2","nopassword":"y"}`.
 * Other keys get `N`. A routing failure gets `F<reason>` (Dovecot: internal failure → `temp_fail`).
 *
 * Replies go out in request order (dict protocol rule), pipelined or one connection per lookup.
 * A line over 64 KiB, a bad hello or an unsupported command closes that connection only.
 *
 * @since 0.1.0
 */
import { Dict, LineSplitter } from "@doveroute/protocol"
import { type ExtraField, type ProxyFlag, replyFields } from "@doveroute/routing"
import { Effect, Layer } from "effect"
import type * as net from "node:net"
import { Lookup, type LookupService } from "./Lookup.js"
import { listen, type SocketPermissions } from "./UnixListener.js"

/** Dict server settings. */
export interface DictServerOptions extends SocketPermissions {
  readonly path: string
  readonly proxyFlag: ProxyFlag
  readonly extraFields: ReadonlyArray<ExtraField>
  readonly maxConnections?: number
}

/** The user a dict key asks for, or `undefined` for keys doveroute does not serve. */
export const userFromKey = (key: string): string | undefined => {
  if (key.startsWith("shared/passdb/")) {
    const user = key.slice("shared/passdb/".length)
    return user.length > 0 ? user : undefined
  }
  if (key.startsWith("shared/route/")) {
    const rest = key.slice("shared/route/".length)
    const slash = rest.indexOf("/")
    if (slash <= 0) return undefined
    const user = rest.slice(slash + 1)
    return user.length > 0 ? user : undefined
  }
  return undefined
}

/** One dict client connection: framing, in-order replies. */
export class DictConnection {
  private readonly splitter = new LineSplitter(Dict.DICT_MAX_LINE)
  private readonly queue: Array<{ reply: string | undefined }> = []
  private helloSeen = false
  private closed = false

  constructor(
    private readonly socket: net.Socket,
    private readonly lookup: LookupService,
    private readonly options: DictServerOptions
  ) {}

  inFlight = (): number => this.queue.length

  onClose = (): void => {
    this.closed = true
  }

  onData = (chunk: Buffer): void => {
    this.splitter.push(chunk, this.onLine)
  }

  private fail(_why: string): void {
    this.closed = true
    this.socket.destroy()
  }

  private onLine = (line: string): void => {
    if (this.closed) return
    const req = Dict.decodeRequest(line)
    switch (req._tag) {
      case "Hello":
        if (!Dict.SUPPORTED_MAJORS.has(req.major)) return this.fail(`unsupported dict protocol major ${req.major}`)
        this.helloSeen = true
        return
      case "Lookup": {
        if (!this.helloSeen) return this.fail("lookup before hello")
        const slot: { reply: string | undefined } = { reply: undefined }
        this.queue.push(slot)
        const user = userFromKey(req.key)
        if (user === undefined) {
          slot.reply = Dict.encodeNotFound()
          return this.flush()
        }
        this.lookup.lookup(user, "dict").then((res) => {
          slot.reply = res._tag === "Routed"
            ? Dict.encodeFound(Dict.encodePassdbJson(replyFields(res.route.backend, this.options.proxyFlag, this.options.extraFields)))
            : Dict.encodeFailure(`doveroute: ${res.reason}`)
          this.flush()
        })
        return
      }
      case "Unsupported":
        return this.fail(`unsupported dict command ${JSON.stringify(req.command)}`)
      case "Invalid":
        return this.fail(req.reason)
    }
  }

  private flush(): void {
    let out = ""
    while (this.queue.length > 0 && this.queue[0]!.reply !== undefined) out += this.queue.shift()!.reply
    if (out.length > 0 && !this.closed) this.socket.write(out)
  }
}

/** The dict listener as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const layer = (options: DictServerOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const lookup = yield* Lookup
      yield* listen(
        { ...options, name: "dict" },
        (socket) => new DictConnection(socket, lookup, options)
      )
    })
  )
