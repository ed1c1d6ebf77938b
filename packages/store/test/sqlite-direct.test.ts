// The daemon's own better-sqlite3 connection for groups of first logins on SQLite (SqliteDirect.ts,
// RouteStore `groupReads` + `assignMany`), through the daemon's composition (routing table kept by
// the change feed, move holds and placement weights from the store):
// - used only where it can be (the daemon's `sqliteLocks: "retry"` on a file; not read-only, not
//   `:memory:`, not the CLI's `block`), and every store still routes first logins;
// - a lock held by another process (a child process's `BEGIN IMMEDIATE` in WAL, its `BEGIN
//   EXCLUSIVE` in the rollback journal, which blocks reads too) makes the group wait, then every
//   member fails with a store error (temp_fail) at the query timeout; nothing is stored; once the
//   lock is released the same users are routed and the stored rows are the answers.
import { describe, expect, it } from "@effect/vitest"
import { Router, RouteCache, RouteStore, RouteTable, StoreError } from "@doveroute/routing"
import { Admin, ChangeFeed, Operations, parseStoreUrl, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import Database from "better-sqlite3"
import { Context, Effect, Exit, Layer, Logger, LogLevel } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { seed, tableReady } from "./first-login-fixtures.js"

const QUERY_TIMEOUT_MS = 1000

const daemonLayer = (file: string) =>
  Router.layerCached({ strategy: "mapping", downPolicy: "keep" }).pipe(
    Layer.provideMerge(
      Layer.merge(
        RouteTable.layer({ refresh: "100 millis", maxStale: 0, keepChanges: 100_000 }).pipe(
          Layer.provide(ChangeFeed.layer("mapping", `${QUERY_TIMEOUT_MS} millis`))
        ),
        RouteCache.disabled
      )
    ),
    Layer.provide(Layer.mergeAll(
      Operations.placementInfoLayer(`${QUERY_TIMEOUT_MS} millis`),
      Operations.routeHoldsLayer(`${QUERY_TIMEOUT_MS} millis`)
    )),
    Layer.provideMerge(storeLayer({
      url: parseStoreUrl(`sqlite:${file}`),
      strategy: "mapping",
      queryTimeout: `${QUERY_TIMEOUT_MS} millis`,
      sqliteLocks: "retry"
    }))
  )

const tmpFile = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "dvr-direct-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => path.join(dir, "r.db")))



const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`)

/** Every row of `user_backend`, read by a connection of the test: user → backend ids. */
const storedRows = (file: string) => {
  const db = new Database(file, { fileMustExist: true })
  try {
    const m = new Map<string, Array<number>>()
    for (const r of db.prepare(`SELECT "user" AS u, backend_id AS b FROM user_backend`).all() as Array<{ u: string; b: number }>) {
      m.set(r.u, [...(m.get(r.u) ?? []), r.b])
    }
    return m
  } finally {
    db.close()
  }
}

/**
 * Another process holding a lock on the file (`begin`: `BEGIN IMMEDIATE` or `BEGIN EXCLUSIVE`)
 * until `release`.
 */
const lockingProcess = (file: string, begin: string) =>
  Effect.acquireRelease(
    Effect.async<{ child: ChildProcess; release: () => Promise<void> }, Error>((resume) => {
      const driver = createRequire(import.meta.url).resolve("better-sqlite3")
      const script = `
        const Database = require(${JSON.stringify(driver)})
        const db = new Database(${JSON.stringify(file)}, { fileMustExist: true, timeout: 5000 })
        db.exec(${JSON.stringify(begin)})
        process.stdout.write("locked\\n")
        process.stdin.once("data", () => { db.exec("COMMIT"); db.close(); process.stdout.write("released\\n") })
        process.stdin.once("end", () => process.exit(0))`
      const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] })
      let out = ""
      let released: (() => void) | undefined
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString()
        if (out.includes("released")) released?.()
      })
      const onLocked = () => {
        if (!out.includes("locked")) return
        child.stdout!.off("data", onLocked)
        resume(Effect.succeed({
          child,
          release: () =>
            new Promise<void>((done) => {
              released = done
              child.stdin!.write("commit\n")
            })
        }))
      }
      child.stdout!.on("data", onLocked)
      child.once("exit", (code) => resume(Effect.fail(new Error(`locking process exited (${code}) before it had the lock`))))
    }),
    ({ child }) => Effect.sync(() => {
      child.stdin!.end()
      child.kill()
    })
  )

describe("SQLite first logins through the daemon's own connection", () => {
  it.scopedLive("only the daemon's store on a writable file gets the combined read; first logins work on every kind", () =>
    Effect.gen(function*() {
      const file = yield* tmpFile
      const opened: Array<[string, boolean]> = []
      for (
        const [name, options] of [
          ["daemon (retry)", { url: parseStoreUrl(`sqlite:${file}`), sqliteLocks: "retry" as const }],
          ["CLI (block)", { url: parseStoreUrl(`sqlite:${file}`) }],
          ["read-only", { url: parseStoreUrl(`sqlite:${file}`), readOnly: true, sqliteLocks: "retry" as const }],
          [":memory:", { url: parseStoreUrl("sqlite::memory:"), sqliteLocks: "retry" as const }]
        ] as const
      ) {
        yield* Effect.scoped(Effect.gen(function*() {
          const ctx = yield* Layer.build(Router.layer({ strategy: "mapping", downPolicy: "keep" }).pipe(
            Layer.provideMerge(storeLayer({ strategy: "mapping", ...options }))
          ))
          const store = Context.get(ctx, RouteStore)
          opened.push([name, store.groupReads !== undefined])
          if (name === "read-only") return
          if ((yield* Effect.provide(Admin.listBackends, ctx)).length === 0) yield* Effect.provide(seed, ctx)
          const router = Context.get(ctx, Router)
          const names = users(`k${opened.length}-`, 30)
          const routes = yield* Effect.all(names.map((u) => router.route(u)), { concurrency: "unbounded" })
          expect(routes.every((r) => r.backend.state === 0 && r.source === "assigned")).toBe(true)
          expect(router.firstLoginGroups()!.largest).toBeGreaterThan(1)
          const sql = Context.get(ctx, SqlClient.SqlClient)
          const rows = yield* sql<{ u: string; b: number }>`SELECT ${sql("user")} AS u, backend_id AS b FROM user_backend`
          const stored = new Map(rows.map((r) => [r.u, Number(r.b)]))
          for (const r of routes) expect(stored.get(r.user)).toBe(r.backend.id)
        }))
      }
      expect(opened).toEqual([["daemon (retry)", true], ["CLI (block)", false], ["read-only", false], [":memory:", false]])
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))

  for (const [journal, begin] of [["wal", "BEGIN IMMEDIATE"], ["delete", "BEGIN EXCLUSIVE"]] as const) {
    it.scopedLive(
      `journal ${journal}, another process's ${begin}: a group waits, fails with a store error at the query timeout, stores nothing; after the lock the same users are routed`,
      () =>
        Effect.gen(function*() {
          const file = yield* tmpFile
          // create and migrate the store, then put it in the journal mode of the case
          yield* Effect.scoped(Effect.flatMap(Layer.build(storeLayer({ url: parseStoreUrl(`sqlite:${file}`), strategy: "mapping" })), (ctx) =>
            Effect.provide(seed, ctx)))
          const raw = new Database(file)
          expect(String(raw.pragma(`journal_mode = ${journal}`, { simple: true }))).toBe(journal)
          raw.close()

          const d = yield* Layer.build(daemonLayer(file))
          expect(Context.get(d, RouteStore).groupReads, "the daemon's own connection is used").toBeDefined()
          yield* Effect.provide(tableReady, d)
          const router = Context.get(d, Router)
          const known = yield* router.route("known-before")

          const lock = yield* lockingProcess(file, begin)
          const names = users("locked", 20)
          const t0 = Date.now()
          // the event loop keeps turning while the group waits for the lock (no wait inside SQLite)
          let ticks = 0
          const ticker = setInterval(() => ticks++, 10)
          const during = yield* Effect.all(
            names.map((u) => Effect.map(Effect.exit(router.route(u)), (exit) => ({ exit, ms: Date.now() - t0 }))),
            { concurrency: "unbounded" }
          )
          clearInterval(ticker)
          for (const { exit, ms } of during) {
            expect(Exit.isFailure(exit), "no backend while the store is locked").toBe(true)
            if (Exit.isFailure(exit)) expect(exit.cause._tag === "Fail" ? exit.cause.error : exit.cause).toBeInstanceOf(StoreError)
            expect(ms).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50)
            expect(ms).toBeLessThan(QUERY_TIMEOUT_MS + 2000)
          }
          expect(ticks, "timers ran during the wait").toBeGreaterThan(QUERY_TIMEOUT_MS / 10 / 3)
          // a user mapped before the lock is answered from memory meanwhile
          expect(router.cached("known-before")?.backend.id).toBe(known.backend.id)
          // the group's retries end with the query timeout; then the lock goes
          yield* Effect.sleep(`${QUERY_TIMEOUT_MS + 300} millis`)
          yield* Effect.promise(() => lock.release())
          const afterLock = storedRows(file)
          expect(names.filter((u) => afterLock.has(u)), "nothing stored for the failed logins").toEqual([])

          const routes = yield* Effect.all(names.map((u) => router.route(u)), { concurrency: "unbounded" })
          const stored = storedRows(file)
          for (const r of routes) {
            expect(r.backend.state).toBe(0)
            expect(stored.get(r.user), `${r.user}: the OK names the stored row`).toEqual([r.backend.id])
          }
          expect(stored.size).toBe(names.length + 1)
          expect(router.firstLoginGroups()!.groups).toBeGreaterThan(0)
        }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)),
      30_000
    )
  }
})
