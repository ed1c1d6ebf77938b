/**
 * `doveroute migrate`: create or upgrade the tables, report duplicates.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Migrations, SqlClientLayer } from "@doveroute/store"
import { Console, Effect } from "effect"
import { common, settingsFrom } from "../CommonOptions.js"

export const migrate = Command.make("migrate", { ...common, json: Options.boolean("json") }, (o) =>
  Effect.gen(function*() {
    const settings = yield* settingsFrom(o)
    const applied = yield* Migrations.migrate(settings.strategy).pipe(
      Effect.provide(SqlClientLayer.layer(settings.store, { connectTimeout: settings.connectTimeout }))
    )
    const names = applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`)
    if (o.json) yield* Console.log(JSON.stringify({ applied: names }))
    else yield* Console.log(names.length === 0 ? "schema is up to date" : `applied: ${names.join(", ")}`)
  })
).pipe(Command.withDescription("create the Lua director tables or apply doveroute's additive migrations"))
