/**
 * The store + router for settings, shared by `serve` and the admin commands. Its own module so
 * that an admin command loads neither the front-ends nor the daemon's other services.
 *
 * @since 0.1.0
 */
import { RouteCache, Router, RouteTable } from "@doveroute/routing"
import { ChangeFeed, Operations, storeLayer } from "@doveroute/store"
import { Layer } from "effect"
import type { Settings } from "./Settings.js"

/**
 * The store + router for settings (used by `serve` and the admin CLI). `cached` (the daemon): the
 * in-memory routing table kept in step by the change feed (`table.mode = full`, TableFeed.ts), or
 * the lookup cache of `cache.*`, invalidated by the store's routes version (RouteCache.ts);
 * neither with `cache.enabled: false`.
 * Placement weights and move holds come from the store (Operations.ts).
 */
export const routingLayer = (
  settings: Settings,
  options: { readonly migrate?: boolean; readonly cached?: boolean; readonly readOnly?: boolean } = {}
) => {
  const r = settings.routing
  const routerOptions = { strategy: settings.strategy, downPolicy: settings.downPolicy, placement: r.placement, normalize: r.normalize, tagDomains: r.tags.domains }
  const table = RouteTable.layer({ refresh: r.cache.refresh, maxStale: r.table.maxStale, keepChanges: r.table.keepChanges }).pipe(
    Layer.provide(ChangeFeed.layer(settings.strategy, settings.queryTimeout))
  )
  // `cache.enabled: false` keeps meaning "every lookup reads the store" (no table either)
  const memory = options.cached === true && r.cache.enabled
  const router = memory && r.table.mode === "full"
    ? Router.layerCached(routerOptions).pipe(Layer.provideMerge(Layer.merge(table, RouteCache.disabled)))
    : memory
    ? Router.layerCached(routerOptions).pipe(
      Layer.provideMerge(RouteCache.layer(r.cache).pipe(Layer.provide(Operations.routeVersionLayer(settings.queryTimeout))))
    )
    : Router.layer(routerOptions)
  return router.pipe(
    Layer.provide(Layer.mergeAll(Operations.placementInfoLayer(settings.queryTimeout), Operations.routeHoldsLayer(settings.queryTimeout))),
    Layer.provideMerge(
      storeLayer({
        url: settings.store,
        strategy: settings.strategy,
        migrate: options.migrate ?? settings.migrate,
        readOnly: options.readOnly === true,
        queryTimeout: settings.queryTimeout,
        connectTimeout: settings.connectTimeout,
        maxConnections: settings.maxConnections,
        // the daemon never waits inside a SQLite statement for a lock (the event loop would stall)
        sqliteLocks: options.cached === true ? "retry" : "block"
      })
    )
  )
}
