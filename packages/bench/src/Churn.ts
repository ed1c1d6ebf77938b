/**
 * `--churn`: what a live site does while logins run, applied to both sides of a run.
 *
 * - Health checks: one IMAP greeting server per bench backend (`127.0.0.2`, `127.0.0.3`, one port),
 *   and doveroute checks them every second (`health.interval = 1 second`). Nothing changes state,
 *   so a check must cost the logins nothing. (The Lua director has no health checker.)
 * - Admin moves: one `doveroute user move --no-wait` per second, of users outside the measured
 *   pool (`churn000000`…, mapped before the runs), alternating between the two backends. The Lua
 *   passdb reads the row at every login; doveroute sees the move through its change feed.
 *
 * Moves that fail are counted and reported; they never count as throughput on either side.
 *
 * @since 0.2.0
 */
import * as net from "node:net"
import { doverouteCli } from "./Servers.js"

/** The users the mover moves (mapped with the warm pool, never asked by the load). */
export const churnUsers = (n: number): Array<string> => Array.from({ length: n }, (_, i) => `churn${String(i).padStart(6, "0")}`)

/** IMAP greeting servers on each host at one port: greeting, then `OK` to every tagged line. */
export async function startImapBanners(hosts: ReadonlyArray<string>): Promise<{ readonly port: number; readonly checks: () => number; readonly close: () => Promise<void> }> {
  let checks = 0
  const sockets = new Set<net.Socket>()
  const make = () =>
    net.createServer((s) => {
      checks++
      sockets.add(s)
      s.on("close", () => sockets.delete(s))
      s.on("error", () => undefined)
      s.write("* OK [CAPABILITY IMAP4rev1] bench backend ready\r\n")
      let buf = ""
      s.on("data", (d) => {
        buf += d.toString("latin1")
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const tag = buf.slice(0, i).split(" ")[0] ?? "*"
          buf = buf.slice(i + 1)
          s.write(`* BYE bench\r\n${tag} OK done\r\n`)
          s.end()
        }
      })
    })
  const servers: Array<net.Server> = []
  // one port free on every host: the first host picks it, the others take the same
  const first = make()
  await new Promise<void>((resolve, reject) => {
    first.once("error", reject)
    first.listen(0, hosts[0], () => resolve())
  })
  servers.push(first)
  const port = (first.address() as net.AddressInfo).port
  for (const h of hosts.slice(1)) {
    const srv = make()
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject)
      srv.listen(port, h, () => resolve())
    })
    servers.push(srv)
  }
  return {
    port,
    checks: () => checks,
    close: async () => {
      for (const s of sockets) s.destroy()
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    }
  }
}

/** What the mover did. */
export interface MoveStats {
  readonly moves: number
  readonly failed: number
  readonly firstError?: string
}

/**
 * Moves one of `users` per `everyMs` with `doveroute user move --no-wait`, to the other host each
 * time, until stopped. One move at a time (a slow move delays the next, never overlaps it).
 */
export function startMover(store: string, users: ReadonlyArray<string>, hosts: ReadonlyArray<string>, everyMs = 1000): { readonly stop: () => Promise<MoveStats> } {
  let moves = 0
  let failed = 0
  let firstError: string | undefined
  let stopped = false
  let i = 0
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now()
      const user = users[i % users.length]!
      const host = hosts[(Math.floor(i / users.length) + i) % hosts.length]!
      i++
      try {
        await doverouteCli(["user", "move", "--store", store, "--no-wait", user, host], 30_000)
        moves++
      } catch (e) {
        failed++
        firstError ??= e instanceof Error ? e.message.split("\n").slice(0, 3).join(" ") : String(e)
      }
      const rest = everyMs - (Date.now() - started)
      if (rest > 0 && !stopped) await new Promise((r) => setTimeout(r, rest))
    }
  })()
  return {
    stop: async () => {
      stopped = true
      await loop
      return { moves, failed, ...(firstError !== undefined ? { firstError } : {}) }
    }
  }
}
