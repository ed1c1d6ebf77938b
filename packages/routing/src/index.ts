/**
 * Routing core: strategies (mapping, shard), placement, down-backend policy, reply fields.
 * Depends on a {@link RouteStore} service; knows no database and no protocol.
 *
 * @since 0.1.0
 */
export * from "./Backend.js"
export * from "./Tags.js"
export * from "./ShardKey.js"
export * from "./Strategy.js"
export * from "./RouteStore.js"
export * from "./ReasonError.js"
export * from "./Reply.js"
export * as Placement from "./Placement.js"
export { PlacementInfo, type BackendLoad, PLACEMENTS } from "./Placement.js"
export * from "./Holds.js"
export * from "./Router.js"
export * from "./RouteCache.js"
export * from "./PasswordCheck.js"
export * from "./TempFailReason.js"
export * from "./RoutingTable.js"
export { RouteMap } from "./RouteMap.js"
export * from "./TableFeed.js"
