/**
 * `doveroute migrate`: create or upgrade the tables, report duplicates.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Journal, Migrations, SqlClientLayer } from "@doveroute/store"
import { Console, Effect, Option } from "effect"
import { common, settingsFrom } from "../CommonOptions.js"

const journal = Options.choice("journal", ["wal", "delete"] as const).pipe(
  Options.optional,
  Options.withDescription(
    "SQLite only: switch the file's journal mode (wal: readers never wait, but every process opening the file " +
      "must be able to create files in its directory; delete: SQLite's default, what the Lua scripts expect)"
  )
)

export const migrate = Command.make("migrate", { ...common, json: Options.boolean("json"), journal }, (o) =>
  Effect.gen(function*() {
    const settings = yield* settingsFrom(o)
    const { applied, journalMode } = yield* Effect.gen(function*() {
      const applied = yield* Migrations.migrate(settings.strategy)
      if (Option.isSome(o.journal)) yield* Journal.setJournal(o.journal.value)
      return { applied, journalMode: yield* Journal.journalMode }
    }).pipe(Effect.provide(SqlClientLayer.layer(settings.store, { connectTimeout: settings.connectTimeout })))
    const names = applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`)
    if (o.json) yield* Console.log(JSON.stringify({ applied: names, ...(journalMode !== null ? { journal_mode: journalMode } : {}) }))
    else {
      yield* Console.log(names.length === 0 ? "schema is up to date" : `applied: ${names.join(", ")}`)
      if (journalMode !== null) yield* Console.log(`SQLite journal mode: ${journalMode}`)
    }
  })
).pipe(Command.withDescription("create the Lua director tables or apply doveroute's additive migrations"))
