/**
 * The `doveroute` command.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { backend } from "./commands/Backend.js"
import { config } from "./commands/ConfigCheck.js"
import { lookup } from "./commands/Lookup.js"
import { migrate } from "./commands/Migrate.js"
import { importCommand } from "./commands/Import.js"
import { dump, status } from "./commands/Ops.js"
import { serve } from "./commands/Serve.js"
import { shard, user } from "./commands/User.js"

export const VERSION = "0.1.0"

export const doveroute = Command.make("doveroute").pipe(
  Command.withDescription("route every Dovecot mail user to one backend"),
  Command.withSubcommands([serve, migrate, backend, user, shard, status, dump, importCommand, lookup, config])
)

/** Parse argv (`process.argv` shape) and run. */
export const run = Command.run(doveroute, { name: "doveroute", version: VERSION })
