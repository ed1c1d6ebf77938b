/**
 * The daemon: settings → store (migrated) → router → front-end listeners, as one layer for
 * `Layer.launch`. SIGTERM/SIGINT (through `NodeRuntime.runMain`) interrupt it: listeners stop
 * accepting, in-flight requests finish, sockets are removed, exit code 0.
 *
 * @since 0.1.0
 */
import { Authenticator, AuthServer, BackendPort, DictServer, LoginRelay, Lookup, UserdbRelay } from "@doveroute/frontends"
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
  if (settings.auth !== undefined) {
    const { authMode, password, failureDelay, ...socket } = settings.auth
    layers.push(
      AuthServer.layer({
        ...socket,
        authenticator: authMode === "password" && password !== undefined
          ? Authenticator.masterPassword(password)
          : Authenticator.nopassword,
        proxyFlag: settings.proxyFlag,
        ports: settings.ports,
        failureDelay
      })
    )
  }
  if (settings.loginRelay !== undefined) {
    layers.push(LoginRelay.layer({ ...settings.loginRelay, ports: settings.ports }))
  }
  if (settings.userdbRelay !== undefined) {
    layers.push(UserdbRelay.layer({ ...settings.userdbRelay, ports: settings.ports }))
  }
  return layers
}

/** The whole daemon as a layer. */
export const daemonLayer = (settings: Settings) => {
  const listeners = listenersLayer(settings)
  if (listeners.length === 0) {
    return Layer.fail(
      new Error(
        "no listener configured: set dict.socket, auth.socket, login_relay.socket or userdb_relay.socket " +
          "(or --dict-socket, --auth-socket, --login-relay-socket, --userdb-relay-socket)"
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
          settings.userdbRelay !== undefined ? "userdb-relay" : undefined
        ].filter((x) => x !== undefined).join(","),
        ports: BackendPort.describeBackendPorts(settings.ports)
      })
    )
  )
  return ready.pipe(
    Layer.provideMerge(Layer.mergeAll(...(listeners as [Layer.Layer<never, unknown, Lookup>]))),
    Layer.provide(Lookup.layer),
    Layer.provide(routingLayer(settings))
  )
}
