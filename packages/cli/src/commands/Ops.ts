/**
 * `doveroute status`, `doveroute dump`, `doveroute import FILE`. The options are here; what the
 * commands do is in OpsRun.ts, imported when one runs.
 *
 * @since 0.1.0
 */
import { Args, Command } from "@effect/cli"
import { adminOptions } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

const run = () => import("./OpsRun.js")

export const importConfig = { ...adminOptions, file: Args.text({ name: "FILE" }).pipe(Args.withDescription("CSV or JSON file, or - for stdin")) }

export const status = Command.make("status", adminOptions, lazy(run, "status")).pipe(
  Command.withDescription("backends with state, weight and mapped users (like doveadm director status)")
)

export const dump = Command.make("dump", adminOptions, lazy(run, "dump")).pipe(Command.withDescription(
  "print a re-runnable shell script: `backend add` per backend, then all mappings as CSV through one `doveroute import -` (--json: one JSON document)"
))

export const importCommand = Command.make("import", importConfig, lazy(run, "importMappings")).pipe(Command.withDescription(
  "import user→backend mappings (CSV user,backend streamed, or JSON [{user, backend}]; FILE or - for stdin); idempotent; conflicts reported (exit 3)"
))
