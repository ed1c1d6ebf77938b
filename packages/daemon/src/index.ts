/**
 * Daemon composition: settings, logging, layers.
 *
 * @since 0.1.0
 */
export * from "./Settings.js"
export * as Logging from "./Logging.js"
export * from "./Daemon.js"
