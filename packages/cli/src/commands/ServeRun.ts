/**
 * What `doveroute serve` does (the options: Serve.ts): load the settings, then run the daemon layer
 * until SIGTERM. Its own module, loaded by `serve` alone through a dynamic import, so that the
 * bundle keeps the daemon, the front-ends and the metrics out of every admin command's start-up.
 *
 * @since 0.1.0
 */
import { daemonLayer, type Settings } from "@doveroute/daemon"
import * as Secrets from "@doveroute/daemon/Secrets"
import * as Logging from "@doveroute/daemon/Logging"
import { SqliteFiles } from "@doveroute/store"
import { Effect, Layer, Runtime } from "effect"
import { flagsFrom } from "../CommonOptions.js"
import { settingsFrom } from "./AdminSupport.js"
import type { Parsed } from "./Lazy.js"
import { flagPairs, type serveConfig } from "./Serve.js"

/** The start-up warnings: secrets given on the command line (then blanked from ps), weak secret files, an exposed store. */
const startWarnings = (settings: Settings, flags: Parameters<typeof Secrets.argvSecrets>[0]) => {
  const onArgv = Secrets.argvSecrets(flags)
  if (onArgv.length > 0) process.title = Secrets.scrubbedTitle(process.argv)
  return Effect.gen(function*() {
    if (onArgv.length > 0) {
      yield* Effect.logWarning(
        "a secret was given on the command line: every local user could read it in ps while the daemon started; " +
          "use a *_file setting, a systemd credential or a DOVEROUTE_* variable"
      ).pipe(Effect.annotateLogs({ flags: onArgv.join(",") }))
    }
    for (const w of settings.secretWarnings ?? []) yield* Effect.logWarning(w)
    const exposed = settings.store._tag === "Sqlite" ? SqliteFiles.sqliteExposure(settings.store.filename) : undefined
    if (exposed !== undefined) yield* Effect.logWarning(exposed)
  })
}

/**
 * Every SIGINT/SIGTERM after the first, while the daemon stops, is logged and ignored, never left to
 * the default action. `NodeRuntime.runMain` removes its own handler at the first signal, and GNU
 * `timeout` sends its signal twice (to the child, then to its process group): a second one landing
 * after that removal killed the process before the finalizers had removed the socket files. The
 * stop stays bounded by each listener's drain timeout; SIGKILL still ends it at once. Installed for
 * the rest of the process's life, before any socket exists.
 */
const ignoreRepeatedStopSignals = Effect.gen(function*() {
  const runtime = yield* Effect.runtime<never>()
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      Runtime.runSync(runtime)(Effect.logInfo("already stopping: signal ignored").pipe(Effect.annotateLogs("signal", signal)))
    }
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
})

/**
 * Run the daemon for `settings`; SIGHUP re-runs `reload` (config file + env + the same flags).
 * `flags` are the command-line flags given, checked for secrets.
 */
export const runDaemon = (
  settings: Settings,
  reload: Effect.Effect<Settings, unknown>,
  flags: Parameters<typeof Secrets.argvSecrets>[0]
) =>
  Effect.zipRight(
    Effect.zipRight(ignoreRepeatedStopSignals, startWarnings(settings, flags)),
    Layer.launch(daemonLayer(settings, { reload }))
  ).pipe(
    Effect.provide(Logging.reloadableLayer({ format: settings.logFormat, level: settings.logLevel }))
  )

/** `doveroute serve`: the settings from flags, `DOVEROUTE_*` and the config file, then the daemon. */
export const serve = (o: Parsed<typeof serveConfig>) =>
  Effect.gen(function*() {
    const pairs = flagPairs(o)
    const load = settingsFrom(o, pairs)
    const settings = yield* load
    // SIGHUP re-runs `load`: the config file and DOVEROUTE_* are read again, the flags stay.
    return yield* runDaemon(settings, load, flagsFrom(o, pairs))
  })
