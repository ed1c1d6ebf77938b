// How a listener's socket file appears (SocketFile.ts), over real UNIX sockets: never at its path
// before it has its final mode; overlapping listener starts leave the process umask as it was; the
// staging name is not left behind; a path too long for a staging name still works.
import { describe, expect, it } from "@effect/vitest"
import { DictServer, Lookup, SocketFile, UnixListener } from "@doveroute/frontends"
import { parseExtraField } from "@doveroute/routing"
import { Effect, Layer, Logger } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
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

  it.scopedLive("a directory others may write to without the sticky bit (0777) is refused; a sticky 1777 one is fine", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const open = path.join(dir, "open")
      fs.mkdirSync(open)
      fs.chmodSync(open, 0o777)
      const sock = path.join(open, "dict.sock")
      const start = () => Effect.scoped(quiet(Layer.build(dict(sock, 0o660))))
      const r = yield* Effect.exit(start())
      expect(r._tag).toBe("Failure")
      expect(String(r)).toContain(`refusing to create a socket in ${open}: other users can write to that directory (mode 0777) and it has no sticky bit`)
      expect(fs.readdirSync(open)).toEqual([])
      fs.chmodSync(open, 0o775)
      expect(String(yield* Effect.exit(start()))).toMatch(/mode 0775/)
      fs.chmodSync(open, 0o1777)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* quiet(Layer.build(dict(sock, 0o660)))
        expect(fs.lstatSync(sock).isSocket()).toBe(true)
      }))
      fs.chmodSync(open, 0o755)
      yield* start()
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

  const listenAt = (p: string) =>
    Effect.acquireRelease(
      Effect.promise(() => new Promise<net.Server>((resolve) => {
        const srv = net.createServer((c) => {
          c.on("error", () => {})
          c.end("hello\n")
        })
        srv.listen(p, () => resolve(srv))
      })),
      (srv) => Effect.promise(() => new Promise<void>((resolve) => srv.close(() => resolve())))
    )
  const greeting = (p: string) =>
    Effect.promise(() => new Promise<string>((resolve) => {
      const c = net.connect(p)
      let got = ""
      c.on("data", (d) => (got += d.toString()))
      c.on("close", () => resolve(got))
      c.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`))
    }))
  const PERMS = { mode: 0o660, uid: undefined, gid: undefined }
  /** A socket file nobody listens on: a process bound it and was killed (SIGKILL leaves the file). */
  const staleSocketAt = (p: string) => {
    try {
      execFileSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, "SIGKILL"))`])
    } catch {
      // killed, as intended
    }
    if (!fs.lstatSync(p).isSocket()) throw new Error(`no stale socket at ${p}`)
  }

  it.scopedLive("publish never replaces a live socket that appeared meanwhile (two daemons starting at once): InUse", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const final = path.join(dir, "dict.sock")
      const staging = SocketFile.stagingPath(final)
      yield* listenAt(staging)
      yield* listenAt(final) // the other daemon, first to publish
      const inoBefore = fs.statSync(final).ino
      const err = yield* Effect.flip(UnixListener.publishListenerSocket(staging, final, PERMS))
      expect(err.reason).toBe("InUse")
      expect(fs.statSync(final).ino, "the other daemon's socket is untouched").toBe(inoBefore)
      expect(yield* greeting(final)).toBe("hello\n")
    }))

  it.scopedLive("publish replaces a stale socket file that appeared meanwhile, and the staging name is gone", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const final = path.join(dir, "dict.sock")
      const staging = SocketFile.stagingPath(final)
      yield* listenAt(staging)
      staleSocketAt(final) // a crashed process's socket file
      const staleIno = fs.statSync(final).ino
      const ino = yield* UnixListener.publishListenerSocket(staging, final, PERMS).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
      expect(ino).not.toBe(staleIno)
      expect(fs.statSync(final).ino).toBe(ino)
      expect(fs.existsSync(staging)).toBe(false)
      expect(yield* greeting(final)).toBe("hello\n")
    }))

  it.scopedLive("staging leftovers of processes that no longer run are removed; a running process's is kept", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const final = path.join(dir, "auth.sock")
      const dead = path.join(dir, ".auth.sock.999999999.new")
      const live = path.join(dir, `.auth.sock.${process.ppid}.new`)
      yield* listenAt(live)
      staleSocketAt(dead)
      SocketFile.stagingPath(final)
      expect(fs.existsSync(dead), "dead process's leftover").toBe(false)
      expect(fs.existsSync(live), "running process's staging socket").toBe(true)
    }))

  it.scopedLive("a socket path longer than UNIX sockets allow is refused with a clear message", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const long = path.join(dir, "x".repeat(120 - dir.length))
      const err = yield* Effect.flip(quiet(Layer.build(dict(long, 0o660))))
      expect(String((err as Error).message)).toMatch(/bytes long; UNIX sockets allow at most 107/)
      expect(fs.readdirSync(dir)).toEqual([])
    }))
})
