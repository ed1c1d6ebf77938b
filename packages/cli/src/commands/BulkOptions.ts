/**
 * Options shared by the moves: `--no-wait`, `--dry-run`, `--kick` and the bulk moves' `--parallel`
 * (what the bulk moves do: BulkRun.ts).
 *
 * @since 0.1.0
 */
import { Options } from "@effect/cli"
import type { CommonValues } from "../CommonOptions.js"
import { adminOptions } from "../CommonOptions.js"

/** `--no-wait`, shared with `user move` and `shard move`. */
export const noWaitOption = {
  noWait: Options.boolean("no-wait").pipe(Options.withDescription("return without waiting cache.refresh (daemons may serve the old route for up to cache.refresh)"))
}

/** `--dry-run`: print what would change, write nothing. */
export const dryRunOption = {
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("print (with --json: return) what would change; nothing is written"))
}

export const kickOption = {
  kick: Options.boolean("kick").pipe(Options.withDescription("hold each moved user's logins, kick its sessions on every proxy (kick_command), then release"))
}

/** Options of every bulk move (user bulk moves add {@link kickOption}). */
export const bulkOptions = {
  ...adminOptions,
  parallel: Options.integer("parallel").pipe(Options.withDescription("at most N moves (and their kicks) in flight (default 4)"), Options.withDefault(4)),
  ...dryRunOption,
  ...noWaitOption
} as const

/** Values of {@link bulkOptions}. */
export interface BulkValues extends CommonValues {
  readonly json: boolean
  readonly kick?: boolean
  readonly parallel: number
  readonly dryRun: boolean
  readonly noWait: boolean
}
