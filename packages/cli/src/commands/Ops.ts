/**
 * `doveroute status` (backends and the ring of daemons) and `doveroute dump`. What they do:
 * OpsRun.ts, imported when one runs.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { adminOptions } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

const run = () => import("./OpsRun.js")

export const statusConfig = adminOptions
export const status = Command.make("status", statusConfig, lazy(run, "status")).pipe(
  Command.withDescription("backends with state, weight and mapped users (like doveadm director status), and every daemon sharing the store")
)

export const dumpConfig = adminOptions
export const dump = Command.make("dump", dumpConfig, lazy(run, "dump")).pipe(Command.withDescription(
  "print a re-runnable shell script: `backend add` per backend (with its --tag), then all mappings and user tags as CSV through one `doveroute import -` (--json: one JSON document)"
))
