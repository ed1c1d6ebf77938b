/**
 * The daemon: settings → store (migrated) → router → front-end listeners, as one layer for
 * `Layer.launch`. SIGTERM/SIGINT (through `NodeRuntime.runMain`) interrupt it: listeners stop
 * accepting, in-flight requests finish, sockets are removed, exit code 0.
 *
 * @since 0.1.0
 */
import {
  Authenticator,
  AuthServer,
  BackendPort,
  DictServer,
  HttpRoute,
  LoginRelay,
  Lookup,
  Pam,
  UserdbRelay
} from "@doveroute/frontends"
import { uncheckedLoginRisk } from "@doveroute/routing"
import { describeStoreUrl } from "@doveroute/store"
import { Effect, Layer, Runtime } from "effect"
import * as HealthCheck from "./HealthCheck.js"
import * as Logging from "./Logging.js"
import * as Metrics from "./Metrics.js"
import * as OpsEvents from "./OpsEvents.js"
import * as Ring from "./Ring.js"
import { routingLayer } from "./RoutingLayer.js"
import type { AuthSettings, Settings } from "./Settings.js"
import * as Systemd from "./Systemd.js"

/** The standalone auth server's credential checker for its settings (PAM loads its binding here). */
export const authenticatorFor = (auth: AuthSettings): Authenticator.Authenticator => {
  switch (auth.authMode) {
    case "password":
      return auth.password !== undefined ? Authenticator.masterPassword(auth.password) : Authenticator.nopassword
    case "pam":
      return Pam.pam({ service: auth.pamService })
    case "nopassword":
      return Authenticator.nopassword
  }
}

/** The listener limits of the settings, as every front-end takes them. */
export const connectionLimits = (settings: Settings) => ({
  maxConnections: settings.limits.maxClients,
  maxRequests: settings.limits.maxRequestsPerClient,
  lineTimeout: settings.limits.lineTimeout,
  idleTimeout: settings.limits.idleTimeout
})

/** Every configured listener. Fails at start when none is configured. */
export const listenersLayer = (settings: Settings) => {
  const layers: Array<Layer.Layer<never, unknown, Lookup>> = []
  const limits = connectionLimits(settings)
  if (settings.dict !== undefined) {
    layers.push(
      DictServer.layer({
        ...limits,
        ...settings.dict,
        proxyFlag: settings.proxyFlag,
        extraFields: settings.extraFields
      })
    )
  }
  if (settings.auth !== undefined) {
    const auth = settings.auth
    layers.push(
      Layer.unwrapEffect(
        // PAM loads its native binding here: a missing module stops the start with a clear message
        Effect.try({ try: () => authenticatorFor(auth), catch: (e) => e as Error }).pipe(
          Effect.map((authenticator) =>
            AuthServer.layer({
              ...limits,
              path: auth.path,
              mode: auth.mode,
              owner: auth.owner,
              group: auth.group,
              authenticator,
              proxyFlag: settings.proxyFlag,
              ports: settings.ports,
              failureDelay: auth.failureDelay
            })
          )
        )
      )
    )
  }
  if (settings.http !== undefined) {
    layers.push(
      HttpRoute.layer({
        maxConnections: limits.maxConnections,
        ...settings.http,
        proxyFlag: settings.proxyFlag,
        extraFields: settings.extraFields
      })
    )
  }
  if (settings.loginRelay !== undefined) {
    layers.push(LoginRelay.layer({ ...limits, ...settings.loginRelay, ports: settings.ports }))
  }
  if (settings.userdbRelay !== undefined) {
    layers.push(UserdbRelay.layer({ ...limits, ...settings.userdbRelay, ports: settings.ports }))
  }
  return layers
}

/** Settings a SIGHUP applies while running; every other changed key is logged as needing a restart. */
export const LIVE_KEYS: ReadonlyArray<keyof Settings> = ["logLevel", "logFormat", "extraFields", "health"]

/** Top-level settings keys that differ between two settings, except {@link LIVE_KEYS}. */
export const restartKeys = (a: Settings, b: Settings): Array<string> =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) =>
    !(LIVE_KEYS as ReadonlyArray<string>).includes(k) &&
    JSON.stringify((a as unknown as Record<string, unknown>)[k]) !== JSON.stringify((b as unknown as Record<string, unknown>)[k])
  )

/**
 * The settings a reload would really run: `next`'s {@link LIVE_KEYS} on the running settings
 * (every other key needs a restart and keeps its running value).
 */
export const settingsAfterReload = (running: Settings, next: Settings): Settings =>
  ({ ...next, ...Object.fromEntries(restartKeys(running, next).map((k) => [k, (running as unknown as Record<string, unknown>)[k]])) }) as Settings

/**
 * Why a reload must be refused: the checks of a settings file, run on what would really run
 * (the new file alone passed them, but e.g. its `proxy_flag proxy` needs a restart while its
 * `nopassword` would apply at once beside the running `proxy_maybe`). Undefined = safe.
 */
export const reloadRisk = (running: Settings, next: Settings): string | undefined => {
  const after = settingsAfterReload(running, next)
  const risk = uncheckedLoginRisk(after.proxyFlag, after.extraFields)
  return risk === undefined ? undefined : `with the running proxy_flag ${after.proxyFlag} (proxy_flag needs a restart): ${risk}`
}

/** Options of {@link daemonLayer}. */
export interface DaemonOptions {
  /** Re-read the settings (config file + env + the original flags) on SIGHUP. */
  readonly reload?: Effect.Effect<Settings, unknown>
}

/**
 * SIGHUP: re-read the settings and apply {@link LIVE_KEYS} in place (log level/format, extra
 * fields, health checker); listeners, connections and in-flight lookups are untouched. A failed
 * reload keeps the running settings. systemd sees `RELOADING=1` then `READY=1`.
 */
const reloadLayer = (settings: Settings, liveExtra: Array<Settings["extraFields"][number]>, options: DaemonOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const checker = yield* HealthCheck.HealthChecker
      const runtime = yield* Effect.runtime<never>()
      const lock = yield* Effect.makeSemaphore(1)
      let current = settings
      const reloadOnce = Effect.gen(function*() {
        yield* Systemd.notify({ RELOADING: 1, STATUS: "reloading configuration" })
        if (options.reload === undefined) {
          yield* Effect.logWarning("SIGHUP: reload not available in this mode")
        } else {
          const next = yield* Effect.either(options.reload)
          if (next._tag === "Left") {
            const e = next.left
            OpsEvents.reloaded("failed")
            yield* Effect.logError("SIGHUP: reload failed, keeping the running settings").pipe(
              Effect.annotateLogs("detail", e instanceof Error ? e.message : String(e))
            )
          } else if (reloadRisk(current, next.right) !== undefined) {
            OpsEvents.reloaded("failed")
            yield* Effect.logError("SIGHUP: reload refused, keeping the running settings").pipe(
              Effect.annotateLogs("detail", reloadRisk(current, next.right))
            )
          } else {
            const n = next.right
            Logging.setLive({ format: n.logFormat, level: n.logLevel })
            liveExtra.splice(0, liveExtra.length, ...n.extraFields)
            checker.settings.current = n.health
            const restart = restartKeys(current, n)
            current = settingsAfterReload(current, n)
            OpsEvents.reloaded("ok")
            yield* Effect.logInfo("configuration reloaded").pipe(
              Effect.annotateLogs({ log_level: n.logLevel, health: n.health.enabled, extra_fields: n.extraFields.length })
            )
            if (restart.length > 0) {
              yield* Effect.logWarning("changed settings need a restart to take effect").pipe(Effect.annotateLogs("settings", restart.join(",")))
            }
          }
        }
        yield* Systemd.notify({ READY: 1, STATUS: "serving" })
      })
      const onHup = () => {
        Runtime.runFork(runtime)(lock.withPermits(1)(reloadOnce).pipe(Effect.catchAllDefect((d) => Effect.logError("SIGHUP reload defect", d))))
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => process.on("SIGHUP", onHup)),
        () => Effect.sync(() => process.off("SIGHUP", onHup))
      )
    })
  )

/** The whole daemon as a layer. */
export const daemonLayer = (settings0: Settings, options: DaemonOptions = {}) => {
  // extra fields are read per reply, so a reload can replace them in place
  const liveExtra = [...settings0.extraFields]
  const settings: Settings = { ...settings0, extraFields: liveExtra }
  const listeners = listenersLayer(settings)
  if (listeners.length === 0) {
    return Layer.fail(
      new Error(
        "no listener configured: set dict.socket, auth.socket, login_relay.socket, userdb_relay.socket or http.listen " +
          "(or --dict-socket, --auth-socket, --login-relay-socket, --userdb-relay-socket, --http-listen)"
      )
    )
  }
  const ready = Layer.effectDiscard(
    Effect.logInfo("doveroute ready").pipe(
      Effect.annotateLogs({
        store: describeStoreUrl(settings.store),
        strategy: settings.strategy,
        down_policy: settings.downPolicy,
        proxy_flag: settings.proxyFlag,
        listeners: [
          settings.dict !== undefined ? "dict" : undefined,
          settings.auth !== undefined ? `auth(${settings.auth.authMode})` : undefined,
          settings.loginRelay !== undefined ? "login-relay" : undefined,
          settings.userdbRelay !== undefined ? "userdb-relay" : undefined,
          settings.http !== undefined ? `http(${HttpRoute.formatHttpListen(settings.http.listen)})` : undefined
        ].filter((x) => x !== undefined).join(","),
        ports: BackendPort.describeBackendPorts(settings.ports)
      })
    )
  )
  // systemd: READY=1 once every listener is up; STOPPING=1 first thing on shutdown
  const notifyReady = Layer.scopedDiscard(
    Effect.acquireRelease(
      Systemd.notify({ READY: 1, STATUS: "serving", MAINPID: process.pid }),
      () => Systemd.notify({ STOPPING: 1, STATUS: "stopping: finishing in-flight requests" })
    )
  )
  const bridge = Ring.noteStoreErrors.pipe(Layer.provide(Lookup.layerWith({ deadline: settings.lookupTimeout })))
  const lookup = settings.metrics === undefined
    ? bridge
    : Metrics.lookupLayer.pipe(Layer.provide(bridge), Layer.provide(Metrics.layer(settings.metrics)))
  return Layer.mergeAll(ready, notifyReady, reloadLayer(settings, liveExtra, options)).pipe(
    Layer.provideMerge(Layer.mergeAll(...(listeners as [Layer.Layer<never, unknown, Lookup>]))),
    Layer.provide(lookup),
    Layer.provide(
      Layer.merge(HealthCheck.layer(settings.health), Ring.heartbeatLayer(settings)).pipe(Layer.provideMerge(routingLayer(settings, { cached: true })))
    )
  )
}
