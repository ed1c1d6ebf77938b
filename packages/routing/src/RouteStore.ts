/**
 * The store interface the routing core depends on. Implementations live in `@doveroute/store`
 * (SQLite, PostgreSQL, MySQL/MariaDB); all work on the Lua director's own tables.
 *
 * @since 0.1.0
 */
import { Context, Data, type Effect, type Option } from "effect"
import type { Backend } from "./Backend.js"
import type { RouteKey, Strategy } from "./Strategy.js"

/**
 * A store failure, classified once at the store boundary. Every front-end turns it into a
 * temporary failure (`temp_fail` / dict `F`), never into a wrong backend or "unknown user".
 *
 * - `Unavailable`: cannot reach or open the database (connection refused, file unreadable).
 * - `Timeout`: a query exceeded the configured timeout.
 * - `Integrity`: the data breaks doveroute's rules (duplicate rows for one user, a mapping that
 *   points at a missing backend); reported, never silently fixed.
 * - `Query`: any other SQL error.
 */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly reason: "Unavailable" | "Timeout" | "Integrity" | "Query"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `store ${this.reason.toLowerCase()}: ${this.detail}`
  }
}

/** The routing core's view of the store. One instance serves one strategy (one `user_backend` variant). */
export interface RouteStoreService {
  readonly strategy: Strategy
  /**
   * Q1+Q4: the backend the key is mapped to, or `None`. Fails with `Integrity` when the row points
   * at a backend id that does not exist.
   */
  readonly findAssigned: (key: RouteKey) => Effect.Effect<Option.Option<Backend>, StoreError>
  /** Every backend, ordered by id. */
  readonly listBackends: Effect.Effect<ReadonlyArray<Backend>, StoreError>
  /**
   * Race-safe first assignment: insert `(backendId, key)` unless the key already has a row, then
   * read the row that is stored. Concurrent callers for one key all get the same backend.
   */
  readonly assign: (key: RouteKey, backendId: number) => Effect.Effect<Backend, StoreError>
  /**
   * Compare-and-set move: re-point the key from `fromId` to `toId` only if it is still on `fromId`;
   * returns the backend the key is on afterwards.
   */
  readonly reassign: (key: RouteKey, fromId: number, toId: number) => Effect.Effect<Backend, StoreError>
  /**
   * Race-safe first assignment of a group of keys in as few statements as the engine allows: one
   * multi-row insert-ignore, then the stored rows read back (PostgreSQL: both in one statement).
   * The answer maps `String(key)` to the backend of the stored row, or `null` for a row naming a
   * deleted backend; a key the read-back did not see (a concurrent insert that committed after it
   * started, a key the collation folds) is absent: the caller routes it one by one.
   */
  readonly assignMany?: (
    rows: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>
  ) => Effect.Effect<ReadonlyMap<string, Backend | null>, StoreError>
  /**
   * The store's per-user tags (`doveroute_user_tags`, Tags.ts) of these keys: `String(key)` → tag
   * (keys without one are absent). Absent: the store keeps no per-user tags.
   */
  readonly userTags?: (keys: ReadonlyArray<RouteKey>) => Effect.Effect<ReadonlyMap<string, string>, StoreError>
  /**
   * What a group of first logins reads before it places (Router `runGroup`), in one call where the
   * store can make that cheap (SQLite: plain synchronous statements on the daemon's own
   * connection). Only what `want` names is read: `holds` (`doveroute_moves`, `hold_logins = 1`:
   * `String(key)` → `expires_at` in ms), `weights` (`backends.weight` by id; empty when the column
   * is missing, i.e. every weight 1) and `userTags` (as {@link userTags}). Absent: the router makes
   * the separate reads (`heldMany`, `listBackends`, `PlacementInfo.weights`, `userTags`).
   */
  readonly groupReads?: (keys: ReadonlyArray<RouteKey>, want: GroupReadsWant) => Effect.Effect<GroupReads, StoreError>
  /** Groups of first logins that may be in flight at once (default 1). */
  readonly groupsInFlight?: number
  /**
   * The longest a first login waits for its group, queueing included (the store's query timeout):
   * then it fails `Timeout` (temp_fail) while the group finishes in the background.
   */
  readonly groupWaitMs?: number
}

/** What a group asks {@link RouteStoreService.groupReads} for besides the backends. */
export interface GroupReadsWant {
  readonly holds: boolean
  readonly weights: boolean
  readonly userTags: boolean
}

/** The answer of {@link RouteStoreService.groupReads}; a part not asked for is empty (weights: absent). */
export interface GroupReads {
  /** Every backend, ordered by id. */
  readonly backends: ReadonlyArray<Backend>
  readonly weights?: ReadonlyMap<number, number>
  readonly holds: ReadonlyMap<string, number>
  readonly userTags: ReadonlyMap<string, string>
}

/** Service tag for {@link RouteStoreService}. */
export class RouteStore extends Context.Tag("doveroute/RouteStore")<RouteStore, RouteStoreService>() {}
