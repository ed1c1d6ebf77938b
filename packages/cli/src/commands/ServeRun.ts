/**
 * What `doveroute serve` runs once its settings are loaded: the daemon layer until SIGTERM. Its own
 * module, loaded by `serve` alone through a dynamic import, so that the bundle keeps the daemon,
 * the front-ends and the metrics out of every admin command's start-up.
 *
 * @since 0.1.0
 */
import { daemonLayer, type Settings } from "@doveroute/daemon"
import * as Logging from "@doveroute/daemon/Logging"
import { Effect, Layer } from "effect"

/** Run the daemon for `settings`; SIGHUP re-runs `reload` (config file + env + the same flags). */
export const runDaemon = (settings: Settings, reload: Effect.Effect<Settings, unknown>) =>
  Layer.launch(daemonLayer(settings, { reload })).pipe(
    Effect.provide(Logging.reloadableLayer({ format: settings.logFormat, level: settings.logLevel }))
  )
