/**
 * A UNIX-socket listener whose lifecycle is an Effect scope and whose per-connection hot path is
 * plain code: Effect owns listen, permissions, shutdown and errors; each
 * connection gets a {@link ConnectionHandler} fed raw chunks, which writes replies straight to the
 * `net.Socket`.
 *
 * - A stale socket file (left by a crash) is removed when nothing answers on it; a live one makes
 *   start-up fail with reason `InUse` (another instance runs).
 * - The socket file gets the configured mode (default 0660), owner and group before it appears at
 *   its path ({@link publishSocket}).
 * - Limits ({@link ConnectionLimits}, docs/operations.md): at most `maxConnections` clients (more are
 *   closed at once, with a rate-limited warning); an unfinished line older than `lineTimeout`
 *   closes the connection (slow-loris); optionally an idle timeout. A client that does not read
 *   its replies stops being read from until it does (no unbounded write buffers).
 * - Closing the scope stops accepting, lets each connection finish its in-flight requests for up
 *   to `drainTimeout`, closes the connections and removes the socket file.
 *
 * @since 0.1.0
 */
import { Data, Deferred, Duration, Effect, Exit, type Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as ListenerCounts from "./ListenerCounts.js"
import { runtimeLog } from "./ListenerLog.js"
import { checkSocketDirectory, holdRestrictiveUmask, MAX_SOCKET_PATH_BYTES, publishSocket, stagingPath } from "./SocketFile.js"

/** Why a listener could not start. */
export class ListenerError extends Data.TaggedError("ListenerError")<{
  readonly reason: "InUse" | "NotASocket" | "Open" | "Permissions"
  readonly path: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/** What a listener does with one connection. All methods are called synchronously from socket events. */
export interface ConnectionHandler {
  /** A chunk of bytes arrived. Throwing closes this connection only. */
  readonly onData: (chunk: Buffer) => void
  /** The connection closed (either side). */
  readonly onClose?: () => void
  /** Requests still being answered (used to drain on shutdown). */
  readonly inFlight?: () => number
}

/** Socket file settings, as Dovecot's `unix_listener { mode user group }`. */
export interface SocketPermissions {
  /** File mode, e.g. 0o660 (default). */
  readonly mode?: number
  /** Owner: user name or uid. */
  readonly owner?: string | number | undefined
  /** Group: group name or gid. */
  readonly group?: string | number | undefined
}

/** Default per-listener connection limit (settings: `max_clients`). */
export const DEFAULT_MAX_CONNECTIONS = 10_000
/** Default per-connection limit of requests doveroute works on at once (`max_requests_per_client`). */
export const DEFAULT_MAX_REQUESTS = 1000
/** Default time an unfinished line may stay unfinished (`line_timeout`). */
export const DEFAULT_LINE_TIMEOUT: Duration.Duration = Duration.seconds(30)

/** Per-listener limits (settings `max_clients`, `max_requests_per_client`, `line_timeout`, `idle_timeout`). */
export interface ConnectionLimits {
  /** Max concurrent connections (default {@link DEFAULT_MAX_CONNECTIONS}); more are closed at once. */
  readonly maxConnections?: number | undefined
  /**
   * Max requests doveroute works on at once for one connection (default {@link DEFAULT_MAX_REQUESTS}).
   * Enforced by each front-end (dict and relays stop reading; the auth server answers temp_fail).
   */
  readonly maxRequests?: number | undefined
  /** An unfinished line older than this closes the connection; 0 = off. Default {@link DEFAULT_LINE_TIMEOUT}. */
  readonly lineTimeout?: Duration.DurationInput | undefined
  /** A connection with nothing in flight that sent nothing for this long is closed; 0 = off (default). */
  readonly idleTimeout?: Duration.DurationInput | undefined
}

export interface ListenOptions extends SocketPermissions, ConnectionLimits {
  readonly path: string
  /** Short name for logs (`dict`, `auth`, `login-relay`, …). */
  readonly name: string
  /** How long shutdown waits for in-flight requests (default 5 s). */
  readonly drainTimeout?: Duration.DurationInput
}

/**
 * Read flow control of one connection: the socket is paused while any hold is active (one per
 * reason: `write` = the client does not read its replies, `requests` = too many in flight, …).
 */
export class Flow {
  private readonly holds = new Set<string>()
  constructor(private readonly socket: net.Socket) {}

  hold(reason: string): void {
    if (this.holds.has(reason)) return
    this.holds.add(reason)
    if (this.holds.size === 1) this.socket.pause()
  }

  release(reason: string): void {
    if (!this.holds.delete(reason)) return
    if (this.holds.size === 0 && !this.socket.destroyed) this.socket.resume()
  }

  has(reason: string): boolean {
    return this.holds.has(reason)
  }

  get held(): boolean {
    return this.holds.size > 0
  }
}

/** A duration setting in ms; 0 (or less) means off. */
const millis = (d: Duration.DurationInput | undefined, fallback: Duration.Duration): number =>
  Math.max(0, Duration.toMillis(Duration.decode(d ?? fallback)))

interface ConnState {
  readonly handler: ConnectionHandler
  readonly flow: Flow
  /** When the current unfinished line started (0: none). */
  partialSince: number
  lastData: number
}

/** A user or group name (or numeric id) as a numeric id; throws for an unknown name. */
export const lookupId = (kind: "passwd" | "group", name: string | number | undefined): number | undefined => {
  if (name === undefined) return undefined
  if (typeof name === "number") return name
  if (/^\d+$/.test(name)) return Number(name)
  const file = fs.readFileSync(kind === "passwd" ? "/etc/passwd" : "/etc/group", "utf8")
  for (const line of file.split("\n")) {
    const parts = line.split(":")
    if (parts[0] === name && parts[2] !== undefined) return Number(parts[2])
  }
  throw new Error(`unknown ${kind === "passwd" ? "user" : "group"} ${name}`)
}

/** The soft open-file limit of this process (Linux `/proc/self/limits`), or undefined. */
export const openFileLimit = (): number | undefined => {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))
    return m === null || m[1] === "unlimited" ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}

/** Connect to `path`: true when something accepts (a live server), false on ECONNREFUSED/ENOENT. */
const probe = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect({ path })
    c.once("connect", () => {
      c.destroy()
      resolve(true)
    })
    c.once("error", () => resolve(false))
  })

/**
 * Before listening on `path`: fail when it is too long for a UNIX socket, live or not a socket;
 * remove a stale socket file.
 */
export const prepareSocketPath = (path: string) =>
  Effect.gen(function*() {
    const bytes = Buffer.byteLength(path)
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      return yield* new ListenerError({
        reason: "Open",
        path,
        detail: `socket path is ${bytes} bytes long; UNIX sockets allow at most ${MAX_SOCKET_PATH_BYTES}`
      })
    }
    let st: fs.Stats | undefined
    try {
      st = fs.lstatSync(path)
    } catch {
      return
    }
    if (!st.isSocket()) {
      return yield* new ListenerError({ reason: "NotASocket", path, detail: "exists and is not a socket; refusing to replace it" })
    }
    const live = yield* Effect.promise(() => probe(path))
    if (live) {
      return yield* new ListenerError({ reason: "InUse", path, detail: "another process is listening on this socket" })
    }
    yield* Effect.logInfo("removing stale socket file").pipe(Effect.annotateLogs("socket", path))
    fs.unlinkSync(path)
  })

/**
 * Publish the socket bound at `staging` at `path` with its permissions ({@link publishSocket}).
 * When `path` appeared meanwhile (another daemon starting at the same moment): live = `InUse`,
 * stale = removed and published again. Returns the published inode.
 */
export const publishListenerSocket = (
  staging: string,
  path: string,
  perms: { readonly mode: number; readonly uid: number | undefined; readonly gid: number | undefined }
): Effect.Effect<number, ListenerError> =>
  Effect.gen(function*() {
    for (let attempt = 0;; attempt++) {
      const r = yield* Effect.try({
        try: () => publishSocket(staging, path, perms),
        catch: (e) => new ListenerError({ reason: "Permissions", path, detail: (e as Error).message })
      })
      if (r !== "exists") return r
      if (attempt > 0) return yield* new ListenerError({ reason: "InUse", path, detail: "another process created this socket while we started" })
      yield* prepareSocketPath(path)
    }
  })

/**
 * A listener's UNIX socket file for the lifetime of the current scope, the steps shared by every
 * listener (SocketFile.ts): check the path ({@link prepareSocketPath}), resolve owner and group,
 * run `bind(bindPath)` under the restrictive umask at the staging name, publish the socket with its
 * mode (default 0660), owner and group ({@link publishListenerSocket}), and on scope close remove
 * the file if it is still the one published. Returns what `bind` returned.
 */
export const socketFile = <A, E, R>(
  path: string,
  perms: SocketPermissions,
  bind: (bindPath: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | ListenerError, R | Scope.Scope> =>
  Effect.gen(function*() {
    yield* Effect.try({
      try: () => checkSocketDirectory(path),
      catch: (e) => new ListenerError({ reason: "Permissions", path, detail: (e as Error).message })
    })
    yield* prepareSocketPath(path)
    let uid: number | undefined
    let gid: number | undefined
    try {
      uid = lookupId("passwd", perms.owner)
      gid = lookupId("group", perms.group)
    } catch (e) {
      return yield* new ListenerError({ reason: "Permissions", path, detail: (e as Error).message })
    }
    // bind + publish as the uninterruptible acquire step: a SIGINT/SIGTERM arriving while the
    // socket is being created waits for it, so the file is always covered by the finalizer
    const { bound } = yield* Effect.acquireRelease(
      Effect.gen(function*() {
        const staging = stagingPath(path)
        const releaseUmask = holdRestrictiveUmask()
        const bound = yield* bind(staging).pipe(Effect.ensuring(Effect.sync(releaseUmask)))
        const ino = yield* publishListenerSocket(staging, path, { mode: perms.mode ?? 0o660, uid, gid })
        return { bound, ino }
      }),
      ({ ino }) =>
        Effect.sync(() => {
          try {
            if (fs.statSync(path).ino === ino) fs.unlinkSync(path)
          } catch {
            // already gone
          }
        })
    )
    return bound
  })

/**
 * Listen on a UNIX socket for the lifetime of the current scope.
 * `makeHandler` is called once per accepted connection.
 */
export const listen = (options: ListenOptions, makeHandler: (socket: net.Socket, flow: Flow) => ConnectionHandler) =>
  Effect.gen(function*() {
    const { path } = options
    const mode = options.mode ?? 0o660

    const log = yield* runtimeLog(options.name)
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    const lineMs = millis(options.lineTimeout, DEFAULT_LINE_TIMEOUT)
    const idleMs = millis(options.idleTimeout, Duration.zero)
    const connections = new Map<net.Socket, ConnState>()
    const failed = yield* Deferred.make<never, ListenerError>()
    let refused = 0
    let lastRefusalLog = 0
    const server = net.createServer({ pauseOnConnect: false }, (socket) => {
      if (connections.size >= maxConnections) {
        socket.on("error", () => {})
        socket.destroy()
        refused++
        const now = Date.now()
        if (now - lastRefusalLog >= 10_000) {
          log("Warning", "connection limit reached; closing new connections at once", { max_clients: maxConnections, refused })
          lastRefusalLog = now
          refused = 0
        }
        return
      }
      const flow = new Flow(socket)
      let handler: ConnectionHandler
      try {
        handler = makeHandler(socket, flow)
      } catch {
        socket.destroy()
        return
      }
      const st: ConnState = { handler, flow, partialSince: 0, lastData: Date.now() }
      connections.set(socket, st)
      socket.on("data", (chunk: Buffer) => {
        const now = Date.now()
        st.lastData = now
        const lastLf = chunk.lastIndexOf(10)
        if (lastLf === chunk.length - 1) st.partialSince = 0
        else if (lastLf !== -1 || st.partialSince === 0) st.partialSince = now
        try {
          handler.onData(chunk)
        } catch {
          socket.destroy()
          return
        }
        // the client does not read its replies: stop reading its requests until it does
        if (socket.writableNeedDrain && !socket.destroyed && !flow.has("write")) {
          flow.hold("write")
          socket.once("drain", () => flow.release("write"))
        }
      })
      socket.on("error", () => socket.destroy())
      socket.on("close", () => {
        connections.delete(socket)
        try {
          handler.onClose?.()
        } catch {
          // a handler bug must not take the listener down
        }
      })
    })
    let lastAcceptErrorLog = 0
    server.on("error", (cause: NodeJS.ErrnoException) => {
      // out of file descriptors: libuv closes the pending connections and the server goes on
      if (cause.code === "EMFILE" || cause.code === "ENFILE") {
        const now = Date.now()
        if (now - lastAcceptErrorLog >= 10_000) {
          lastAcceptErrorLog = now
          log("Warning", "out of file descriptors: new connections are being closed (raise the open-file limit)", { code: cause.code })
        }
        return
      }
      Deferred.unsafeDone(failed, Exit.fail(new ListenerError({ reason: "Open", path, detail: cause.message })))
    })

    // bound 0600 at a staging name, then published with its permissions (SocketFile)
    yield* socketFile(path, { mode, owner: options.owner, group: options.group }, (bindPath) =>
      Effect.async<void, ListenerError>((resume) => {
        server.once("error", (cause) =>
          resume(Effect.fail(new ListenerError({ reason: "Open", path, detail: cause.message }))))
        // a deep accept queue: login processes connect in bursts (the kernel caps it at somaxconn)
        server.listen({ path: bindPath, backlog: 4096 }, () => resume(Effect.void))
      })).pipe(Effect.tapError(() => Effect.sync(() => server.close())))

    // slow-loris and idle connections; skipped when the event loop was late (data may be unread)
    const period = Math.min(5000, Math.max(50, Math.min(...[lineMs, idleMs].filter((ms) => ms > 0)) / 4))
    let lastSweep = Date.now()
    const sweeper = lineMs > 0 || idleMs > 0
      ? setInterval(() => {
        const now = Date.now()
        const late = now - lastSweep > period * 3
        lastSweep = now
        if (late) return
        let slow = 0
        let idle = 0
        for (const [socket, st] of connections) {
          if (st.flow.held) continue
          if (lineMs > 0 && st.partialSince > 0 && now - st.partialSince > lineMs) {
            slow++
            socket.destroy()
          } else if (idleMs > 0 && now - st.lastData > idleMs && (st.handler.inFlight?.() ?? 0) === 0) {
            idle++
            socket.destroy()
          }
        }
        if (slow > 0) log("Info", "closed connections with a line unfinished for too long", { count: slow, line_timeout_ms: lineMs })
        if (idle > 0) log("Debug", "closed idle connections", { count: idle, idle_timeout_ms: idleMs })
      }, period)
      : undefined
    sweeper?.unref()
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sweeper)))
    // open connections for the metrics scrape: read from the map above, nothing per request
    const unregister = ListenerCounts.register(options.name, () => connections.size)
    yield* Effect.addFinalizer(() => Effect.sync(unregister))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        server.close()
        const deadline = Date.now() + Duration.toMillis(Duration.decode(options.drainTimeout ?? "5 seconds"))
        while (Date.now() < deadline) {
          let busy = 0
          for (const c of connections.values()) busy += c.handler.inFlight?.() ?? 0
          if (busy === 0) break
          yield* Effect.sleep("10 millis")
        }
        for (const s of connections.keys()) s.destroy()
        yield* Effect.logInfo("listener closed").pipe(Effect.annotateLogs({ listener: options.name, socket: path }))
      })
    )
    // past the open-file limit the kernel refuses accept() and libuv closes the waiting connections
    const nofile = openFileLimit()
    if (nofile !== undefined && nofile < maxConnections + 64) {
      yield* Effect.logWarning("the open-file limit is below max_clients: connections past it will be closed").pipe(
        Effect.annotateLogs({ listener: options.name, open_file_limit: nofile, max_clients: maxConnections })
      )
    }
    yield* Effect.logInfo("listening").pipe(
      Effect.annotateLogs({ listener: options.name, socket: path, mode: "0" + mode.toString(8), host: os.hostname() })
    )
    return {
      path,
      connections: () => connections.size,
      /** Fails when the server reports an error after start. */
      failed: Deferred.await(failed)
    }
  })
