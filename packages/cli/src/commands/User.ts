/**
 * `doveroute user show|move|unassign|list` and `doveroute shard show|move`. The options are here;
 * what each command does (moves, locks, kicks) is in UserRun.ts, imported when it runs.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { adminOptions } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

const USER = Args.text({ name: "USER" })
const BACKEND = Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))
const run = () => import("./UserRun.js")

const moveOptions = {
  noWait: Options.boolean("no-wait").pipe(Options.withDescription("return without waiting cache.refresh (daemons may serve the old route for up to cache.refresh)"))
}

export const showConfig = { ...adminOptions, user: USER }
export const moveConfig = {
  ...adminOptions,
  user: USER,
  backend: BACKEND,
  kick: Options.boolean("kick").pipe(Options.withDescription("hold the user's logins, kick its sessions on every proxy (kick_command), then release")),
  ...moveOptions
}
export const unassignConfig = { ...adminOptions, user: USER, ...moveOptions }
export const listConfig = {
  ...adminOptions,
  backend: Options.text("backend").pipe(Options.withDescription("only users of this backend (hostname or id)"), Options.optional)
}
export const shardShowConfig = { ...adminOptions, shard: Args.text({ name: "USER|N" }) }
export const shardMoveConfig = { ...adminOptions, shard: Args.integer({ name: "N" }), backend: BACKEND, ...moveOptions }

export const user = Command.make("user").pipe(
  Command.withDescription("inspect and move users"),
  Command.withSubcommands([
    Command.make("show", showConfig, lazy(run, "show")).pipe(
      Command.withDescription("explain a user's route: normalised name, key/shard, row, backend, state")
    ),
    Command.make("move", moveConfig, lazy(run, "move")).pipe(
      Command.withDescription("move a user to a backend (atomic; waits cache.refresh; --kick kicks its sessions)")
    ),
    Command.make("unassign", unassignConfig, lazy(run, "unassign")).pipe(
      Command.withDescription("delete a user's row (the next login places it again)")
    ),
    Command.make("list", listConfig, lazy(run, "list")).pipe(Command.withDescription("list mapped users (or shards) with their backend"))
  ])
)

export const shard = Command.make("shard").pipe(
  Command.withDescription("inspect and move shards (strategy shard)"),
  Command.withSubcommands([
    Command.make("show", shardShowConfig, lazy(run, "shardShow")).pipe(
      Command.withDescription("show a shard (by number, or the shard of a user name) and its backend")
    ),
    Command.make("move", shardMoveConfig, lazy(run, "shardMove")).pipe(Command.withDescription("move a shard (every user in it) to a backend"))
  ])
)
