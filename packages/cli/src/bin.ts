/**
 * Entry point of the `doveroute` binary. Exit codes: 0 success (also after SIGTERM), 1 runtime
 * error (message on stderr), 2 usage error.
 *
 * @since 0.1.0
 */
import { ValidationError } from "@effect/cli"
// subpath imports: the package index would load its HTTP client (undici) into every command
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit } from "effect"
// the module itself, not the package index: a namespace taken from the index makes the bundle load
// the whole daemon (front-ends, metrics) into every admin command
import * as Logging from "@doveroute/daemon/Logging"
import { run } from "./Cli.js"
import { withPlainHelp } from "./Help.js"

const describe = (e: unknown): string =>
  e !== null && typeof e === "object" && "message" in e && typeof e.message === "string" && e.message.length > 0
    ? e.message
    : String(e)

// admin errors carry doveadm-style codes (68 not found, 75 try again); everything else exits 1
const exitCodeOf = (e: unknown): number => {
  const c = e !== null && typeof e === "object" && "exitCode" in e ? (e as { exitCode: unknown }).exitCode : undefined
  return typeof c === "number" && c > 0 ? c : 1
}

const program = run(process.argv).pipe(
  withPlainHelp(process.argv.slice(2)),
  Effect.catchAll((e) =>
    ValidationError.isValidationError(e)
      ? Effect.sync(() => { process.exitCode = 2 })
      : Console.error(`doveroute: error: ${describe(e)}`).pipe(Effect.zipRight(Effect.sync(() => { process.exitCode = exitCodeOf(e) })))
  ),
  // admin commands log to stderr so that stdout stays clean for --json; serve replaces this
  Effect.provide(Logging.layer({ format: "logfmt", level: "info" })),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
      process.stderr.write(`doveroute: fatal: ${Cause.pretty(exit.cause)}\n`)
      onExit(1)
    } else onExit(process.exitCode === undefined ? 0 : Number(process.exitCode))
  }
})
