// Coexistence with (and rollback to) the published Lua director scripts, on SQLite, PostgreSQL
// and MariaDB:
// - a user_backend row naming a deleted backend counts as no row: the user is placed anew and the
//   row is replaced in one statement (never a second row), also when two stores race on it;
// - `migrate` (run by `serve` at start) accepts what the published scripts leave behind for such a
//   user (the dead row plus the live row they added): the dead row is removed and logged; two live
//   rows naming different backends are still refused, listing them, with nothing changed;
// - SQLite: doveroute leaves the journal mode as found; WAL only when chosen with
//   Journal.setJournal (`doveroute migrate --journal wal`); a file an earlier version left in WAL goes
//   back to `delete` at the next migrate; switching needs the other processes to close the file.
import { describe, expect, it } from "@effect/vitest"
import { Router, shardKey, type Strategy } from "@doveroute/routing"
import { Journal, Migrations, parseStoreUrl, SqlClientLayer, storeLayer } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import Database from "better-sqlite3"
import { Cause, Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { dropFileDatabaseAfterAll, KINDS, type StoreKind, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const clientLayer = (url: string) => SqlClientLayer.layer(parseStoreUrl(url))
const storeFor = (url: string, strategy: Strategy) =>
  Router.layer({ strategy, downPolicy: "keep" }).pipe(Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy })))

const q = (k: StoreKind) => (k === "mysql" ? "`user`" : `"user"`)
const exec = (url: string, statements: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.forEach(statements, (s) => sql.unsafe(s), { discard: true })).pipe(
    Effect.provide(clientLayer(url))
  )
const keyOf = (strategy: Strategy, user: string) => (strategy === "shard" ? shardKey(user) : user)
const keyCol = (kind: StoreKind, strategy: Strategy) => (strategy === "shard" ? "user_hash" : q(kind))
/** Rows as `key->backend`, sorted. */
const rows = (url: string, kind: StoreKind, strategy: Strategy) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ k: unknown; b: unknown }>(`SELECT ${keyCol(kind, strategy)} AS k, backend_id AS b FROM user_backend`)).pipe(
      Effect.map((rs) => rs.map((r) => `${String(r.k)}->${Number(r.b)}`).sort()),
      Effect.provide(clientLayer(url))
    )
const insertRow = (kind: StoreKind, strategy: Strategy, user: string, b: number) =>
  `INSERT INTO user_backend (backend_id, ${keyCol(kind, strategy)}) VALUES (${b}, ${strategy === "shard" ? shardKey(user) : `'${user}'`})`

/** The published scripts' documented tables: key (backend_id, user), so one user may have several rows. */
const documentedTables = (kind: StoreKind, strategy: Strategy) => [
  `CREATE TABLE backends (id INT NOT NULL PRIMARY KEY, hostname VARCHAR(255) NOT NULL, hostip VARCHAR(255), state SMALLINT NOT NULL DEFAULT 0)`,
  `CREATE TABLE user_backend (backend_id INT NOT NULL, ${keyCol(kind, strategy)} ${strategy === "shard" ? "INT NOT NULL" : "VARCHAR(255) NOT NULL"}, PRIMARY KEY (backend_id, ${keyCol(kind, strategy)}))`,
  `INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'backend1.test', '127.0.0.2', 0), (2, 'backend2.test', NULL, 0)`
]

/** Log lines (message + annotations) written while `eff` runs. */
const captureLogs = <A, E, R>(eff: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ annotations, logLevel, message }) => {
      lines.push(`${logLevel.label} ${String(message)} ${JSON.stringify(Object.fromEntries(annotations))}`)
    })
    const exit = yield* Effect.exit(eff.pipe(Logger.withMinimumLogLevel(LogLevel.Info), Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { exit, lines }
  })

const failure = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String((Option.getOrUndefined(Cause.failureOption(exit.cause)) as { message?: string } | undefined)?.message) : "(success)"

describe.concurrent.each(KINDS)("a row naming a deleted backend on %s", (kind) => {
  it.live.each(["mapping", "shard"] as const)("%s: the user is placed anew, the row replaced (one row), also with two stores racing", (strategy) =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* Migrations.migrate(strategy).pipe(Effect.provide(clientLayer(url)))
        yield* exec(url, [
          `INSERT INTO backends (id, hostname, hostip, state) VALUES (1, 'backend1.test', '127.0.0.2', 0), (2, 'backend2.test', NULL, 0)`,
          insertRow(kind, strategy, "ghost", 77),
          insertRow(kind, strategy, "racer", 78)
        ])
        const r = yield* Effect.flatMap(Router, (router) => router.route("ghost")).pipe(Effect.provide(storeFor(url, strategy)))
        expect(r.source).toBe("assigned")
        expect([1, 2]).toContain(r.backend.id)
        expect(yield* rows(url, kind, strategy)).toEqual(
          [`${keyOf(strategy, "ghost")}->${r.backend.id}`, `${keyOf(strategy, "racer")}->78`].sort()
        )
        // two daemons (separate pools) answer the dead row at once: both get the one row written
        const raced = yield* Effect.all(
          Array.from({ length: 4 }, () => Effect.flatMap(Router, (router) => router.route("racer")).pipe(Effect.provide(storeFor(url, strategy)))),
          { concurrency: "unbounded" }
        )
        const after = yield* rows(url, kind, strategy)
        const racerRows = after.filter((l) => l.startsWith(`${keyOf(strategy, "racer")}->`))
        expect(racerRows).toHaveLength(1)
        expect(raced.map((x) => `${keyOf(strategy, "racer")}->${x.backend.id}`)).toEqual(Array(4).fill(racerRows[0]))
      })))
})

describe.concurrent.each(KINDS)("migrate on what the published scripts leave on %s", (kind) => {
  it.live.each(["mapping", "shard"] as const)("%s: a dead row beside a live one is removed and logged; users with only dead rows are unmapped", (strategy) =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        // alice was on backend 9 (deleted by hand); the script placed her anew on 1 (second row).
        // bob's two rows both name deleted backends; carol is untouched.
        yield* exec(url, [
          ...documentedTables(kind, strategy),
          insertRow(kind, strategy, "alice", 9),
          insertRow(kind, strategy, "alice", 1),
          insertRow(kind, strategy, "bob", 8),
          insertRow(kind, strategy, "bob", 9),
          insertRow(kind, strategy, "carol", 2),
          insertRow(kind, strategy, "dave", 9)
        ])
        const { exit, lines } = yield* captureLogs(Migrations.migrate(strategy).pipe(Effect.provide(clientLayer(url))))
        expect(failure(exit)).toBe("(success)")
        const k = (u: string) => keyOf(strategy, u)
        // dave's single dead row stays: the next login replaces it
        expect(yield* rows(url, kind, strategy)).toEqual([`${k("alice")}->1`, `${k("carol")}->2`, `${k("dave")}->9`].sort())
        const warning = lines.find((l) => l.includes("removed rows naming deleted backends"))
        expect(warning, lines.join("\n")).toBeDefined()
        expect(warning).toContain(`"removed":3`)
        for (const r of [`${JSON.stringify(k("alice"))}->9`, `${JSON.stringify(k("bob"))}->8`, `${JSON.stringify(k("bob"))}->9`]) {
          expect(warning).toContain(JSON.stringify(r).slice(1, -1))
        }
        // the daemon's store starts on it; alice stays, bob and dave are placed anew
        const routes = yield* Effect.flatMap(Router, (router) => Effect.forEach(["alice", "bob", "dave"], (u) => router.route(u))).pipe(
          Effect.provide(storeFor(url, strategy))
        )
        expect(routes.map((r) => [r.backend.id === 1 || r.backend.id === 2, r.source])).toEqual([[true, "existing"], [true, "assigned"], [true, "assigned"]])
        expect(routes[0]!.backend.id).toBe(1)
        const final = yield* rows(url, kind, strategy)
        expect(final).toHaveLength(4)
        expect(final.filter((l) => /->(8|9)$/.test(l))).toEqual([])
      })))

  it.live("two live rows naming different backends are still refused, listing them, with nothing changed", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        yield* exec(url, [
          ...documentedTables(kind, "mapping"),
          insertRow(kind, "mapping", "alice", 1),
          insertRow(kind, "mapping", "alice", 2),
          insertRow(kind, "mapping", "alice", 9),
          insertRow(kind, "mapping", "bob", 9),
          insertRow(kind, "mapping", "bob", 1)
        ])
        const before = yield* rows(url, kind, "mapping")
        const exit = yield* Effect.exit(Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url))))
        const message = failure(exit)
        expect(message).toContain(`more than one row for 1 user(s): "alice" (backends 1, 2, 9 (deleted))`)
        expect(message).toContain("Nothing was changed")
        expect(yield* rows(url, kind, "mapping")).toEqual(before)
        const serve = yield* Effect.exit(Effect.provide(Effect.void, storeFor(url, "mapping")))
        expect(failure(serve)).toContain(`"alice" (backends 1, 2, 9 (deleted))`)
      })))
})

describe("SQLite journal mode", () => {
  const sqliteFile = (url: string) => url.slice("sqlite:".length)
  const modeOf = (file: string) => {
    const db = new Database(file, { readonly: true })
    try {
      return String(db.pragma("journal_mode", { simple: true }))
    } finally {
      db.close()
    }
  }

  it.live("a store doveroute creates is put in WAL (recorded as chosen); a Lua director's store keeps its journal through migrate and serve", () =>
    Effect.gen(function*() {
      yield* withDatabase("sqlite", (url) =>
        Effect.gen(function*() {
          const { lines } = yield* captureLogs(Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url))))
          expect(modeOf(sqliteFile(url))).toBe("wal")
          expect(lines.join("\n")).toContain("new SQLite store: journal mode wal")
          yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
          expect(modeOf(sqliteFile(url)), "the recorded choice survives the next migrate").toBe("wal")
        }))
      yield* withDatabase("sqlite", (url) =>
        Effect.gen(function*() {
          yield* exec(url, documentedTables("sqlite", "mapping"))
          yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
          expect(modeOf(sqliteFile(url))).toBe("delete")
          const r = yield* Effect.flatMap(Router, (router) => router.route("alice")).pipe(Effect.provide(storeFor(url, "mapping")))
          expect(r.source).toBe("assigned")
          expect(modeOf(sqliteFile(url))).toBe("delete")
        }))
    }))

  it.live("a file an earlier version left in WAL goes back to delete at the next migrate (logged); a chosen WAL is kept", () =>
    withDatabase("sqlite", (url) =>
      Effect.gen(function*() {
        const file = sqliteFile(url)
        // a Lua director's store (doveroute did not create it)
        yield* exec(url, documentedTables("sqlite", "mapping"))
        yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
        const old = new Database(file)
        old.pragma("journal_mode = WAL")
        old.close()
        expect(modeOf(file)).toBe("wal")
        const { exit, lines } = yield* captureLogs(Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url))))
        expect(failure(exit)).toBe("(success)")
        expect(modeOf(file)).toBe("delete")
        expect(lines.join("\n")).toContain("journal mode set back from wal to delete")

        // the operator's explicit step, and its reverse
        const set = yield* Journal.setJournal("wal").pipe(Effect.provide(clientLayer(url)))
        expect(set).toEqual({ before: "delete", after: "wal" })
        yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
        expect(modeOf(file), "a chosen WAL survives migrate").toBe("wal")
        yield* Journal.setJournal("delete").pipe(Effect.provide(clientLayer(url)))
        expect(modeOf(file)).toBe("delete")
        const old2 = new Database(file)
        old2.pragma("journal_mode = WAL")
        old2.close()
        yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
        expect(modeOf(file), "the choice was withdrawn with --journal delete").toBe("delete")
      })))

  it.live("leaving WAL while another process has the file open: setJournal fails saying so, migrate warns and succeeds", () =>
    withDatabase("sqlite", (url) =>
      Effect.gen(function*() {
        const file = sqliteFile(url)
        // a Lua director's store (doveroute did not create it)
        yield* exec(url, documentedTables("sqlite", "mapping"))
        yield* Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url)))
        const other = new Database(file)
        other.pragma("journal_mode = WAL")
        other.prepare("SELECT COUNT(*) FROM backends").get()
        try {
          const set = yield* Effect.exit(Journal.setJournal("delete").pipe(Effect.provide(clientLayer(url))))
          expect(failure(set)).toContain("another process has the file open")
          const { exit, lines } = yield* captureLogs(Migrations.migrate("mapping").pipe(Effect.provide(clientLayer(url))))
          expect(failure(exit)).toBe("(success)")
          expect(lines.join("\n")).toContain("doveroute migrate --journal delete")
          expect(modeOf(file)).toBe("wal")
        } finally {
          other.close()
        }
        yield* Journal.setJournal("delete").pipe(Effect.provide(clientLayer(url)))
        expect(modeOf(file)).toBe("delete")
      })))

  it.live.each(["postgres", "mysql"] as const)("%s: --journal is refused (SQLite only), journalMode is null", (kind) =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const out = yield* Effect.gen(function*() {
          yield* Migrations.migrate("mapping")
          return { mode: yield* Journal.journalMode, set: yield* Effect.exit(Journal.setJournal("wal")) }
        }).pipe(Effect.provide(clientLayer(url)))
        expect(out.mode).toBeNull()
        expect(failure(out.set)).toContain("SQLite stores only")
      })))
})
