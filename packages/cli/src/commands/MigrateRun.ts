/**
 * What `doveroute migrate` does (the options: Migrate.ts): create or upgrade the tables, report
 * duplicates.
 *
 * @since 0.1.0
 */
import { Journal, Migrations, SqlClientLayer } from "@doveroute/store"
import { Console, Effect, Option } from "effect"
import { settingsFrom } from "./AdminSupport.js"
import type { Parsed } from "./Lazy.js"
import type { migrateConfig } from "./Migrate.js"

export const migrate = (o: Parsed<typeof migrateConfig>) =>
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
