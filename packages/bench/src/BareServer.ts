/**
 * The limit: a bare `node:net` UNIX-socket server that answers every LF-terminated line with one
 * fixed reply, doing nothing else (no decoding, no parsing: it counts LF bytes per chunk).
 * Run it as its own process (`BareServerMain.ts`) so it does not share the generator's event loop.
 */
import * as fs from "node:fs"
import * as net from "node:net"

export interface BareServer {
  readonly path: string
  close(): Promise<void>
}

/** Listens on `path` (an existing file there is removed first); `reply` gets an LF appended if missing. */
export function startBareServer(path: string, reply: string): Promise<BareServer> {
  const line = reply.endsWith("\n") ? reply : reply + "\n"
  try {
    fs.unlinkSync(path)
  } catch {
    // not there
  }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("data", (chunk: Buffer) => {
      let n = 0
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++
      if (n > 0) socket.write(n === 1 ? line : line.repeat(n))
    })
    socket.on("error", () => socket.destroy())
    socket.on("close", () => sockets.delete(socket))
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen({ path }, () => {
      resolve({
        path,
        close: () =>
          new Promise<void>((res) => {
            for (const s of sockets) s.destroy()
            server.close(() => res())
          })
      })
    })
  })
}
