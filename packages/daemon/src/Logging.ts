/**
 * Structured logging for the daemon and CLI: logfmt (default) or JSON lines on stderr.
 * Secrets never reach a log line: settings keep them `Redacted`, reply fields are logged through
 * `fieldsForLog`.
 *
 * @since 0.1.0
 */
import { FiberRef, HashSet, Layer, Logger, LogLevel } from "effect"

const LEVELS = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error
} as const

/** Use exactly one logger (replacing every other one, including Effect's default); set the minimum level. */
export const layer = (options: { readonly format: "logfmt" | "json"; readonly level: keyof typeof LEVELS }) =>
  Layer.merge(
    Layer.locallyScoped(
      FiberRef.currentLoggers,
      HashSet.make(Logger.withConsoleError(options.format === "json" ? Logger.jsonLogger : Logger.logfmtLogger))
    ),
    Logger.minimumLogLevel(LEVELS[options.level])
  )
