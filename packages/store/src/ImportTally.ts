/**
 * What every bulk import shares (mappings: AdminOps.ts `importer`; user tags: UserTags.ts
 * `tagImporter`): the report's shape, how many rows go to one statement, and the bookkeeping of
 * counts with the first conflicts and errors listed one by one.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"

/** Result of an import. `conflicts`/`errors` list the first {@link IMPORT_DETAILS}; the counts are complete. */
export interface ImportCounts<C, X> {
  readonly total: number
  readonly inserted: number
  readonly unchanged: number
  readonly conflictCount: number
  readonly errorCount: number
  readonly conflicts: ReadonlyArray<C>
  readonly errors: ReadonlyArray<X>
}

/** How many conflicts and errors an import report lists one by one (all are counted). */
export const IMPORT_DETAILS = 1000

/** Rows per SELECT + multi-row INSERT of an import. */
export const IMPORT_CHUNK = 500

/** The bookkeeping of an import: counts, and the first {@link IMPORT_DETAILS} conflicts and errors. */
export const importTally = <C, X>() => {
  const counts = { total: 0, inserted: 0, unchanged: 0, conflictCount: 0, errorCount: 0 }
  const conflicts: Array<C> = []
  const errors: Array<X> = []
  return {
    counts,
    conflict: (c: C) => {
      if (counts.conflictCount++ < IMPORT_DETAILS) conflicts.push(c)
    },
    error: (x: X) => {
      if (counts.errorCount++ < IMPORT_DETAILS) errors.push(x)
    },
    report: () => ({ ...counts, conflicts, errors })
  }
}

/** `add` for an importer: any number of rows, handed to `addChunk` {@link IMPORT_CHUNK} at a time. */
export const inChunks = <T, E, R>(addChunk: (chunk: ReadonlyArray<T>) => Effect.Effect<void, E, R>) => (rows: ReadonlyArray<T>) =>
  Effect.gen(function*() {
    for (let i = 0; i < rows.length; i += IMPORT_CHUNK) yield* addChunk(rows.slice(i, i + IMPORT_CHUNK))
  })
