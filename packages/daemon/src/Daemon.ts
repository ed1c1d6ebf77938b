/**
 * The daemon: settings → store (migrated) → router → front-end listeners, as one layer for
 * `Layer.launch`. SIGTERM/SIGINT (through `NodeRuntime.runMain`) interrupt it: listeners stop
 * accepting, in-flight requests finish, sockets are removed, exit code 0.
 *
 * @since 0.1.0
 */
import { DictServer, Lookup } from "@doveroute/frontends"
import { Router } from "@doveroute/routing"
import { describeStoreUrl, storeLayer } from "@doveroute/store"
import { Effect, Layer } from "effect"
import type { Settings } from "./Settings.js"

/** The store + router for settings (used by `serve` and the admin CLI). */
export const routingLayer = (settings: Settings, options: { readonly migrate?: boolean } = {}) =>
  Router.layer({ strategy: settings.strategy, downPolicy: settings.downPolicy }).pipe(
    Layer.provideMerge(
      storeLayer({
        url: settings.store,
        strategy: settings.strategy,
        migrate: options.migrate ?? settings.migrate,
        queryTimeout: settings.queryTimeout,
        connectTimeout: settings.connectTimeout,
        maxConnections: settings.maxConnections
      })
    )
  )

/** Every configured listener. Fails at start when none is configured. */
export const listenersLayer = (settings: Settings) => {
  const layers: Array<Layer.Layer<never, unknown, Lookup>> = []
  if (settings.dict !== undefined) {
    layers.push(
      DictServer.layer({
        ...settings.dict,
        proxyFlag: settings.proxyFlag,
        extraFields: settings.extraFields
      })
    )
  }
  return layers
}

/** The whole daemon as a layer. */
export const daemonLayer = (settings: Settings) => {
  const listeners = listenersLayer(settings)
  if (listeners.length === 0) {
    return Layer.fail(new Error("no listener configured: set dict.socket (or --dict-socket)"))
  }
  const ready = Layer.effectDiscard(
    Effect.logInfo("doveroute ready").pipe(
      Effect.annotateLogs({
        store: describeStoreUrl(settings.store),
        strategy: settings.strategy,
        down_policy: settings.downPolicy,
        proxy_flag: settings.proxyFlag
      })
    )
  )
  return ready.pipe(
    Layer.provideMerge(Layer.mergeAll(...(listeners as [Layer.Layer<never, unknown, Lookup>]))),
    Layer.provide(Lookup.layer),
    Layer.provide(routingLayer(settings))
  )
}
