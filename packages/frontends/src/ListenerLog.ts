/**
 * Logging from plain per-connection code (socket callbacks) into the daemon's Effect logger.
 * Callers must never pass secrets (passwords stay `Redacted` and are not annotated).
 *
 * @since 0.1.0
 */
import { Context, Effect, FiberRef, LogLevel, Option, Runtime } from "effect"

/** A synchronous log sink for socket code. */
export type ListenerLog = (level: "Debug" | "Info" | "Warning", message: string, annotations: Record<string, unknown>) => void

const LEVELS = { Debug: LogLevel.Debug, Info: LogLevel.Info, Warning: LogLevel.Warning } as const

/**
 * The log level in force right now, for a logger whose level changes while running (the daemon's
 * SIGHUP-reloadable logger sets Effect's minimum level to Debug and filters itself). Without this
 * service the minimum log level of the fiber that builds the listener is used.
 */
export class LiveLogLevel extends Context.Tag("doveroute/LiveLogLevel")<LiveLogLevel, {
  readonly current: () => LogLevel.LogLevel
}>() {}

/**
 * Whether a line of a level would be written, as a plain function for the hot path: callers skip
 * building (and forking) a log effect for lines nobody will see.
 */
export const logLevelGate: Effect.Effect<(level: LogLevel.LogLevel) => boolean> = Effect.gen(function*() {
  const live = yield* Effect.serviceOption(LiveLogLevel)
  if (Option.isSome(live)) {
    const current = live.value.current
    return (level) => !LogLevel.lessThan(level, current())
  }
  const minimum = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
  return (level) => !LogLevel.lessThan(level, minimum)
})

/**
 * A {@link ListenerLog} forwarding to the current runtime's logger, every line annotated with
 * `listener`. Lines below the level in force ({@link logLevelGate}) are dropped at once (no fiber
 * is started for them: this runs on the socket hot path).
 */
export const runtimeLog = (listener: string) =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const enabled = yield* logLevelGate
    const log: ListenerLog = (level, message, annotations) => {
      if (!enabled(LEVELS[level])) return
      runFork(Effect.logWithLevel(LEVELS[level], message).pipe(Effect.annotateLogs({ listener, ...annotations })))
    }
    return log
  })

/** A sink that drops everything (tests). */
export const silent: ListenerLog = () => {}
