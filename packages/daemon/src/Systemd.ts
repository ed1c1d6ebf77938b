/**
 * systemd integration: `sd_notify` datagrams (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`,
 * `MAINPID=…`) to `$NOTIFY_SOCKET` for `Type=notify`, through the optional native `unix-dgram`
 * addon (Node's own `dgram` has no UNIX datagram sockets). Without `$NOTIFY_SOCKET` nothing is sent; when
 * the addon cannot be loaded, or the socket is abstract (`@…`, not supported by the addon), one
 * warning is logged and the daemon runs on (use `Type=exec` then).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { createRequire } from "node:module"

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void
  close(): void
  on(event: "error", cb: (e: Error) => void): void
}
interface UnixDgram {
  createSocket(type: "unix_dgram"): DgramSocket
}

let addon: UnixDgram | string | undefined

const loadAddon = (): UnixDgram | string => {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)("unix-dgram") as UnixDgram
    } catch (e) {
      addon = `the optional unix-dgram addon cannot be loaded (${(e as Error).message.split("\n")[0]})`
    }
  }
  return addon
}

let warned = false

/**
 * Send one notification (`KEY=VALUE` lines) to `socketPath` (default `$NOTIFY_SOCKET`); succeeds
 * with false when not sent (no socket configured, addon missing: logged once).
 */
export const notify = (fields: Readonly<Record<string, string | number>>, socketPath: string | undefined = process.env["NOTIFY_SOCKET"]) =>
  Effect.gen(function*() {
    if (socketPath === undefined || socketPath === "") return false
    const warnOnce = (why: string) =>
      warned ? Effect.void : Effect.sync(() => { warned = true }).pipe(
        Effect.zipRight(Effect.logWarning("cannot notify systemd; use Type=exec instead of Type=notify").pipe(Effect.annotateLogs({ detail: why, notify_socket: socketPath })))
      )
    if (socketPath.startsWith("@")) {
      yield* warnOnce("abstract NOTIFY_SOCKET is not supported")
      return false
    }
    const lib = loadAddon()
    if (typeof lib === "string") {
      yield* warnOnce(lib)
      return false
    }
    const msg = Buffer.from(Object.entries(fields).map(([k, v]) => `${k}=${v}`).join("\n"))
    const err = yield* Effect.async<Error | undefined>((resume) => {
      try {
        const sock = lib.createSocket("unix_dgram")
        sock.on("error", (e) => resume(Effect.succeed(e)))
        sock.send(msg, 0, msg.length, socketPath, (e?: Error) => {
          sock.close()
          resume(Effect.succeed(e ?? undefined))
        })
      } catch (e) {
        resume(Effect.succeed(e as Error))
      }
    })
    if (err !== undefined) {
      yield* Effect.logWarning("systemd notification failed").pipe(Effect.annotateLogs({ detail: err.message, notify_socket: socketPath }))
      return false
    }
    return true
  })
