/**
 * Structured logging for the daemon and CLI: logfmt (default) or JSON lines on stderr.
 * Secrets never reach a log line: settings keep them `Redacted`, reply fields are logged through
 * `fieldsForLog`.
 *
 * @since 0.1.0
 */
// the module itself, not the package index: the index would load every front-end into each admin command
import * as ListenerLog from "@doveroute/frontends/ListenerLog"
import { FiberRef, HashSet, Layer, Logger, LogLevel } from "effect"

const LEVELS = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error
} as const

/**
 * The level and format of the reloadable logger ({@link reloadableLayer}); a SIGHUP reload
 * changes them in place.
 */
export const live: { level: LogLevel.LogLevel; format: "logfmt" | "json" } = { level: LogLevel.Info, format: "logfmt" }

/** Set the live level and format (SIGHUP reload). */
export const setLive = (options: { readonly format: "logfmt" | "json"; readonly level: keyof typeof LEVELS }): void => {
  live.level = LEVELS[options.level]
  live.format = options.format
}

/**
 * Like {@link layer}, but level and format can change while running ({@link setLive}): Effect's
 * minimum level is Debug and the logger filters by the live level (`serve` uses this). Also provides
 * {@link ListenerLog.LiveLogLevel}, so socket code skips lines below the live level without a fiber.
 */
export const reloadableLayer = (options: { readonly format: "logfmt" | "json"; readonly level: keyof typeof LEVELS }) => {
  setLive(options)
  const out = { logfmt: Logger.withConsoleError(Logger.logfmtLogger), json: Logger.withConsoleError(Logger.jsonLogger) }
  const logger = Logger.make<unknown, void>((o) => {
    if (LogLevel.lessThan(o.logLevel, live.level)) return
    out[live.format].log(o)
  })
  return Layer.mergeAll(
    Layer.locallyScoped(FiberRef.currentLoggers, HashSet.make(logger)),
    Logger.minimumLogLevel(LogLevel.Debug),
    // listeners and lookups ask this before building a log line (the hot path logs nothing below it)
    Layer.succeed(ListenerLog.LiveLogLevel, { current: () => live.level })
  )
}

/** Use exactly one logger (replacing every other one, including Effect's default); set the minimum level. */
export const layer = (options: { readonly format: "logfmt" | "json"; readonly level: keyof typeof LEVELS }) =>
  Layer.merge(
    Layer.locallyScoped(
      FiberRef.currentLoggers,
      HashSet.make(Logger.withConsoleError(options.format === "json" ? Logger.jsonLogger : Logger.logfmtLogger))
    ),
    Logger.minimumLogLevel(LEVELS[options.level])
  )
