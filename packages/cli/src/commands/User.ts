/**
 * `doveroute user show|move|unassign|list|tag|tags` and `doveroute shard show|move`.
 *
 * `user tag USER TAG|none`, `user tags`: the store's per-user tag (`doveroute_user_tags`), which
 * wins over the passdb's `director_tag` and the `tags.domains` rule when the user is placed; a
 * mapped user stays on their backend (move them with `user move`). `user show` explains the tag.
 *
 * A move takes the key's move lock (`doveroute_moves`; a second move of the same user at once
 * fails with "try again", exit 75), re-points the row with a compare-and-set, then waits
 * `cache.refresh` (+0.5 s) so that no daemon serves the old route once the command returns. With
 * `--kick` logins of the user are held (temp_fail) from before the move until `kick_command` ran on
 * every proxy (`kick_proxies`), so no new session starts while old ones are being kicked.
 *
 * What they do: UserRun.ts (bulk moves: BulkRun.ts), imported when one runs.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { adminOptions } from "../CommonOptions.js"
import { bulkOptions, dryRunOption, kickOption, noWaitOption } from "./BulkOptions.js"
import { lazy } from "./Lazy.js"

const USER = Args.text({ name: "USER" })
const BACKEND = Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))
const run = () => import("./UserRun.js")

export const showConfig = { ...adminOptions, user: USER }
const show = Command.make("show", showConfig, lazy(run, "show")).pipe(
  Command.withDescription("explain a user's route: normalised name, key/shard, row, backend, state, tag")
)

export const moveConfig = { ...adminOptions, user: USER, backend: BACKEND, ...kickOption, ...dryRunOption, ...noWaitOption }
const move = Command.make("move", moveConfig, lazy(run, "move")).pipe(
  Command.withDescription("move a user to a backend (atomic; waits cache.refresh; --kick kicks its sessions)")
)

export const moveManyConfig = {
  ...bulkOptions,
  ...kickOption,
  file: Args.text({ name: "FILE" }).pipe(Args.withDescription("user names, one per line (# comments), or - for stdin")),
  backend: Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))
}
const moveMany = Command.make("move-many", moveManyConfig, lazy(() => import("./BulkRun.js"), "moveMany")).pipe(
  Command.withDescription("move the users listed in FILE (or - for stdin) to a backend")
)

export const unassignConfig = { ...adminOptions, user: USER, ...noWaitOption }
const unassign = Command.make("unassign", unassignConfig, lazy(run, "unassign")).pipe(
  Command.withDescription("delete a user's row (the next login places it again)")
)

export const listConfig = {
  ...adminOptions,
  backend: Options.text("backend").pipe(Options.withDescription("only users of this backend (hostname or id)"), Options.optional)
}
const list = Command.make("list", listConfig, lazy(run, "list")).pipe(
  Command.withDescription("list mapped users (or shards) with their backend")
)

export const tagConfig = {
  ...adminOptions,
  user: USER,
  tag: Args.text({ name: "TAG" }).pipe(Args.withDescription("the tag (pool) the user's placements use, or none (remove it)")),
  ...dryRunOption
}
const tag = Command.make("tag", tagConfig, lazy(run, "tag")).pipe(
  Command.withDescription("set (or with none remove) a user's tag in the store: wins over director_tag and tags.domains; a mapped user stays where they are")
)
export const tagsConfig = adminOptions
const tags = Command.make("tags", tagsConfig, lazy(run, "tags")).pipe(Command.withDescription("list the users with a tag in the store"))

export const user = Command.make("user").pipe(
  Command.withDescription("inspect and move users"),
  Command.withSubcommands([show, move, moveMany, unassign, list, tag, tags])
)

export const shardShowConfig = { ...adminOptions, shard: Args.text({ name: "USER|N" }) }
const shardShow = Command.make("show", shardShowConfig, lazy(run, "shardShow")).pipe(
  Command.withDescription("show a shard (by number, or the shard of a user name) and its backend")
)

export const shardMoveConfig = {
  ...bulkOptions,
  shard: Args.text({ name: "N|N-M" }).pipe(Args.withDescription("a shard, or a range of shards (0..65535)")),
  backend: BACKEND
}
const shardMove = Command.make("move", shardMoveConfig, lazy(run, "shardMove")).pipe(
  Command.withDescription("move a shard, or every shard of N-M, to a backend (every user in them)")
)

export const shard = Command.make("shard").pipe(
  Command.withDescription("inspect and move shards (strategy shard)"),
  Command.withSubcommands([shardShow, shardMove])
)
