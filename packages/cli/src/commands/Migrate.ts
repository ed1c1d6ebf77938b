/**
 * `doveroute migrate` (what it does: MigrateRun.ts, imported when it runs).
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { common } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

const journal = Options.choice("journal", ["wal", "delete"] as const).pipe(
  Options.optional,
  Options.withDescription(
    "SQLite only: switch the file's journal mode (wal: readers never wait, but every process opening the file " +
      "must be able to create files in its directory; delete: SQLite's default, what the Lua scripts expect)"
  )
)

export const migrateConfig = { ...common, json: Options.boolean("json"), journal }

export const migrate = Command.make("migrate", migrateConfig, lazy(() => import("./MigrateRun.js"), "migrate")).pipe(
  Command.withDescription("create the Lua director tables or apply doveroute's additive migrations")
)
