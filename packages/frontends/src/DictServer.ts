/**
 * Dict proxy server for Dovecot 2.3 `passdb driver=dict` (and any dict client, e.g. 2.4
 * `doveadm dict get`).
 *
 * Keys served (after Dovecot's `shared/` prefix):
 * - `shared/passdb/<user>` — `key = passdb/%u` in `dict.conf.ext`;
 * - `shared/route/<protocol>/<user>` — `key = route/%s/%u` (per-protocol keys);
 * - `shared/tag/<tag>/<user>` — `key = tag/%{passdb:director_tag}/%u`: the user with the tag an
 *   earlier passdb gave (`director_tag`), used when the user is placed (routing's Tags.ts); an
 *   empty tag (`shared/tag//<user>`, no `director_tag`) is none. A tag that is not a tag name
 *   gets `F` (never routed without it). The key is split at its last `/` (a tag has none): a
 *   `director_tag` with a `/` is a malformed tag (`F`), and a user name with a `/` cannot be asked
 *   for with this key (`F`; Dovecot's default `auth_username_chars` has no `/`).
 * The value is the passdb reply as the JSON object Dovecot's `format = json` expects, e.g.
 * `{"proxy_maybe":"y","host":"backend1.test","hostip":"127.0.0.2","nopassword":"y"}`.
 * Other keys get `N`. A routing failure gets `F<reason>` (Dovecot: internal failure → `temp_fail`).
 *
 * Replies go out in request order (dict protocol rule), pipelined or one connection per lookup.
 * A line over 64 KiB, a bad hello or an unsupported command closes that connection only.
 * A lookup whose key or username field holds a control character (after tab-unescaping) or is not
 * valid UTF-8 (it arrives with U+FFFD in it) gets `F` naming the field, and is never routed: a
 * guessed name would be routed as another user.
 * At most `maxRequests` lookups per connection are worked on at once; beyond that the connection
 * is not read from (its lines wait, in order) until replies went out: backpressure, never an error.
 *
 * @since 0.1.0
 */
import { Dict, FieldCheck, LineSplitter } from "@doveroute/protocol"
import { type ExtraField, type ProxyFlag, validTag } from "@doveroute/routing"
import { passdbFields } from "./Destination.js"
import { Effect, Layer } from "effect"
import type * as net from "node:net"
import { Lookup, type LookupResult, type LookupService } from "./Lookup.js"
import { ReplyBatch } from "./ReplyBatch.js"
import { type ConnectionLimits, DEFAULT_MAX_REQUESTS, type Flow, listen, type SocketPermissions } from "./UnixListener.js"

/** Dict server settings. */
export interface DictServerOptions extends SocketPermissions, ConnectionLimits {
  readonly path: string
  readonly proxyFlag: ProxyFlag
  readonly extraFields: ReadonlyArray<ExtraField>
}

/** The user (and the tag, for `shared/tag/…`) a dict key asks for, or `undefined` for keys doveroute does not serve. */
export const requestFromKey = (key: string): { readonly user: string; readonly tag?: string } | undefined => {
  if (key.startsWith("shared/tag/")) {
    // split at the last `/`: a tag has none, so `tag/a/b/alice` (a director_tag `a/b`) is the
    // malformed tag `a/b` (answered F), never user `b/alice` in tag `a` (another user's row)
    const rest = key.slice("shared/tag/".length)
    const slash = rest.lastIndexOf("/")
    if (slash < 0) return undefined
    const user = rest.slice(slash + 1)
    return user.length > 0 ? { user, tag: rest.slice(0, slash) } : undefined
  }
  const user = userFromKey(key)
  return user === undefined ? undefined : { user }
}

/** The user a `passdb/` or `route/` dict key asks for, or `undefined` for other keys. */
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
  /** Lines received while `maxRequests` lookups were in flight, in order. */
  private readonly backlog: Array<string> = []
  private readonly maxRequests: number
  private helloSeen = false
  private closed = false
  private flushing = false
  /** Replies made while a socket read is handled, written together at its end. */
  private readonly replies = new ReplyBatch((text) => {
    if (!this.closed) this.socket.write(text)
  })

  constructor(
    private readonly socket: net.Socket,
    private readonly lookup: LookupService,
    private readonly options: DictServerOptions,
    private readonly flow?: Flow
  ) {
    this.maxRequests = Math.max(1, options.maxRequests ?? DEFAULT_MAX_REQUESTS)
  }

  inFlight = (): number => this.queue.length + this.backlog.length

  onClose = (): void => {
    this.closed = true
    this.backlog.length = 0
  }

  onData = (chunk: Buffer): void => {
    this.replies.begin()
    try {
      this.splitter.push(chunk, this.onLine)
    } finally {
      this.replies.end()
    }
  }

  private fail(_why: string): void {
    // the replies this socket read already made go out first (the client asked before the bad line)
    this.replies.flush()
    this.closed = true
    this.backlog.length = 0
    this.socket.destroy()
  }

  private onLine = (line: string): void => {
    if (this.closed) return
    if (this.backlog.length > 0 || this.queue.length >= this.maxRequests) {
      this.backlog.push(line)
      this.flow?.hold("requests")
      return
    }
    this.handleLine(line)
  }

  private handleLine(line: string): void {
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
        const bad = FieldCheck.firstBadField([["key", req.key], ["username", req.username]])
        if (bad !== undefined) {
          slot.reply = Dict.encodeFailure(`doveroute: invalid request: ${FieldCheck.describeBadField(bad)}`)
          return this.flush()
        }
        const asked = requestFromKey(req.key)
        if (asked === undefined) {
          slot.reply = Dict.encodeNotFound()
          return this.flush()
        }
        if (asked.tag !== undefined && asked.tag !== "" && !validTag(asked.tag)) {
          slot.reply = Dict.encodeFailure("doveroute: invalid request: tag")
          return this.flush()
        }
        const answer = (res: LookupResult): void => {
          slot.reply = res._tag === "Routed"
            ? Dict.encodeFound(Dict.encodePassdbJson(passdbFields(res.route.backend, this.options.proxyFlag, this.options.extraFields)))
            : Dict.encodeFailure(`doveroute: ${res.reason}`)
        }
        // a route from memory is answered within this socket read
        const now = this.lookup.cached?.(asked.user, "dict", asked.tag)
        if (now !== undefined) {
          answer(now)
          return this.flush()
        }
        this.lookup.lookup(asked.user, "dict", asked.tag).then(answer).catch(() => {
          slot.reply = Dict.encodeFailure("doveroute: internal error")
        }).finally(() => this.flush()).catch(() => this.fail("internal error while answering"))
        return
      }
      case "Unsupported":
        return this.fail(`unsupported dict command ${JSON.stringify(req.command)}`)
      case "Invalid":
        return this.fail(req.reason)
    }
  }

  /** Write the replies that are ready, in order; then take waiting lines while below the limit. */
  private flush(): void {
    if (this.flushing) return
    this.flushing = true
    try {
      for (;;) {
        let out = ""
        while (this.queue.length > 0 && this.queue[0]!.reply !== undefined) out += this.queue.shift()!.reply
        if (out.length > 0 && !this.closed && !this.replies.add(out)) this.socket.write(out)
        if (this.closed || this.backlog.length === 0 || this.queue.length >= this.maxRequests) break
        while (!this.closed && this.backlog.length > 0 && this.queue.length < this.maxRequests) this.handleLine(this.backlog.shift()!)
        // loop: write what the taken lines answered at once, take more if there is room
      }
    } finally {
      this.flushing = false
    }
    if (this.closed) this.backlog.length = 0
    if (this.backlog.length === 0) this.flow?.release("requests")
  }
}

/** The dict listener as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const layer = (options: DictServerOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const lookup = yield* Lookup
      yield* listen(
        { ...options, name: "dict" },
        (socket, flow) => new DictConnection(socket, lookup, options, flow)
      )
    })
  )
