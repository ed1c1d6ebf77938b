/**
 * Keeps a {@link RoutingTable} in step with the store: a full snapshot at start, then every
 * `refresh` one indexed read of the change feed after the last position (the store's
 * `doveroute_changes`, filled by database triggers: see the store's ChangeFeed.ts), each entry
 * applied in feed order.
 *
 * - Holes: feed ids are handed out when a change is written but become visible at commit, so an
 *   id may show up after higher ones. A missing id below the position is re-read (by id) at every
 *   refresh; one still missing after {@link GAP_WAIT_MS} (a rolled-back change, or one whose
 *   transaction stays open) makes the table reload fully. Ids that were pruned before this daemon
 *   read them (it fell behind the retained range) reload at once.
 * - Reload: the old contents keep answering until the new snapshot is installed; the feed is then
 *   re-read from {@link REPLAY} entries before the snapshot's position, so changes that committed
 *   while the snapshot was read are applied again (in order: per key, the last one wins). A hole in
 *   that replayed range is a change whose transaction was still open when the snapshot was read (so
 *   the snapshot lacks it): it is waited for like any hole. An id whose wait already ran out once
 *   (and reloaded the table) is not waited for again, so a rolled-back id does not reload the
 *   table over and over.
 * - First assignments the login path added itself ({@link RoutingTable.addAssigned}) are checked
 *   against the store's rows at the next refresh: a key the store holds under another spelling
 *   (MySQL's case-insensitive collations), or not at all (an insert lost, or a row removed without
 *   a feed entry), is dropped, so memory never keeps serving a row the store does not have.
 * - Store trouble: the table keeps answering (bounded by `maxStale` when set); one warning when
 *   reads start failing, one when they work again.
 * - Pruning: every {@link PRUNE_EVERY_MS} the daemon deletes all but the newest `keepChanges` entries.
 *
 * @since 0.2.0
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import type { StoreError } from "./RouteStore.js"
import { type Change, makeTable, type RoutingTable, type StoredRoute, type TableSnapshot } from "./RoutingTable.js"

/** The store's change feed (implemented by the store package). */
export class RouteFeed extends Context.Tag("doveroute/RouteFeed")<RouteFeed, {
  /** The newest feed id (0 when the feed is empty). */
  readonly head: Effect.Effect<number, StoreError>
  /** The oldest feed id still kept, or `undefined` when the feed is empty. */
  readonly oldest: Effect.Effect<number | undefined, StoreError>
  /** Entries with an id above `after`, in id order, at most `limit`. */
  readonly read: (after: number, limit: number) => Effect.Effect<ReadonlyArray<Change>, StoreError>
  /** The entries of these ids that exist now. */
  readonly readIds: (ids: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<Change>, StoreError>
  /**
   * The mapping rows the store holds for these keys now, each under the key as stored (on MySQL's
   * case-insensitive collations a key may match a row spelled otherwise).
   */
  readonly rowsOf: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<StoredRoute>, StoreError>
  /** Every backend, mapping and active hold. */
  readonly snapshot: Effect.Effect<TableSnapshot, StoreError>
  /** Delete all but the newest `keep` entries. */
  readonly prune: (keep: number) => Effect.Effect<void, StoreError>
}>() {}

/** Table settings (`table.*`). */
export interface TableOptions {
  /** How often the feed is read (`cache.refresh`). */
  readonly refresh: Duration.DurationInput
  /** Stop answering from memory once the last good feed read is this old; 0 = never. */
  readonly maxStale: Duration.DurationInput
  /** Feed entries kept by pruning. */
  readonly keepChanges: number
}

/** Entries read per query; a full batch is followed by the next at once. */
export const BATCH = 5000
/** How long a hole in the feed may stay before the table reloads. */
export const GAP_WAIT_MS = 10_000
/** Holes tracked at most; more reload the table. */
export const MAX_HOLES = 1000
/** Entries re-read after a reload. */
export const REPLAY = 1000
/** Keys confirmed per query (first assignments checked against the store). */
export const CONFIRM_BATCH = 500
/** How often the feed is pruned. */
export const PRUNE_EVERY_MS = 60_000

/** Feed state for metrics. */
export interface TableStatus {
  readonly loaded: boolean
  /** Whether the last feed read (or load) worked. */
  readonly storeUp: boolean
  /** When the last feed read worked (epoch ms, 0 = never). */
  readonly lastReadAt: number
  readonly reloads: number
  readonly applied: number
}

export interface RouteTableService {
  readonly table: RoutingTable
  readonly status: () => TableStatus
}

/** The daemon's routing table and its feed fiber. */
export class RouteTable extends Context.Tag("doveroute/RouteTable")<RouteTable, RouteTableService>() {
  /** The table plus its feed fiber (for the layer's lifetime); needs a {@link RouteFeed}. */
  static readonly layer = (options: TableOptions) =>
    Layer.scoped(
      RouteTable,
      Effect.gen(function*() {
        const feed = yield* RouteFeed
        const table = makeTable({ maxStaleMs: Duration.toMillis(Duration.decode(options.maxStale)) })
        const s = makeSync(feed, table, options)
        yield* Effect.forkScoped(Effect.repeat(s.step, Schedule.spaced(options.refresh)))
        return { table, status: s.status }
      })
    )
}

/** One feed reader over `table`: `step` is one refresh (load or reload when needed, then read). */
export const makeSync = (
  feed: Context.Tag.Service<RouteFeed>,
  table: RoutingTable,
  options: TableOptions,
  now: () => number = Date.now
) => {
  let pos = 0
  /** Missing ids below `pos` → when first missed. */
  const holes = new Map<number, number>()
  /** Ids whose wait ran out (and reloaded the table): not waited for again when the replay passes them. */
  const givenUp = new Set<number>()
  let needReload: string | undefined = "start"
  let replayUpTo = 0
  let up = true
  let lastReadAt = 0
  let reloads = 0
  let applied = 0
  let lastPrune = now()

  const load = (why: string) =>
    Effect.gen(function*() {
      const t0 = Date.now()
      const head = yield* feed.head
      const oldest = yield* feed.oldest
      const snap = yield* feed.snapshot
      table.replace(snap)
      holes.clear()
      replayUpTo = head
      // the replay starts REPLAY entries back, but not below the retained range (pruned ids are no holes)
      pos = Math.max(0, head - REPLAY, oldest === undefined ? 0 : oldest - 1)
      for (const id of givenUp) if (id <= pos) givenUp.delete(id)
      needReload = undefined
      reloads++
      yield* Effect.logInfo(why === "start" ? "routing table loaded" : "routing table reloaded").pipe(
        Effect.annotateLogs({ reason: why, routes: table.size(), backends: snap.backends.length, ms: Date.now() - t0 })
      )
    })

  /** Apply one entry; false (and a reload pending) when it asks for one. */
  const applyOne = (c: Change): boolean => {
    if (table.apply(c)) {
      applied++
      return true
    }
    needReload = "the feed asked for a reload (TRUNCATE)"
    return false
  }

  const readNew = Effect.gen(function*() {
    let fresh = false
    for (;;) {
      const rows = yield* feed.read(pos, BATCH)
      for (const c of rows) {
        // ids missing in the replayed range count too: a transaction open while the snapshot was
        // read commits its change later, and the snapshot does not have it
        const from = pos + 1
        if (c.id - from > MAX_HOLES) {
          needReload = `more than ${MAX_HOLES} feed entries missing (pruned, or rolled back)`
          return fresh
        }
        for (let id = from; id < c.id; id++) {
          if (givenUp.has(id)) continue
          holes.set(id, now())
          fresh = true
        }
        pos = c.id
        // a reload entry the snapshot already covers (re-read after a reload) is done
        if (c._tag === "reload" && c.id <= replayUpTo) continue
        if (!applyOne(c)) return fresh
      }
      if (holes.size > MAX_HOLES) {
        needReload = `more than ${MAX_HOLES} missing feed entries`
        return fresh
      }
      if (rows.length < BATCH) return fresh
    }
  })

  const readHoles = Effect.gen(function*() {
    if (holes.size === 0) return
    for (const c of yield* feed.readIds([...holes.keys()])) {
      holes.delete(c.id)
      if (!applyOne(c)) return
    }
    const t = now()
    const expired = [...holes].filter(([, since]) => t - since > GAP_WAIT_MS).map(([id]) => id)
    if (expired.length > 0) {
      for (const id of expired) givenUp.add(id)
      needReload = `a feed entry stayed missing for ${GAP_WAIT_MS / 1000} s`
    }
  })

  /** Check the login path's own first assignments against the store's rows (see RoutingTable.confirm). */
  const confirmAssigned = Effect.gen(function*() {
    const keys = table.unconfirmed()
    for (let i = 0; i < keys.length; i += CONFIRM_BATCH) {
      const batch = keys.slice(i, i + CONFIRM_BATCH)
      table.confirm(batch, yield* feed.rowsOf(batch))
    }
  })

  const read = Effect.gen(function*() {
    if (needReload !== undefined) yield* load(needReload)
    const newHoles = yield* readNew
    if (newHoles && holes.size > 0 && needReload === undefined) {
      // entries this daemon never read were pruned: it fell behind the retained range
      const oldest = yield* feed.oldest
      if (oldest !== undefined && oldest > Math.min(...holes.keys())) needReload = "fell behind the pruned feed"
    }
    if (needReload === undefined) yield* readHoles
    if (needReload !== undefined) yield* load(needReload)
    yield* confirmAssigned
    table.markRead(now())
    lastReadAt = now()
    if (now() - lastPrune > PRUNE_EVERY_MS) {
      lastPrune = now()
      yield* Effect.ignore(feed.prune(options.keepChanges))
    }
  })

  const step = read.pipe(
    Effect.tap(() =>
      up ? Effect.void : Effect.zipRight(
        Effect.sync(() => (up = true)),
        Effect.logWarning("store reachable again: the routing table is in step")
      )
    ),
    Effect.catchAll((e) =>
      up
        ? Effect.zipRight(
          Effect.sync(() => (up = false)),
          Effect.logWarning(
            table.loaded()
              ? "store unreachable: routing known users from the in-memory table, first logins temp_fail"
              : "store unreachable: the routing table is not loaded yet"
          ).pipe(Effect.annotateLogs({ reason: e.reason, detail: e.detail }))
        )
        : Effect.void
    )
  )

  return {
    step,
    status: (): TableStatus => ({ loaded: table.loaded(), storeUp: up, lastReadAt, reloads, applied })
  }
}
