/**
 * The SQLite journal mode: doveroute leaves it as the scripts' tools expect (SQLite's default
 * rollback journal, `delete`) unless the operator asks for WAL with `doveroute migrate --journal
 * wal`. A WAL database cannot be opened by a process that may not create files in its directory
 * (SQLite needs `-wal`/`-shm` beside it), so the Lua passdb of a rollback would fail on a file
 * doveroute had switched silently.
 *
 * - {@link setJournal}: the explicit, reversible step (`wal` or `delete`), recorded in
 *   `doveroute_meta` (`sqlite_journal_wal` = 1 while WAL was chosen).
 * - {@link settleJournal} (every `migrate`, so every `serve` start): a store doveroute has just
 *   created (no `backends` table before the migrations: no Lua passdb has ever used it) is put in
 *   WAL and the choice recorded, as if `--journal wal` had been run: first assignments commit
 *   without a rollback-journal fsync each. A file in WAL that nobody chose (earlier doveroute
 *   versions switched every file) goes back to `delete`; when another process has the file open
 *   that is not possible, and a warning says so.
 *
 * PostgreSQL and MySQL: no-ops.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { isSqliteBusy } from "./Classify.js"
import { SchemaError } from "./SchemaError.js"
import { META_TABLE } from "./Operations.js"
import { tableColumns } from "./Schema.js"

/** The journal modes an operator can choose. */
export type JournalChoice = "wal" | "delete"

/** The `doveroute_meta` row that records an operator's choice of WAL. */
export const WAL_CHOSEN = "sqlite_journal_wal"

const isSqlite = Effect.map(SqlClient.SqlClient, (sql) => sql.onDialectOrElse({ sqlite: () => true, orElse: () => false }))

/** The current journal mode (`delete`, `wal`, `truncate`, …); `null` on PostgreSQL/MySQL. */
export const journalMode = Effect.gen(function*() {
  if (!(yield* isSqlite)) return null
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql.unsafe<{ journal_mode: string }>("PRAGMA journal_mode")
  return String(rows[0]?.journal_mode ?? "").toLowerCase()
})

/** Ask SQLite for `mode`; the mode it then has (the old one when it could not switch: `SQLITE_BUSY`). */
const switchTo = (mode: JournalChoice) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ journal_mode: string }>(`PRAGMA journal_mode = ${mode === "wal" ? "WAL" : "DELETE"}`).pipe(
      Effect.map((rows) => String(rows[0]?.journal_mode ?? "").toLowerCase()),
      Effect.catchIf(isSqliteBusy, () => Effect.map(journalMode, (m) => m ?? ""))
    ))

const walChosen = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* tableColumns(META_TABLE)).length === 0) return false
  const rows = yield* sql<{ value: number | string }>`SELECT value FROM ${sql(META_TABLE)} WHERE name = ${WAL_CHOSEN}`
  return Number(rows[0]?.value ?? 0) === 1
})

const recordChoice = (wal: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DELETE FROM ${sql(META_TABLE)} WHERE name = ${WAL_CHOSEN}`
    if (wal) yield* sql`INSERT INTO ${sql(META_TABLE)} (name, value) VALUES (${WAL_CHOSEN}, 1)`
  })

/**
 * Switch a SQLite store to `mode` and record the choice (run after the migrations, which create
 * `doveroute_meta`). Fails with `SchemaError` (`Journal`) on PostgreSQL/MySQL, and when SQLite
 * cannot switch (leaving WAL needs every other process to close the file: stop the daemons and
 * Dovecot's auth workers first). Returns the mode before and after.
 */
export const setJournal = (mode: JournalChoice) =>
  Effect.gen(function*() {
    const before = yield* journalMode
    if (before === null) {
      return yield* new SchemaError({ reason: "Journal", detail: "--journal applies to SQLite stores only" })
    }
    const after = yield* switchTo(mode)
    if (after !== mode) {
      return yield* new SchemaError({
        reason: "Journal",
        detail: `SQLite kept journal mode ${after} instead of ${mode}: another process has the file open ` +
          `(stop the doveroute daemons and Dovecot's auth workers using it), then run "doveroute migrate --journal ${mode}" again`
      })
    }
    yield* recordChoice(mode === "wal")
    return { before, after }
  })

/**
 * `created`: the migrations just created the store's tables: WAL, recorded as chosen (a warning
 * when SQLite cannot switch). Otherwise a SQLite file in WAL that no operator chose with
 * {@link setJournal} goes back to `delete`, logged; when SQLite cannot switch now (another process
 * has the file open) a warning says so and nothing fails. No-op elsewhere.
 */
export const settleJournal = (created: boolean) => Effect.gen(function*() {
  const mode = yield* journalMode
  if (mode === null) return
  if (created) {
    const set = yield* Effect.either(setJournal("wal"))
    if (set._tag === "Right") {
      yield* Effect.logInfo("new SQLite store: journal mode wal (before a rollback to the Lua passdb: \"doveroute migrate --journal delete\")")
    } else {
      yield* Effect.logWarning(`new SQLite store left in journal mode ${mode}: ${set.left.message}`)
    }
    return
  }
  if (mode !== "wal" || (yield* walChosen)) return
  const after = yield* switchTo("delete")
  if (after === "delete") {
    yield* Effect.logInfo("SQLite journal mode set back from wal to delete (doveroute no longer uses WAL unless \"doveroute migrate --journal wal\" chose it)")
  } else {
    yield* Effect.logWarning(
      "SQLite file is in WAL mode, which a process that cannot create files in its directory (Dovecot's Lua passdb after a rollback) cannot open; " +
        "switching back failed because another process has it open: stop the others and run \"doveroute migrate --journal delete\""
    )
  }
})
