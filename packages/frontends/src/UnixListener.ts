/**
 * A UNIX-socket listener whose lifecycle is an Effect scope and whose per-connection hot path is
 * plain code (effect-stack.md §4): Effect owns listen, permissions, shutdown and errors; each
 * connection gets a {@link ConnectionHandler} fed raw chunks, which writes replies straight to the
 * `net.Socket`.
 *
 * - A stale socket file (left by a crash) is removed when nothing answers on it; a live one makes
 *   start-up fail with reason `InUse` (another instance runs).
 * - The socket file gets the configured mode (default 0660), owner and group.
 * - Closing the scope stops accepting, lets each connection finish its in-flight requests for up
 *   to `drainTimeout`, closes the connections and removes the socket file.
 *
 * @since 0.1.0
 */
import { Data, Deferred, Duration, Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"

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

export interface ListenOptions extends SocketPermissions {
  readonly path: string
  /** Short name for logs (`dict`, `auth`, `login-relay`, …). */
  readonly name: string
  /** Max concurrent connections (default 10 000); more are refused by closing them at once. */
  readonly maxConnections?: number
  /** How long shutdown waits for in-flight requests (default 5 s). */
  readonly drainTimeout?: Duration.DurationInput
}

const lookupId = (kind: "passwd" | "group", name: string | number | undefined): number | undefined => {
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

const prepareSocketPath = (path: string) =>
  Effect.gen(function*() {
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
 * Listen on a UNIX socket for the lifetime of the current scope.
 * `makeHandler` is called once per accepted connection.
 */
export const listen = (options: ListenOptions, makeHandler: (socket: net.Socket) => ConnectionHandler) =>
  Effect.gen(function*() {
    const { path } = options
    yield* prepareSocketPath(path)
    const mode = options.mode ?? 0o660
    let uid: number | undefined
    let gid: number | undefined
    try {
      uid = lookupId("passwd", options.owner)
      gid = lookupId("group", options.group)
    } catch (e) {
      return yield* new ListenerError({ reason: "Permissions", path, detail: (e as Error).message })
    }

    const connections = new Map<net.Socket, ConnectionHandler>()
    const failed = yield* Deferred.make<never, ListenerError>()
    const server = net.createServer({ pauseOnConnect: false }, (socket) => {
      if (connections.size >= (options.maxConnections ?? 10_000)) {
        socket.destroy()
        return
      }
      let handler: ConnectionHandler
      try {
        handler = makeHandler(socket)
      } catch {
        socket.destroy()
        return
      }
      connections.set(socket, handler)
      socket.on("data", (chunk: Buffer) => {
        try {
          handler.onData(chunk)
        } catch {
          socket.destroy()
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
    server.on("error", (cause) =>
      Deferred.unsafeDone(failed, Exit.fail(new ListenerError({ reason: "Open", path, detail: cause.message }))))

    // socket created with a restrictive umask, then chmod: never briefly world-writable
    const oldUmask = process.umask(0o177)
    yield* Effect.async<void, ListenerError>((resume) => {
      server.once("error", (cause) =>
        resume(Effect.fail(new ListenerError({ reason: "Open", path, detail: cause.message }))))
      server.listen({ path }, () => resume(Effect.void))
    }).pipe(Effect.ensuring(Effect.sync(() => process.umask(oldUmask))))

    const ino = fs.statSync(path).ino
    yield* Effect.try({
      try: () => {
        if (uid !== undefined || gid !== undefined) fs.chownSync(path, uid ?? -1, gid ?? -1)
        fs.chmodSync(path, mode)
      },
      catch: (e) => new ListenerError({ reason: "Permissions", path, detail: (e as Error).message })
    }).pipe(Effect.tapError(() => Effect.sync(() => server.close())))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        server.close()
        const deadline = Date.now() + Duration.toMillis(Duration.decode(options.drainTimeout ?? "5 seconds"))
        while (Date.now() < deadline) {
          let busy = 0
          for (const h of connections.values()) busy += h.inFlight?.() ?? 0
          if (busy === 0) break
          yield* Effect.sleep("10 millis")
        }
        for (const s of connections.keys()) s.destroy()
        try {
          if (fs.statSync(path).ino === ino) fs.unlinkSync(path)
        } catch {
          // already gone
        }
        yield* Effect.logInfo("listener closed").pipe(Effect.annotateLogs({ listener: options.name, socket: path }))
      })
    )
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
