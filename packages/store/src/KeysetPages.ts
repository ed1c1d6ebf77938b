/**
 * Keyset pagination for streaming reads (dump, flush, user tags): one page in memory at a time,
 * each page read after the last key of the one before (an index range scan, never OFFSET).
 *
 * @since 0.3.0
 */
import { Effect } from "effect"

/**
 * Keyset pagination: `page(after)` reads the rows after key `after` (`undefined`: from the start),
 * at most `pageSize`, in key order; `f` gets each page; it stops at a short page.
 */
export const forEachKeysetPage = <T, K, E, R, E2, R2>(
  pageSize: number,
  page: (after: K | undefined) => Effect.Effect<ReadonlyArray<T>, E2, R2>,
  keyOf: (row: T) => K,
  f: (page: ReadonlyArray<T>) => Effect.Effect<void, E, R>
): Effect.Effect<void, E | E2, R | R2> =>
  Effect.gen(function*() {
    let last: K | undefined
    for (;;) {
      const rows = yield* page(last)
      if (rows.length === 0) return
      yield* f(rows)
      if (rows.length < pageSize) return
      last = keyOf(rows[rows.length - 1]!)
    }
  })
