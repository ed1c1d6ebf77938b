/**
 * Per-user tags (`doveroute_user_tags`, migration 0011; Tags.ts in routing says what they decide):
 * read, set or clear one (`doveroute user tag`), list them (`user tags`), page through them
 * (`dump`), and import them in bulk (`import`, a third CSV column). Under strategy shard every
 * write is refused (tags need mapping).
 *
 * @since 0.3.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { type RouteKey, type StoreError, type Strategy, validTag } from "@doveroute/routing"
import { Effect } from "effect"
import { AdminError, badTag, wrap } from "./AdminOps.js"
import { type ImportCounts, importTally, inChunks } from "./ImportTally.js"
import { forEachKeysetPage } from "./KeysetPages.js"
import { readUserTags, USER_TAGS_TABLE } from "./Schema.js"

/** A user's tag in the store (`doveroute_user_tags`), by routing key; null when none. */
export const userTag = (key: RouteKey) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ tag: string }>`SELECT tag FROM ${sql(USER_TAGS_TABLE)} WHERE user_name = ${String(key)}`.pipe(wrap("read user tag"))
    return rows.length === 0 ? null : String(rows[0]!.tag)
  })

/** Every user tag of the store, ordered by user. */
export const listUserTags = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ k: string; tag: string }>`SELECT user_name AS k, tag FROM ${sql(USER_TAGS_TABLE)} ORDER BY user_name`.pipe(
    wrap("list user tags")
  )
  return rows.map((r) => ({ user: String(r.k), tag: String(r.tag) }))
})

const needsMapping = (strategy: Strategy) =>
  strategy === "mapping"
    ? Effect.void
    : Effect.fail(new AdminError({ reason: "Invalid", detail: "user tags need strategy mapping (a shard holds users of every tag)" }))

/**
 * Set (a tag) or clear (null) a user's tag in the store, by routing key; before and after.
 * `dryRun`: nothing written. Fails `Invalid` for a bad tag and under strategy shard.
 */
export const setUserTag = (strategy: Strategy, key: RouteKey, tag: string | null, dryRun = false) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* needsMapping(strategy)
    if (tag !== null && !validTag(tag)) return yield* badTag
    const before = yield* userTag(key)
    if (!dryRun && before !== tag) {
      const k = String(key)
      yield* sql.withTransaction(
        tag === null
          ? sql`DELETE FROM ${sql(USER_TAGS_TABLE)} WHERE user_name = ${k}`
          : before === null
          ? sql`INSERT INTO ${sql(USER_TAGS_TABLE)} ${sql.insert({ user_name: k, tag })}`
          : sql`UPDATE ${sql(USER_TAGS_TABLE)} SET tag = ${tag} WHERE user_name = ${k}`
      ).pipe(wrap(tag === null ? "clear user tag" : "set user tag"))
    }
    return { before, after: dryRun ? tag : yield* userTag(key), changed: before !== tag, dryRun }
  })

/** Whether the store has any user tag (`doveroute_user_tags` has a row). */
export const hasUserTags = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ n: unknown }>`SELECT 1 AS n FROM ${sql(USER_TAGS_TABLE)} LIMIT 1`.pipe(wrap("read user tags"))
  return rows.length > 0
})

/**
 * Every user tag in user order, `pageSize` rows at a time (keyset pagination on the primary key),
 * as {@link forEachMappingPage}: a dump of a million tagged users holds one page in memory.
 */
export const forEachUserTagPage = <E, R>(
  pageSize: number,
  f: (page: ReadonlyArray<{ readonly user: string; readonly tag: string }>) => Effect.Effect<void, E, R>
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const limit = sql.literal(String(Math.max(1, Math.floor(pageSize))))
    const after = (last: string | undefined) => (last === undefined ? sql`` : sql`WHERE user_name > ${last}`)
    return forEachKeysetPage(
      pageSize,
      (last: string | undefined) =>
        sql<{ k: string; t: string }>`SELECT user_name AS k, tag AS t FROM ${sql(USER_TAGS_TABLE)} ${after(last)}
          ORDER BY user_name LIMIT ${limit}`.pipe(
          wrap("list user tags"),
          Effect.map((rows) => rows.map((r) => ({ user: String(r.k), tag: String(r.t) })))
        ),
      (row) => row.user,
      f
    )
  })

/** One user tag of an import file: the routing key as written (no normalisation, like a mapping row). */
export interface TagRow {
  readonly key: string
  readonly tag: string
}

/** Result of importing user tags: a conflict names the tag the store has (`current`). */
export type TagImportReport = ImportCounts<
  { readonly key: string; readonly tag: string; readonly current: string },
  { readonly key: string; readonly tag: string; readonly error: string }
>

/** A user-tag import in progress: `add` rows in any number of calls (one chunk in memory), then `report`. */
export interface TagImporter {
  readonly add: (rows: ReadonlyArray<TagRow>) => Effect.Effect<void, StoreError | AdminError>
  readonly report: () => TagImportReport
}

/**
 * Idempotent bulk import of user tags (`doveroute_user_tags`), as {@link importer} for mappings: a
 * user without a tag gets it; a user with that tag is unchanged; a user with another tag is a
 * conflict (reported, not changed: `doveroute user tag` changes it). A malformed tag is an error
 * row. Each chunk is one SELECT and one multi-row insert-or-ignore in a transaction. Refused
 * (`Invalid`) under strategy shard, like `doveroute user tag`.
 */
export const tagImporter = (strategy: Strategy, options: { readonly dryRun?: boolean } = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dryInserted = options.dryRun === true ? new Map<string, string>() : undefined
    const t = importTally<{ key: string; tag: string; current: string }, { key: string; tag: string; error: string }>()
    const insertChunk = (rows: ReadonlyArray<TagRow>) => {
      const values = sql.insert(rows.map((r) => ({ user_name: r.key, tag: r.tag })))
      return sql.onDialectOrElse({
        mysql: () => sql`INSERT INTO ${sql(USER_TAGS_TABLE)} ${values} ON DUPLICATE KEY UPDATE user_name = user_name`,
        orElse: () => sql`INSERT INTO ${sql(USER_TAGS_TABLE)} ${values} ON CONFLICT DO NOTHING`
      })
    }
    const addChunk = (chunk: ReadonlyArray<TagRow>) =>
      Effect.gen(function*() {
        if (chunk.length === 0) return
        yield* needsMapping(strategy)
        const keys = [...new Set(chunk.map((r) => r.key))]
        // keyed as the file spells them (on MySQL/MariaDB `Alice` finds the row of `alice`)
        const current = new Map<string, string>(yield* readUserTags(keys).pipe(Effect.provideService(SqlClient.SqlClient, sql), wrap("read user tags")))
        if (dryInserted !== undefined) for (const k of keys) if (!current.has(k) && dryInserted.has(k)) current.set(k, dryInserted.get(k)!)
        const toInsert: Array<TagRow> = []
        for (const r of chunk) {
          t.counts.total++
          if (!validTag(r.tag)) {
            t.error({ key: r.key, tag: r.tag, error: "invalid tag" })
            continue
          }
          const cur = current.get(r.key)
          if (cur === undefined) {
            current.set(r.key, r.tag)
            dryInserted?.set(r.key, r.tag)
            toInsert.push(r)
          } else if (cur === r.tag) t.counts.unchanged++
          else t.conflict({ key: r.key, tag: r.tag, current: cur })
        }
        if (toInsert.length > 0 && options.dryRun !== true) {
          yield* sql.withTransaction(insertChunk(toInsert)).pipe(wrap("insert user tags"))
          // what the store took: a row the insert ignored (another spelling of a user, under a
          // case-insensitive collation; a row written meanwhile) keeps its tag and is a conflict
          const stored = yield* readUserTags(toInsert.map((r) => r.key)).pipe(Effect.provideService(SqlClient.SqlClient, sql), wrap("read user tags"))
          for (const r of toInsert) {
            const got = stored.get(r.key)
            if (got === r.tag) t.counts.inserted++
            else t.conflict({ key: r.key, tag: r.tag, current: got ?? "(none)" })
          }
        } else t.counts.inserted += toInsert.length
      })
    return { add: inChunks(addChunk), report: t.report } satisfies TagImporter
  })
