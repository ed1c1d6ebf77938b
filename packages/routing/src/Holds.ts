/**
 * Login holds during a move with kick (`doveroute user move --kick`): while a hold is active the
 * router answers the key with a temporary failure (`RouteError` reason `Held`), so no new session
 * starts anywhere until the user's old sessions are kicked. A hold ends when the move command
 * removes it, or at its expiry time if that command died.
 *
 * @since 0.1.0
 */
import { Context, type Effect, type Option } from "effect"
import type { StoreError } from "./RouteStore.js"
import type { RouteKey } from "./Strategy.js"

/** Optional store service: the active hold of a key (expiry in epoch ms), if any. */
export class RouteHolds extends Context.Tag("doveroute/RouteHolds")<RouteHolds, {
  readonly heldUntil: (key: RouteKey) => Effect.Effect<Option.Option<number>, StoreError>
  /** The active holds of several keys in one query: `String(key)` → expiry (keys without a hold are absent). */
  readonly heldMany?: (keys: ReadonlyArray<RouteKey>) => Effect.Effect<ReadonlyMap<string, number>, StoreError>
}>() {}

/** Username normalisation applied before the routing key is computed (both off by default). */
export interface Normalize {
  /** `%Lu`: lower-case the whole name. */
  readonly lowercase: boolean
  /** `%n`: drop `@domain` (everything from the last `@`). */
  readonly stripDomain: boolean
}

export const NO_NORMALIZE: Normalize = { lowercase: false, stripDomain: false }

/** The name the key is computed from. */
export const normalizeUser = (user: string, n: Normalize = NO_NORMALIZE): string => {
  let u = user
  if (n.stripDomain) {
    const at = u.lastIndexOf("@")
    if (at > 0) u = u.slice(0, at)
  }
  if (n.lowercase) u = u.toLowerCase()
  return u
}
