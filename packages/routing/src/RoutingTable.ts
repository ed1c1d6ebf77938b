/**
 * The in-memory routing table (`table.mode = full`, the daemon's default): every `backends` row,
 * every `user_backend` key → backend id and every active move hold, read synchronously on the
 * socket hot path (a hash lookup: no fiber, no SQL). The user → backend map is a {@link RouteMap}
 * (typed arrays outside the JavaScript heap, about 50–70 bytes per user).
 *
 * Pure: no Effect, no store. It is filled by a full snapshot ({@link RoutingTable.replace}) and
 * kept in step by the store's change feed ({@link RoutingTable.apply}, one {@link Change} at a
 * time, in feed order); TableFeed.ts drives both. A lookup answers only from a loaded table, only
 * for a key whose backend id the table holds, never for a held key: anything else is a miss and
 * goes the store path.
 *
 * @since 0.2.0
 */
import type { Backend } from "./Backend.js"
import { RouteMap } from "./RouteMap.js"

/**
 * One entry of the store's change feed (`doveroute_changes`):
 * - `route`: the key's `user_backend` row now names `backendId` (`null`: the row was deleted);
 * - `backend`: backend `id` changed; `backend` is its current row (`null`: deleted);
 * - `hold`: the key's move hold now lasts until `until` (epoch ms; `null`: no hold);
 * - `reload`: the feed cannot describe the change (PostgreSQL `TRUNCATE`): reload everything.
 */
export type Change =
  | { readonly _tag: "route"; readonly id: number; readonly key: string; readonly backendId: number | null }
  | { readonly _tag: "backend"; readonly id: number; readonly backendId: number; readonly backend: Backend | null }
  | { readonly _tag: "hold"; readonly id: number; readonly key: string; readonly until: number | null }
  | { readonly _tag: "reload"; readonly id: number }

/** One `user_backend` row as the store holds it (the key in its stored spelling). */
export interface StoredRoute {
  readonly key: string
  readonly backendId: number
}

/** A full copy of the routing rows (the start of a table, or a reload); the table takes its maps over. */
export interface TableSnapshot {
  readonly backends: ReadonlyArray<Backend>
  /** key → backend id, kept outside the JavaScript heap ({@link RouteMap}). */
  readonly routes: RouteMap
  /** Active holds: key → until (epoch ms). */
  readonly holds: Map<string, number>
}

/** The table. */
export interface RoutingTable {
  /** Whether a snapshot has been loaded (before that every lookup is a miss). */
  readonly loaded: () => boolean
  /**
   * The backend `key` is on, or `undefined` (not loaded, no row, backend not in the table, key
   * held until after `now`, or the table older than its staleness bound).
   */
  readonly lookup: (key: string, now: number) => Backend | undefined
  /** Apply one feed entry; false when the entry asks for a full reload. */
  readonly apply: (change: Change) => boolean
  /** Install a full snapshot (the previous contents stay in use until this call). */
  readonly replace: (snapshot: TableSnapshot) => void
  /**
   * Add a route the store path just inserted, unless the feed changed the table since
   * `generation` (then the feed is the authority) or the key already has a row.
   */
  readonly addAssigned: (key: string, backendId: number, generation: number) => void
  /** Keys {@link addAssigned} added that the store has not confirmed yet. */
  readonly unconfirmed: () => ReadonlyArray<string>
  /**
   * The store's rows for these (unconfirmed) keys, read after the feed: each key takes the row
   * stored under exactly its spelling, or is dropped when there is none (the insert was lost, or the
   * store holds the key spelled otherwise: that row is taken under its own spelling).
   */
  readonly confirm: (keys: ReadonlyArray<string>, rows: ReadonlyArray<StoredRoute>) => void
  /** Whether the table holds a row for `key` (whatever its backend or hold). */
  readonly has: (key: string) => boolean
  /** Bumped by every applied change and every snapshot. */
  readonly generation: () => number
  /** Bound the table's age: lookups miss once `now - lastRead > maxStaleMs` (0 = no bound). */
  readonly markRead: (now: number) => void
  readonly backends: () => ReadonlyArray<Backend & { readonly users: number }>
  readonly size: () => number
  readonly stats: () => { readonly hits: number; readonly misses: number }
}

/** A new, empty (not loaded) table. `maxStaleMs` 0: answer from memory however long the store is away. */
export const makeTable = (options: { readonly maxStaleMs?: number } = {}): RoutingTable => {
  const maxStale = options.maxStaleMs ?? 0
  let backends = new Map<number, Backend>()
  let routes = new RouteMap()
  let holds = new Map<string, number>()
  let users = new Map<number, number>()
  /** Keys the login path added, not yet confirmed by the store. */
  let pending = new Set<string>()
  let loaded = false
  let gen = 0
  let lastRead = 0
  let hits = 0
  let misses = 0

  const count = (id: number | undefined, d: number) => {
    if (id !== undefined) users.set(id, (users.get(id) ?? 0) + d)
  }
  const setRoute = (key: string, backendId: number | null) => {
    const old = routes.get(key)
    if (old === backendId) return
    count(old, -1)
    if (backendId === null) routes.delete(key)
    else {
      routes.set(key, backendId)
      count(backendId, 1)
    }
  }

  return {
    loaded: () => loaded,
    lookup: (key, now) => {
      if (!loaded || (maxStale > 0 && now - lastRead > maxStale)) {
        misses++
        return undefined
      }
      const until = holds.get(key)
      const id = routes.get(key)
      const b = id === undefined || (until !== undefined && until > now) ? undefined : backends.get(id)
      if (b === undefined) misses++
      else hits++
      return b
    },
    apply: (c) => {
      gen++
      switch (c._tag) {
        case "route":
          setRoute(c.key, c.backendId)
          return true
        case "backend":
          if (c.backend === null) backends.delete(c.backendId)
          else backends.set(c.backendId, c.backend)
          return true
        case "hold":
          if (c.until === null) holds.delete(c.key)
          else holds.set(c.key, c.until)
          return true
        case "reload":
          return false
      }
    },
    replace: (s) => {
      gen++
      backends = new Map(s.backends.map((b) => [b.id, b] as const))
      routes = s.routes
      holds = s.holds
      users = new Map()
      pending = new Set()
      routes.forEachValue((id) => count(id, 1))
      loaded = true
    },
    addAssigned: (key, backendId, generation) => {
      if (generation === gen && !routes.has(key)) {
        setRoute(key, backendId)
        pending.add(key)
      }
    },
    unconfirmed: () => [...pending],
    confirm: (keys, rows) => {
      const stored = new Map(rows.map((r) => [r.key, r.backendId] as const))
      for (const key of keys) {
        if (!pending.delete(key)) continue
        const id = stored.get(key) ?? null
        if (routes.get(key) !== id) {
          gen++
          setRoute(key, id)
        }
      }
      for (const [key, id] of stored) {
        if (routes.get(key) !== id) {
          gen++
          setRoute(key, id)
        }
      }
    },
    has: (key) => routes.has(key),
    generation: () => gen,
    markRead: (now) => {
      lastRead = now
    },
    backends: () => [...backends.values()].sort((a, b) => a.id - b.id).map((b) => ({ ...b, users: users.get(b.id) ?? 0 })),
    size: () => routes.size,
    stats: () => ({ hits, misses })
  }
}
