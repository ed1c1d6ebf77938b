/**
 * Admin operations on the store (CLI): backends and mappings.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { type Backend, StoreError, type Strategy } from "@doveroute/routing"
import { Effect } from "effect"
import { classifySqlError } from "./Classify.js"
import { toBackend } from "./SqlRouteStore.js"
import { keyColumn } from "./Schema.js"

/** A backend with the number of `user_backend` rows on it. */
export interface BackendInfo extends Backend {
  readonly users: number
}

const wrap = (what: string) => <A>(eff: Effect.Effect<A, SqlError>) => Effect.mapError(eff, classifySqlError(what))

/**
 * Every backend with the number of `user_backend` rows on it (users, or shards for `shard`),
 * ordered by id; `what` names the query in a store error.
 */
export const backendsWithUsers = (what: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: number; hostname: string; hostip: string | null; state: number; users: number | string }>`
      SELECT b.id, b.hostname, b.hostip, b.state, COUNT(ub.backend_id) AS users
      FROM backends b LEFT JOIN user_backend ub ON ub.backend_id = b.id
      GROUP BY b.id, b.hostname, b.hostip, b.state ORDER BY b.id`.pipe(wrap(what))
    return rows.map((r): BackendInfo => ({ ...toBackend(r), users: Number(r.users) }))
  })

/** Every backend with its row count, ordered by id. */
export const listBackends = backendsWithUsers("list backends")

/** Input of {@link addBackend}. */
export interface NewBackend {
  readonly hostname: string
  readonly hostip?: string | null | undefined
  readonly state?: number | undefined
}

/**
 * Add a backend; fails with `StoreError` reason `Integrity` when the hostname exists already.
 * Returns the stored row.
 */
export const addBackend = (b: NewBackend) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const existing = yield* sql<{ id: number }>`SELECT id FROM backends WHERE hostname = ${b.hostname}`.pipe(
      wrap("find backend")
    )
    if (existing.length > 0) {
      return yield* new StoreError({ reason: "Integrity", detail: `backend ${b.hostname} exists already (id ${existing[0]!.id})` })
    }
    // The id is given explicitly: the documented Lua schema has a plain `id INT PRIMARY KEY`, and a
    // PostgreSQL SERIAL whose rows were inserted with explicit ids has a sequence behind MAX(id).
    const next = yield* sql<{ next: number | string }>`SELECT COALESCE(MAX(id), 0) + 1 AS next FROM backends`.pipe(wrap("number backend"))
    const id = Number(next[0]?.next ?? 1)
    yield* sql`INSERT INTO backends ${sql.insert({ id, hostname: b.hostname, hostip: b.hostip ?? null, state: b.state ?? 0 })}`.pipe(
      wrap("add backend")
    )
    // keep a PostgreSQL sequence (if any) ahead of the ids, for tools that insert without one
    yield* sql.onDialectOrElse({
      pg: () => sql`SELECT setval(pg_get_serial_sequence('backends', 'id'), ${id})`.pipe(wrap("advance backends sequence"), Effect.asVoid),
      orElse: () => Effect.void
    })
    const rows = yield* sql<{ id: number; hostname: string; hostip: string | null; state: number }>`
      SELECT id, hostname, hostip, state FROM backends WHERE hostname = ${b.hostname} ORDER BY id DESC`.pipe(
      wrap("read backend")
    )
    return toBackend(rows[0]!)
  })

/** Number of `user_backend` rows (users or shards). */
export const countMappings = () =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM user_backend`.pipe(wrap("count mappings"))
    return Number(rows[0]?.n ?? 0)
  })

/** Every `(key, backend_id)` row for a key (more than one only on a database with duplicates). */
export const mappingRows = (strategy: Strategy, key: string | number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const col = sql(keyColumn(strategy))
    const rows = yield* sql<{ backend_id: number }>`SELECT backend_id FROM user_backend WHERE ${col} = ${key}`.pipe(
      wrap("read mapping")
    )
    return rows.map((r) => Number(r.backend_id))
  })
