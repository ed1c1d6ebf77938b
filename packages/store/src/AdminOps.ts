/**
 * Operator commands on the store (the `doveroute backend|user|shard|status|dump|import` CLI):
 * backends by hostname or id, states, weights, check ports, removal, compare-and-set moves with a per-key move
 * lock, unassign, listings and bulk import.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { ReasonError, type RouteKey, type StoreError, type Strategy, validTag } from "@doveroute/routing"
import { Effect } from "effect"
import { validCheckPort } from "./CheckPort.js"
import { classifySqlError } from "./Classify.js"
import { addBackend } from "./Admin.js"
import { MOVES_TABLE, readRoutesVersion, stateName } from "./Operations.js"
import { insertIgnoreStatement } from "./SqlRouteStore.js"
import { IMPORT_CHUNK, type ImportCounts, importTally, inChunks } from "./ImportTally.js"
import { forEachKeysetPage } from "./KeysetPages.js"
import { keyColumn, tableColumns } from "./Schema.js"

/**
 * An operator-level failure. Exit codes follow `doveadm director`: 68 not found, 75 try again
 * (a move of the same user in progress), 1 otherwise.
 */
export class AdminError extends ReasonError("AdminError")<"NotFound" | "TryAgain" | "Refused" | "Invalid">() {
  get exitCode(): number {
    return this.reason === "NotFound" ? 68 : this.reason === "TryAgain" ? 75 : 1
  }
}

/** Classify an SQL failure of an admin statement (`what` names it) as a {@link StoreError}. */
export const wrap = (what: string) => <A, E, R>(eff: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | StoreError, R> =>
  Effect.mapError(eff, (e) =>
    (e as { _tag?: unknown })?._tag === "SqlError" ? classifySqlError(what)(e as SqlError) : (e as Exclude<E, SqlError>))

/** A backend as `backend list` shows it. */
export interface BackendRow {
  readonly id: number
  readonly hostname: string
  readonly hostip: string | null
  readonly state: number
  readonly stateName: string
  readonly weight: number
  /** Health-check port of its own (`check_port`); null = the checker's `health.port`. */
  readonly checkPort: number | null
  readonly users: number
  readonly lastHealth: string | null
  readonly lastHealthAt: string | null
  /** The backend's pool (`backends.tag`, migration 0011); null = untagged. */
  readonly tag: string | null
}

const str = (v: unknown): string | null => v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v)

/** Every backend with its mapped rows, ordered by id. */
export const listBackends = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Record<string, unknown>>`
    SELECT b.id, b.hostname, b.hostip, b.state, b.weight, b.check_port, b.last_health, b.last_health_at, b.tag,
      (SELECT COUNT(*) FROM user_backend ub WHERE ub.backend_id = b.id) AS users
    FROM backends b ORDER BY b.id`.pipe(wrap("list backends"))
  return rows.map((r): BackendRow => ({
    id: Number(r["id"]),
    hostname: String(r["hostname"]),
    hostip: str(r["hostip"]),
    state: Number(r["state"] ?? 0),
    stateName: stateName(Number(r["state"] ?? 0)),
    weight: Number(r["weight"] ?? 1),
    checkPort: r["check_port"] === null || r["check_port"] === undefined ? null : Number(r["check_port"]),
    users: Number(r["users"]),
    lastHealth: str(r["last_health"]),
    lastHealthAt: str(r["last_health_at"]),
    tag: str(r["tag"])
  }))
})

/** The backend named by hostname or id; fails `NotFound`. */
export const resolveBackend = (name: string) =>
  Effect.gen(function*() {
    const all = yield* listBackends
    const byName = all.filter((b) => b.hostname === name)
    if (byName.length === 1) return byName[0]!
    if (byName.length > 1) {
      return yield* new AdminError({ reason: "Invalid", detail: `several backends are named ${name} (ids ${byName.map((b) => b.id).join(", ")}); use the id` })
    }
    if (/^\d+$/.test(name)) {
      const byId = all.find((b) => b.id === Number(name))
      if (byId !== undefined) return byId
    }
    return yield* new AdminError({ reason: "NotFound", detail: `no backend with hostname or id ${JSON.stringify(name)}` })
  })

/**
 * Add a backend (optionally updating an existing one of that hostname: `dump` output re-runs).
 * `checkPort` undefined leaves an existing backend's check port as it is.
 */
export const addOrUpdateBackend = (b: {
  hostname: string
  hostip: string | null
  state: number
  weight: number
  checkPort?: number | null | undefined
  /** The backend's tag (null: untagged); undefined leaves an existing backend's tag as it is. */
  tag?: string | null | undefined
  orUpdate: boolean
}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (!Number.isInteger(b.weight) || b.weight < 0) return yield* new AdminError({ reason: "Invalid", detail: "weight must be an integer ≥ 0" })
    if (b.checkPort !== undefined && !validCheckPort(b.checkPort)) return yield* badCheckPort
    if (b.tag !== undefined && b.tag !== null && !validTag(b.tag)) return yield* badTag
    const existing = (yield* listBackends).find((x) => x.hostname === b.hostname)
    let id: number
    if (existing !== undefined) {
      if (!b.orUpdate) {
        return yield* new AdminError({ reason: "Refused", detail: `backend ${b.hostname} exists already (id ${existing.id}); use --or-update to change it` })
      }
      yield* sql`UPDATE backends SET hostip = ${b.hostip}, state = ${b.state}, weight = ${b.weight} WHERE id = ${existing.id}`.pipe(wrap("update backend"))
      id = existing.id
    } else {
      id = (yield* addBackend({ hostname: b.hostname, hostip: b.hostip, state: b.state })).id
      if (b.weight !== 1) yield* sql`UPDATE backends SET weight = ${b.weight} WHERE id = ${id}`.pipe(wrap("set weight"))
    }
    if (b.checkPort !== undefined) yield* sql`UPDATE backends SET check_port = ${b.checkPort} WHERE id = ${id}`.pipe(wrap("set check port"))
    if (b.tag !== undefined) yield* sql`UPDATE backends SET tag = ${b.tag} WHERE id = ${id}`.pipe(wrap("set tag"))
    return { backend: yield* resolveBackend(String(id)), created: existing === undefined }
  })

const badCheckPort = new AdminError({ reason: "Invalid", detail: "check port must be 1-65535 (or none)" })
export const badTag = new AdminError({ reason: "Invalid", detail: "a tag is 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit (or none)" })

/** The `backends` columns a `backend set-*` command writes, by their {@link BackendRow} field. */
const SETTABLE = { checkPort: "check_port", state: "state", weight: "weight", tag: "tag" } as const

/**
 * Write one settable column of a backend (by hostname or id) when it differs, after `invalid` (the
 * value's refusal, if any); the backend before and after.
 */
const setColumn = <K extends keyof typeof SETTABLE>(
  name: string,
  field: K,
  value: BackendRow[K],
  invalid: AdminError | undefined,
  dryRun = false
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (invalid !== undefined) return yield* invalid
    const b = yield* resolveBackend(name)
    if (dryRun) return { before: b, after: { ...b, [field]: value } as BackendRow }
    const column = SETTABLE[field]
    if (b[field] !== value) yield* sql`UPDATE backends SET ${sql(column)} = ${value} WHERE id = ${b.id}`.pipe(wrap(`set ${column.replace("_", " ")}`))
    return { before: b, after: yield* resolveBackend(String(b.id)) }
  })

/** Set `check_port` (1-65535), or clear it (null: the checker's `health.port`). */
export const setCheckPort = (name: string, port: number | null) =>
  setColumn(name, "checkPort", port, validCheckPort(port) ? undefined : badCheckPort)

/**
 * Set a backend's tag, or clear it (null: untagged). Its mapped users stay on it (routing's
 * Tags.ts); new users of the tag may be placed on it from now on. `dryRun`: nothing written.
 */
export const setTag = (name: string, tag: string | null, dryRun = false) =>
  setColumn(name, "tag", tag, tag === null || validTag(tag) ? undefined : badTag, dryRun)

/** Set `state` (0 up, 1 down, 2 drain). */
export const setState = (name: string, state: number) => setColumn(name, "state", state, undefined)

/** Set `weight` (≥ 0; 0 = no new users). */
export const setWeight = (name: string, weight: number) =>
  setColumn(
    name,
    "weight",
    weight,
    Number.isInteger(weight) && weight >= 0 ? undefined : new AdminError({ reason: "Invalid", detail: "weight must be an integer ≥ 0" })
  )

/**
 * Remove a backend. With mapped rows it refuses unless `moveTo` (every row re-pointed there) or
 * `unassign` (rows deleted: the users get a new backend at their next login). `dryRun`: the same
 * checks and report, nothing written.
 */
export const removeBackend = (
  name: string,
  opts: { readonly moveTo?: string | undefined; readonly unassign: boolean; readonly dryRun?: boolean | undefined }
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const b = yield* resolveBackend(name)
    const target = opts.moveTo !== undefined ? yield* resolveBackend(opts.moveTo) : undefined
    if (target !== undefined && target.id === b.id) return yield* new AdminError({ reason: "Invalid", detail: "--move-users-to names the backend being removed" })
    if (target !== undefined && opts.unassign) return yield* new AdminError({ reason: "Invalid", detail: "give --move-users-to or --unassign-users, not both" })
    return yield* sql.withTransaction(Effect.gen(function*() {
      const n = Number((yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM user_backend WHERE backend_id = ${b.id}`)[0]?.n ?? 0)
      if (n > 0 && target === undefined && !opts.unassign) {
        return yield* new AdminError({
          reason: "Refused",
          detail: `backend ${b.hostname} (id ${b.id}) has ${n} mapped users; give --move-users-to BACKEND or --unassign-users`
        })
      }
      const report = { removed: b, users: n, movedTo: target ?? null, unassigned: opts.unassign ? n : 0, dryRun: opts.dryRun === true }
      if (opts.dryRun === true) return report
      if (n > 0 && target !== undefined) yield* sql`UPDATE user_backend SET backend_id = ${target.id} WHERE backend_id = ${b.id}`
      if (n > 0 && opts.unassign) yield* sql`DELETE FROM user_backend WHERE backend_id = ${b.id}`
      yield* sql`DELETE FROM backends WHERE id = ${b.id}`
      return report
    })).pipe(wrap("remove backend"))
  })

/** The backend a key is mapped to (`undefined`: no row), with every row for diagnostics. */
export const findKey = (strategy: Strategy, key: RouteKey) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const rows = yield* sql<{ backend_id: number | string }>`SELECT backend_id FROM user_backend WHERE ${col} = ${key}`.pipe(wrap("read mapping"))
    const ids = rows.map((r) => Number(r.backend_id))
    const all = yield* listBackends
    return { backendIds: ids, backend: ids.length === 1 ? all.find((b) => b.id === ids[0]) ?? null : null }
  })

/** The backend ids of each key's rows (keys without a row are absent), 500 keys per query. */
export const rowsOfKeys = (strategy: Strategy, keys: ReadonlyArray<RouteKey>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = keyColumn(strategy)
    const out = new Map<string, Array<number>>()
    for (let i = 0; i < keys.length; i += 500) {
      const rows = yield* sql<{ k: string | number; b: number | string }>`SELECT ${sql(col)} AS k, backend_id AS b FROM user_backend
        WHERE ${sql.in(col, keys.slice(i, i + 500))}`.pipe(wrap("read mappings"))
      for (const r of rows) out.set(String(r.k), [...(out.get(String(r.k)) ?? []), Number(r.b)])
    }
    return out as ReadonlyMap<string, ReadonlyArray<number>>
  })

/** A move in progress of `key` (its lock row), if any. */
export const moveInProgress = (key: RouteKey) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if ((yield* tableColumns(MOVES_TABLE).pipe(wrap("check moves table"))).length === 0) return null
    const rows = yield* sql<{ h: number | string; e: number | string }>`SELECT hold_logins AS h, expires_at AS e FROM ${sql(MOVES_TABLE)}
      WHERE route_key = ${String(key)}`.pipe(wrap("read move lock"))
    const r = rows[0]
    return r === undefined || Number(r.e) <= Date.now() ? null : { holdLogins: Number(r.h) === 1, expiresAt: Number(r.e) }
  })

/**
 * The key as `user_backend` stores it: on MySQL/MariaDB a case-insensitive collation finds
 * `alice@x` for `Alice@x`, and the feed, the routing tables and the holds all name the stored
 * spelling. A key without a row (or a shard key) is returned as given.
 */
export const storedKey = (strategy: Strategy, key: RouteKey) =>
  Effect.gen(function*() {
    if (strategy !== "mapping") return String(key)
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ k: string }>`SELECT ${sql(keyColumn(strategy))} AS k FROM user_backend WHERE ${sql(keyColumn(strategy))} = ${key}`.pipe(
      wrap("read mapping")
    )
    return rows.length === 1 ? String(rows[0]!.k) : String(key)
  })

/**
 * Take the move lock of `key` until `expiresAt` (epoch ms); with `hold` the router answers the key
 * with temp_fail until the lock is released. Fails `TryAgain` when another move holds it. The lock
 * (and its hold) names the key as `user_backend` stores it ({@link storedKey}), so that the hold
 * reaches the routing tables under the key they route.
 */
export const lockKey = (key: RouteKey, hold: boolean, expiresAt: number, strategy: Strategy = typeof key === "number" ? "shard" : "mapping") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const k = yield* storedKey(strategy, key)
    yield* sql`DELETE FROM ${sql(MOVES_TABLE)} WHERE route_key = ${k} AND expires_at < ${Date.now()}`.pipe(wrap("expire move lock"))
    yield* sql`INSERT INTO ${sql(MOVES_TABLE)} (route_key, hold_logins, expires_at) VALUES (${k}, ${hold ? 1 : 0}, ${expiresAt})`.pipe(
      Effect.catchAll(() => new AdminError({ reason: "TryAgain", detail: `${k} is already being moved by another command; try again` }))
    )
  })

/** Release the move lock of `key` (and its login hold). */
export const unlockKey = (key: RouteKey) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`DELETE FROM ${sql(MOVES_TABLE)} WHERE route_key = ${String(key)}`.pipe(wrap("release move lock"), Effect.asVoid))

/**
 * Compare-and-set move of `key` to backend `toId` (the caller holds the move lock): a key already
 * there is a no-op; an unmapped key gets a row; otherwise `UPDATE … WHERE backend_id = <old>`.
 * Fails `TryAgain` when the row changed meanwhile. With `expectFrom` (a flush) a key no longer on
 * that backend is left alone: `stale` is true, nothing written.
 */
export const casMove = (strategy: Strategy, key: RouteKey, toId: number, expectFrom?: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const before = yield* findKey(strategy, key)
    if (before.backendIds.length > 1) {
      return yield* new AdminError({ reason: "Refused", detail: `${String(key)} has several rows (backends ${before.backendIds.join(", ")}); fix them first` })
    }
    const from = before.backendIds[0]
    if (expectFrom !== undefined && from !== expectFrom) return { from: from ?? null, to: toId, changed: false, stale: true }
    if (from === toId) return { from: from ?? null, to: toId, changed: false, stale: false }
    if (from === undefined) yield* insertIgnoreStatement(sql, strategy, key, toId).pipe(wrap("insert mapping"))
    else yield* sql`UPDATE user_backend SET backend_id = ${toId} WHERE ${col} = ${key} AND backend_id = ${from}`.pipe(wrap("move mapping"))
    const after = yield* findKey(strategy, key)
    if (after.backendIds.length !== 1 || after.backendIds[0] !== toId) {
      return yield* new AdminError({ reason: "TryAgain", detail: `${String(key)} changed while being moved (now on ${after.backendIds.join(", ") || "no backend"}); try again` })
    }
    return { from: from ?? null, to: toId, changed: true, stale: false }
  })

/** Delete the row of `key`; returns the backend id it was on (or null). */
export const unassignKey = (strategy: Strategy, key: RouteKey) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const before = yield* findKey(strategy, key)
    if (before.backendIds.length > 0) yield* sql`DELETE FROM user_backend WHERE ${col} = ${key}`.pipe(wrap("unassign"))
    return { backendIds: before.backendIds }
  })

/** Every mapping row (optionally of one backend id), ordered by key. */
export const listMappings = (strategy: Strategy, backendId?: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const rows = backendId === undefined
      ? yield* sql<{ k: string | number; b: number | string }>`SELECT ${col} AS k, backend_id AS b FROM user_backend ORDER BY ${col}`.pipe(wrap("list mappings"))
      : yield* sql<{ k: string | number; b: number | string }>`SELECT ${col} AS k, backend_id AS b FROM user_backend WHERE backend_id = ${backendId} ORDER BY ${col}`.pipe(wrap("list mappings"))
    return rows.map((r) => ({ key: strategy === "shard" ? Number(r.k) : String(r.k), backendId: Number(r.b) }))
  })

/** The routes version (null when migration 0005 is missing). */
export const routesVersion = readRoutesVersion.pipe(Effect.orElseSucceed(() => null))

/** One row of an import file. */
export interface ImportRow {
  readonly key: RouteKey
  readonly backend: string
}

/**
 * Every mapping row in key order, `pageSize` rows at a time (keyset pagination on the unique key
 * index): `f` gets each page, so a dump of a million users holds one page in memory. `guard`
 * (default: classify errors) runs each page's query, e.g. with a deadline per page.
 */
export const forEachMappingPage = <E, R>(
  strategy: Strategy,
  pageSize: number,
  f: (page: ReadonlyArray<{ readonly key: RouteKey; readonly backendId: number }>) => Effect.Effect<void, E, R>,
  guard: <A>(eff: Effect.Effect<A, SqlError>) => Effect.Effect<A, StoreError> = wrap("list mappings")
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const col = sql(keyColumn(strategy))
    const limit = sql.literal(String(Math.max(1, Math.floor(pageSize))))
    const after = (last: RouteKey | undefined) => (last === undefined ? sql`` : sql`WHERE ${col} > ${last}`)
    return forEachKeysetPage(
      pageSize,
      (last: RouteKey | undefined) =>
        sql<{ k: string | number; b: number | string }>`SELECT ${col} AS k, backend_id AS b FROM user_backend
          ${after(last)} ORDER BY ${col} LIMIT ${limit}`.pipe(
          guard,
          Effect.map((rows) => rows.map((r) => ({ key: strategy === "shard" ? Number(r.k) : String(r.k), backendId: Number(r.b) })))
        ),
      (row) => row.key,
      f
    )
  })

export { IMPORT_CHUNK, IMPORT_DETAILS, type ImportCounts, importTally, inChunks } from "./ImportTally.js"

/** Result of a mapping import: a conflict names the backend the store has (`current`). */
export type ImportReport = ImportCounts<
  { readonly key: RouteKey; readonly backend: string; readonly current: number },
  { readonly key: RouteKey; readonly backend: string; readonly error: string }
>

/** An import in progress: `add` rows in any number of calls (one chunk in memory), then `report`. */
export interface Importer {
  readonly add: (rows: ReadonlyArray<ImportRow>) => Effect.Effect<void, StoreError>
  readonly report: () => ImportReport
}

/**
 * How an import file may name a backend: by id, by hostname, or by `hostip` (an IP two backends
 * share names neither). A hostname wins over an id or IP that reads the same.
 */
export const backendNames = (backends: ReadonlyArray<Pick<BackendRow, "id" | "hostname" | "hostip">>): Map<string, number> => {
  const byName = new Map<string, number>()
  const ipCount = new Map<string, number>()
  for (const b of backends) if (b.hostip !== null) ipCount.set(b.hostip, (ipCount.get(b.hostip) ?? 0) + 1)
  for (const b of backends) if (b.hostip !== null && ipCount.get(b.hostip) === 1) byName.set(b.hostip, b.id)
  for (const b of backends) byName.set(String(b.id), b.id)
  for (const b of backends) byName.set(b.hostname, b.id)
  return byName
}

/** Options of {@link importer}. */
export interface ImporterOptions {
  /** Write nothing: the report counts what would be inserted as `inserted`. */
  readonly dryRun?: boolean
  /** Backends a dry run would have added first: name → a placeholder id (negative). */
  readonly plannedNames?: ReadonlyMap<string, number>
}

/**
 * Idempotent bulk import: a key without a row gets one; a key already on that backend is
 * unchanged; a key on another backend is a conflict (reported, not changed). Each chunk of
 * {@link IMPORT_CHUNK} rows is one SELECT and one multi-row insert-or-ignore in a transaction (a
 * row a daemon inserted in between is kept; the report counts it as inserted). Backends are named
 * as {@link backendNames} says.
 */
export const importer = (strategy: Strategy, options: ImporterOptions = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = keyColumn(strategy)
    const byName = backendNames(yield* listBackends)
    for (const [name, id] of options.plannedNames ?? []) if (!byName.has(name)) byName.set(name, id)
    const dryInserted = options.dryRun === true ? new Map<string, number>() : undefined
    const t = importTally<{ key: RouteKey; backend: string; current: number }, { key: RouteKey; backend: string; error: string }>()
    const insertChunk = (toInsert: ReadonlyArray<{ key: RouteKey; id: number }>) => {
      const values = sql.insert(toInsert.map((t) => ({ backend_id: t.id, [col]: t.key })))
      return sql.onDialectOrElse({
        mysql: () => sql`INSERT INTO user_backend ${values} ON DUPLICATE KEY UPDATE ${sql(col)} = ${sql(col)}`,
        orElse: () => sql`INSERT INTO user_backend ${values} ON CONFLICT DO NOTHING`
      })
    }
    const addChunk = (chunk: ReadonlyArray<ImportRow>) =>
      Effect.gen(function*() {
        const keys = [...new Set(chunk.map((r) => r.key))]
        const existing = yield* sql<{ k: string | number; b: number | string }>`SELECT ${sql(col)} AS k, backend_id AS b FROM user_backend
          WHERE ${sql.in(col, keys)}`.pipe(wrap("read mappings"))
        const current = new Map<string, number>(existing.map((r) => [String(r.k), Number(r.b)]))
        // a dry run remembers what it would have inserted, as the real run finds it in the table
        if (dryInserted !== undefined) for (const k of keys) if (!current.has(String(k)) && dryInserted.has(String(k))) current.set(String(k), dryInserted.get(String(k))!)
        const toInsert: Array<{ key: RouteKey; id: number }> = []
        for (const r of chunk) {
          t.counts.total++
          const id = byName.get(r.backend)
          if (id === undefined) {
            t.error({ key: r.key, backend: r.backend, error: "unknown backend" })
            continue
          }
          const cur = current.get(String(r.key))
          if (cur === undefined) {
            current.set(String(r.key), id)
            dryInserted?.set(String(r.key), id)
            toInsert.push({ key: r.key, id })
          } else if (cur === id) t.counts.unchanged++
          else t.conflict({ key: r.key, backend: r.backend, current: cur })
        }
        if (toInsert.length > 0 && options.dryRun !== true) yield* sql.withTransaction(insertChunk(toInsert)).pipe(wrap("insert mappings"))
        t.counts.inserted += toInsert.length
      })
    return { add: inChunks(addChunk), report: t.report } satisfies Importer
  })

/** {@link importer} over an array; `progress(done, total)` after each chunk. */
export const importMappings = (strategy: Strategy, rows: ReadonlyArray<ImportRow>, progress: (done: number, total: number) => void = () => {}) =>
  Effect.gen(function*() {
    const imp = yield* importer(strategy)
    for (let i = 0; i < rows.length; i += IMPORT_CHUNK) {
      yield* imp.add(rows.slice(i, i + IMPORT_CHUNK))
      progress(Math.min(rows.length, i + IMPORT_CHUNK), rows.length)
    }
    return imp.report()
  })
