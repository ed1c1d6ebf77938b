import { describe, expect, it } from "@effect/vitest"
import { DictServer, Lookup, UnixListener } from "@doveroute/frontends"
import { parseExtraField, Router } from "@doveroute/routing"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import Database from "better-sqlite3"
import { type Duration, Effect, Exit, Layer, Scope } from "effect"
import * as fs from "node:fs"
import type * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { LineClient, scriptedLookup } from "./helpers.js"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "dvr-fe-"))

/** Start a dict server on a real SQLite file; returns the socket path; stops with the scope. */
const startDict = (dir: string, opts: { readonly queryTimeout?: Duration.DurationInput; readonly strategy?: "mapping" | "shard" } = {}) =>
  Effect.gen(function*() {
    const file = path.join(dir, "routes.db")
    const sock = path.join(dir, "dict.sock")
    const strategy = opts.strategy ?? "mapping"
    // as the daemon: lock waits are retried without blocking, up to the query timeout
    const store = storeLayer({ url: parseStoreUrl(`sqlite:${file}`), strategy, queryTimeout: opts.queryTimeout ?? "5 seconds", sqliteLocks: "retry" })
    const app = DictServer.layer({
      path: sock,
      mode: 0o600,
      proxyFlag: strategy === "shard" ? "proxy" : "proxy_maybe",
      extraFields: [parseExtraField("nopassword")]
    }).pipe(
      Layer.provideMerge(Lookup.layer),
      Layer.provideMerge(Router.layer({ strategy, downPolicy: "keep" })),
      Layer.provideMerge(store)
    )
    const ctx = yield* Layer.build(app)
    yield* Effect.provide(
      Effect.gen(function*() {
        yield* Admin.addBackend({ hostname: "backend1.test", hostip: "127.0.0.2" })
        yield* Admin.addBackend({ hostname: "127.0.0.3", hostip: null })
      }),
      ctx
    )
    return { sock, file, ctx }
  })

const HELLO = "H3\t2\t0\t\tdirector\n"

describe("dict server over a real UNIX socket and a real SQLite file", () => {
  it.scopedLive("a tag key with a slash too many (director_tag a/b) is F and writes no row; tag//user is untagged", () =>
    Effect.gen(function*() {
      const { sock, file } = yield* startDict(tmp())
      const c = yield* Effect.promise(() => LineClient.connect(sock))
      c.send(HELLO + "Lshared/tag/a/b/alice\talice\nLshared/tag//b/alice\tb/alice\nLshared/tag//carol\tcarol\n")
      const lines = yield* Effect.promise(() => c.waitLines(3))
      expect(lines[0]).toMatch(/^Fdoveroute: invalid request: tag/)
      expect(lines[1]).toMatch(/^Fdoveroute: invalid request: tag/)
      expect(lines[2]![0]).toBe("O")
      const db = new Database(file, { readonly: true })
      const users = db.prepare("SELECT user FROM user_backend ORDER BY user").all().map((r) => (r as { user: string }).user)
      db.close()
      expect(users).toEqual(["carol"])
    }))

  it.scopedLive("answers pipelined lookups in order; unknown keys get N; the JSON has the passdb fields", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict(tmp())
      expect((fs.statSync(sock).mode & 0o777).toString(8)).toBe("600")
      const c = yield* Effect.promise(() => LineClient.connect(sock))
      c.send(HELLO + "Lshared/passdb/alice\talice\nLshared/nothing/x\t\nLshared/route/imap/alice\talice\nLshared/passdb/bob\tbob\n")
      const lines = yield* Effect.promise(() => c.waitLines(4))
      expect(lines).toHaveLength(4)
      const alice = JSON.parse(lines[0]!.slice(1))
      expect(lines[0]![0]).toBe("O")
      expect(alice.proxy_maybe).toBe("y")
      expect(alice.nopassword).toBe("y")
      expect(["backend1.test", "127.0.0.3"]).toContain(alice.host)
      if (alice.host === "backend1.test") expect(alice.hostip).toBe("127.0.0.2")
      else expect(alice.hostip).toBeUndefined()
      expect(lines[1]).toBe("N")
      expect(lines[2]).toBe(lines[0]) // same user, same route, same fields
      expect(lines[3]![0]).toBe("O")
      c.close()
    }))

  it.scopedLive("one connection per lookup (Dovecot's default idle_msecs=0) gives the same answer each time", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict(tmp())
      const answers: Array<string> = []
      for (let i = 0; i < 5; i++) {
        const c = yield* Effect.promise(() => LineClient.connect(sock))
        c.send(HELLO + "Lshared/passdb/carol\tcarol\n")
        answers.push((yield* Effect.promise(() => c.waitLines(1)))[0]!)
        c.close()
      }
      expect(new Set(answers).size).toBe(1)
      expect(answers[0]![0]).toBe("O")
    }))

  it.scopedLive("a malformed line, a line over 64 KiB or a lookup before hello closes only that connection", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict(tmp())
      const good = yield* Effect.promise(() => LineClient.connect(sock))
      good.send(HELLO)
      for (const bad of ["X\n", "Lshared/passdb/x\tx\n", HELLO + "L\n", HELLO + "Lshared/passdb/" + "a".repeat(70_000) + "\tx\n", "H99\t0\t0\t\td\n"]) {
        const c = yield* Effect.promise(() => LineClient.connect(sock))
        c.send(bad)
        expect(yield* Effect.promise(() => c.waitClosed(3000))).toBe(true)
        expect(c.lines).toEqual([])
      }
      good.send("Lshared/passdb/dave\tdave\n")
      const [line] = yield* Effect.promise(() => good.waitLines(1))
      expect(line![0]).toBe("O")
      expect(good.closed).toBe(false)
      good.close()
    }))

  it.scopedLive("a UTF-8 name split between two writes is routed whole; shard strategy answers proxy", () =>
    Effect.gen(function*() {
      const { sock } = yield* startDict(tmp(), { strategy: "shard" })
      const c = yield* Effect.promise(() => LineClient.connect(sock))
      const bytes = Buffer.from(HELLO + "Lshared/passdb/jörg\tjörg\n", "utf8")
      const cut = bytes.indexOf(0xc3) + 1
      c.socket.write(bytes.subarray(0, cut))
      yield* Effect.sleep("20 millis")
      c.socket.write(bytes.subarray(cut))
      const [line] = yield* Effect.promise(() => c.waitLines(1))
      expect(JSON.parse(line!.slice(1)).proxy).toBe("y")
      c.close()
    }))

  it.scopedLive("store trouble answers F (temp_fail) and serving resumes when it is fixed", () =>
    Effect.gen(function*() {
      const { sock, file } = yield* startDict(tmp(), { queryTimeout: "300 millis" })
      const ask = (user: string) =>
        Effect.promise(async () => {
          const c = await LineClient.connect(sock)
          c.send(HELLO + `Lshared/passdb/${user}\t${user}\n`)
          const [l] = await c.waitLines(1)
          c.close()
          return l!
        })
      expect((yield* ask("erin"))[0]).toBe("O")
      // 1. the table disappears under the daemon (an operator's mistake)
      const other = new Database(file)
      other.exec("ALTER TABLE backends RENAME TO backends_gone")
      const broken = yield* ask("erin")
      expect(broken[0]).toBe("F")
      other.exec("ALTER TABLE backends_gone RENAME TO backends")
      expect((yield* ask("erin"))[0]).toBe("O")
      // 2. another process holds the write lock: a first login cannot be stored → F, never a random backend
      other.exec("BEGIN EXCLUSIVE")
      const locked = yield* ask("frank")
      expect(locked[0]).toBe("F")
      other.exec("COMMIT")
      const after = yield* ask("frank")
      expect(after[0]).toBe("O")
      const rows = other.prepare(`SELECT backend_id FROM user_backend WHERE "user" = 'frank'`).all()
      expect(rows).toHaveLength(1)
      other.close()
    }))

  it.scopedLive("a stale socket file is replaced; a live one makes start-up fail with InUse", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const first = yield* startDict(dir)
      const scope = yield* Scope.make()
      const second = yield* UnixListener.listen({ path: first.sock, name: "dup" }, () => ({ onData: () => {} })).pipe(
        Scope.extend(scope),
        Effect.exit
      )
      expect(Exit.isFailure(second)).toBe(true)
      expect(String(second)).toContain("InUse")
      // a socket file nobody listens on: its server process was killed with SIGKILL
      const stale = path.join(dir, "stale.sock")
      const { spawn } = yield* Effect.promise(() => import("node:child_process"))
      const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(stale)}, () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.async<void>((resume) => { child.stdout!.once("data", () => resume(Effect.void)) })
      child.kill("SIGKILL")
      yield* Effect.async<void>((resume) => { child.once("exit", () => resume(Effect.void)) })
      expect(fs.existsSync(stale)).toBe(true)
      const ok = yield* UnixListener.listen({ path: stale, name: "stale" }, () => ({ onData: () => {} })).pipe(Scope.extend(scope), Effect.exit)
      expect(Exit.isSuccess(ok)).toBe(true)
      yield* Scope.close(scope, Exit.void)
      expect(fs.existsSync(stale)).toBe(false)
    }))
})

describe("dict connection: replies made within one socket read", () => {
  it("a bad line after lookups answered in the same read: those answers still go out, in order, before the close", () => {
    const written: Array<string> = []
    let destroyed = false
    const socket = {
      write: (data: string) => {
        if (destroyed) throw new Error("write after destroy")
        written.push(data)
        return true
      },
      destroy: () => {
        destroyed = true
      },
      get destroyed() {
        return destroyed
      }
    } as unknown as net.Socket
    const lookup = scriptedLookup({}, undefined, { fromMemory: true })
    const conn = new DictServer.DictConnection(socket, lookup.service, { path: "", proxyFlag: "proxy", extraFields: [] })
    conn.onData(Buffer.from(HELLO + "Lshared/passdb/alice\talice\nLshared/nothing/x\t\nXbogus\nLshared/passdb/bob\tbob\n"))
    expect(destroyed).toBe(true)
    const lines = written.join("").split("\n").filter((l) => l.length > 0)
    expect(lines).toHaveLength(2)
    expect(JSON.parse(lines[0]!.slice(1))).toMatchObject({ proxy: "y", host: "backend1.test", hostip: "127.0.0.2" })
    expect(lines[1]).toBe("N")
    expect(lookup.calls.map((c) => c.user)).toEqual(["alice"])
  })
})
