/**
 * Why a lookup answered `temp_fail`: one closed union from the router to the front-ends, the
 * metrics (`result` label, `store_errors` counter) and the log lines' `reason=`.
 *
 * - The router's reasons ({@link RouteError}): `NoBackend`, `BackendDown`, `InvalidUser`, `InvalidTag`, `Held`.
 * - The store's reasons ({@link StoreError}): `Unavailable`, `Timeout` (one statement over
 *   `query_timeout`), `Integrity`, `Query` — the only ones counted as store errors.
 * - `LookupTimeout`: the whole routing decision missed its deadline (`lookup_timeout`).
 * - `Internal`: a defect in doveroute.
 *
 * @since 0.1.0
 */
import type { RouteError } from "./Router.js"
import type { StoreError } from "./RouteStore.js"

export type StoreErrorReason = StoreError["reason"]
export type RouteErrorReason = RouteError["reason"]
export type TempFailReason = RouteErrorReason | StoreErrorReason | "LookupTimeout" | "Internal"

const STORE_REASONS: Readonly<Record<TempFailReason, boolean>> = {
  NoBackend: false,
  BackendDown: false,
  InvalidUser: false,
  InvalidTag: false,
  Held: false,
  Unavailable: true,
  Timeout: true,
  Integrity: true,
  Query: true,
  LookupTimeout: false,
  Internal: false
}

/** `true` for the reasons that mean the store failed (the `store_errors` counter). */
export const isStoreErrorReason = (reason: TempFailReason): reason is StoreErrorReason => STORE_REASONS[reason]
