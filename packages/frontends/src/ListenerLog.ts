/**
 * Logging from plain per-connection code (socket callbacks) into the daemon's Effect logger.
 * Callers must never pass secrets (passwords stay `Redacted` and are not annotated).
 *
 * @since 0.1.0
 */
import { Effect, FiberRef, LogLevel, Runtime } from "effect"

/** A synchronous log sink for socket code. */
export type ListenerLog = (level: "Debug" | "Info" | "Warning", message: string, annotations: Record<string, unknown>) => void

const LEVELS = { Debug: LogLevel.Debug, Info: LogLevel.Info, Warning: LogLevel.Warning } as const

/**
 * A {@link ListenerLog} forwarding to the current runtime's logger, every line annotated with
 * `listener`. Lines below the minimum log level in force when it is built are dropped at once
 * (no fiber is started for them: this runs on the socket hot path).
 */
export const runtimeLog = (listener: string) =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const minimum = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
    const log: ListenerLog = (level, message, annotations) => {
      if (LogLevel.lessThan(LEVELS[level], minimum)) return
      runFork(Effect.logWithLevel(LEVELS[level], message).pipe(Effect.annotateLogs({ listener, ...annotations })))
    }
    return log
  })

/** A sink that drops everything (tests). */
export const silent: ListenerLog = () => {}
