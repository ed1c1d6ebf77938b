// How a listener's socket file appears (SocketFile.ts), over real UNIX sockets: never at its path
// before it has its final mode; overlapping listener starts leave the process umask as it was; the
// staging name is not left behind; a path too long for a staging name still works.
import { describe, expect, it } from "@effect/vitest"
import { DictServer, Lookup, SocketFile } from "@doveroute/frontends"
import { parseExtraField } from "@doveroute/routing"
import { Effect, Layer, Logger } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { scriptedLookup, scopedTmp } from "./helpers.js"

const quiet = <A, E, R>(eff: Effect.Effect<A, E, R>) => eff.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))

const dict = (sock: string, mode: number) =>
  DictServer.layer({ path: sock, mode, proxyFlag: "proxy", extraFields: [parseExtraField("nopassword")] }).pipe(
    Layer.provide(Layer.succeed(Lookup, scriptedLookup().service))
  )

describe("SocketFile", () => {
  it.scopedLive("the socket is never seen at its path with another mode than the configured one", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const socks = Array.from({ length: 6 }, (_, i) => path.join(dir, `s${i}.sock`))
      const seen = new Map<string, Set<string>>()
      let watching = true
      // poll every path as fast as the event loop allows while the listeners start
      const watcher = (async () => {
        while (watching) {
          for (const s of socks) {
            try {
              const m = (fs.statSync(s).mode & 0o777).toString(8)
              seen.set(s, (seen.get(s) ?? new Set()).add(m))
            } catch {
              // not there yet
            }
          }
          await new Promise((r) => setImmediate(r))
        }
      })()
      const umaskBefore = process.umask()
      // concurrent starts: the umask holders overlap
      yield* quiet(Layer.build(Layer.mergeAll(...socks.map((s, i) => dict(s, i % 2 === 0 ? 0o660 : 0o666)) as [Layer.Layer<never, unknown>])))
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
      watching = false
      yield* Effect.promise(() => watcher)
      expect(process.umask(), "umask restored after overlapping starts").toBe(umaskBefore)
      socks.forEach((s, i) => {
        expect((fs.statSync(s).mode & 0o777).toString(8), s).toBe(i % 2 === 0 ? "660" : "666")
        expect([...(seen.get(s) ?? [])], `modes observed at ${s}`).toEqual([i % 2 === 0 ? "660" : "666"])
      })
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".new")), "staging files left").toEqual([])
    }))

  it("a path too long for a staging name is bound directly", () => {
    const dir = "/tmp/" + "d".repeat(60)
    const p = path.join(dir, "x".repeat(107 - dir.length - 1))
    expect(Buffer.byteLength(p)).toBe(SocketFile.MAX_SOCKET_PATH_BYTES)
    expect(SocketFile.stagingPath(p)).toBe(p)
    expect(SocketFile.stagingPath("/run/doveroute/auth.sock")).toBe(`/run/doveroute/.auth.sock.${process.pid}.new`)
  })

  it("holdRestrictiveUmask: set by the first holder, restored by the last, idempotent release", () => {
    const before = process.umask()
    const a = SocketFile.holdRestrictiveUmask()
    const b = SocketFile.holdRestrictiveUmask()
    expect(process.umask()).toBe(0o177)
    a()
    a()
    expect(process.umask(), "still held by b").toBe(0o177)
    b()
    expect(process.umask()).toBe(before)
  })
})
