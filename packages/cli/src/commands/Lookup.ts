/**
 * `doveroute lookup USER` (what it does: LookupRun.ts, imported when it runs).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { common } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

export const lookupConfig = {
  ...common,
  user: Args.text({ name: "USER" }),
  tag: Options.text("tag").pipe(Options.withDescription("the director_tag the login carries (a new user is placed in that tag)"), Options.optional),
  json: Options.boolean("json")
}

export const lookup = Command.make("lookup", lookupConfig, lazy(() => import("./LookupRun.js"), "lookup")).pipe(
  Command.withDescription("show how a user is routed, without writing")
)
