/**
 * Routing settings shared by every front-end.
 *
 * @since 0.1.0
 */

/**
 * `mapping`: one `user_backend(backend_id, user)` row per user (`director.lua`).
 * `shard`: one `user_backend(backend_id, user_hash)` row per 16-bit shard (`director-shard.lua`).
 */
export type Strategy = "mapping" | "shard"
export const STRATEGIES: ReadonlyArray<Strategy> = ["mapping", "shard"]

/**
 * The proxy flag put in every reply: `proxy_maybe` (mapping default: log in locally when the backend
 * is this server), `proxy` (shard default: always proxy), or `none`.
 */
export type ProxyFlag = "proxy_maybe" | "proxy" | "none"
export const PROXY_FLAGS: ReadonlyArray<ProxyFlag> = ["proxy_maybe", "proxy", "none"]

/**
 * What to do with a user already mapped to a backend whose `state != 0`:
 * `keep` (reference behaviour: the mapping is used whatever the state), `reassign` (move the user
 * to a random up backend), `tempfail` (answer `temp_fail` until the backend is up again).
 */
export type DownPolicy = "keep" | "reassign" | "tempfail"
export const DOWN_POLICIES: ReadonlyArray<DownPolicy> = ["keep", "reassign", "tempfail"]

/** The default proxy flag for a strategy (the published scripts' choice). */
export const defaultProxyFlag = (strategy: Strategy): ProxyFlag => strategy === "mapping" ? "proxy_maybe" : "proxy"

/** The routing key: the user name (mapping) or its shard number (shard). */
export type RouteKey = string | number
