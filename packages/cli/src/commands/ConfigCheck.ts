/**
 * `doveroute config check [--config FILE]` (what it does: ConfigCheckRun.ts, imported when it runs).
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { common } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

export const checkConfig = { ...common, json: Options.boolean("json") }

export const config = Command.make("config").pipe(
  Command.withDescription("configuration tools"),
  Command.withSubcommands([
    Command.make("check", checkConfig, lazy(() => import("./ConfigCheckRun.js"), "check")).pipe(
      Command.withDescription("check the settings (config file, DOVEROUTE_*, flags) without starting anything")
    )
  ])
)
