/**
 * Operator schema (migrations 0004–0006) and the store services the daemon's cache, placement and
 * move holds read.
 *
 * - `0004_backend_operations`: `backends.weight INT NOT NULL DEFAULT 1` (0 = no new users),
 *   `backends.last_health VARCHAR(255) NULL`, `backends.last_health_at` (timestamp, NULL).
 *   `backends.state`: 0 up, 1 down (admin), 2 drain (admin), 3 down by the health checker.
 * - `0005_routes_version`: `doveroute_meta(name, value)` with `('routes_version', 0)`, and triggers
 *   that increment it on UPDATE/DELETE of `user_backend` and INSERT/UPDATE/DELETE of `backends`
 *   (not on INSERT into `user_backend`: first assignments do not flush caches). Hand-written SQL
 *   invalidates the daemons' caches too.
 * - `0006_user_moves`: `doveroute_moves(route_key, hold_logins, expires_at)`: one row per move in
 *   progress (the move lock; a second move of the same key fails with "try again"); with
 *   `hold_logins = 1` the router answers the key with temp_fail until `expires_at` (epoch ms) or
 *   until the row is deleted.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { type BackendLoad, PlacementInfo, RouteHolds, RouteVersion, type RouteKey, StoreError } from "@doveroute/routing"
import { type Duration, Effect, Layer, Option } from "effect"
import { classifySqlError } from "./Classify.js"
import { guarded, runsSynchronously } from "./SqlRouteStore.js"
import { tableColumns } from "./Schema.js"

export const META_TABLE = "doveroute_meta"
export const MOVES_TABLE = "doveroute_moves"
export const ROUTES_VERSION = "routes_version"

/** Backend states (`backends.state`). */
export const STATE = { up: 0, down: 1, drain: 2, healthDown: 3 } as const
/** A state as a word: up, down, drain, health-down (or `state-N`). */
export const stateName = (s: number): string =>
  s === 0 ? "up" : s === 1 ? "down" : s === 2 ? "drain" : s === 3 ? "health-down" : `state-${s}`

export const m0004 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const cols = yield* tableColumns("backends")
  if (!cols.includes("weight")) yield* sql`ALTER TABLE backends ADD COLUMN weight INT NOT NULL DEFAULT 1`
  if (!cols.includes("last_health")) yield* sql`ALTER TABLE backends ADD COLUMN last_health VARCHAR(255) NULL`
  if (!cols.includes("last_health_at")) {
    yield* sql.onDialectOrElse({
      pg: () => sql`ALTER TABLE backends ADD COLUMN last_health_at TIMESTAMP WITH TIME ZONE NULL`,
      mysql: () => sql`ALTER TABLE backends ADD COLUMN last_health_at DATETIME(3) NULL`,
      orElse: () => sql`ALTER TABLE backends ADD COLUMN last_health_at TIMESTAMP NULL`
    })
  }
})

const BUMP = `UPDATE ${META_TABLE} SET value = value + 1 WHERE name = '${ROUTES_VERSION}'`
const TRIGGERS: ReadonlyArray<readonly [name: string, table: string, events: ReadonlyArray<string>]> = [
  ["doveroute_rv_ub", "user_backend", ["UPDATE", "DELETE"]],
  ["doveroute_rv_b", "backends", ["INSERT", "UPDATE", "DELETE"]]
]

/** MySQL and SQLite: one trigger per table and event (`<name>_<event>`), each running `body`. */
const perEventTriggers = (sql: SqlClient.SqlClient, body: string) =>
  Effect.gen(function*() {
    for (const [name, table, events] of TRIGGERS) {
      for (const ev of events) {
        const t = `${name}_${ev.toLowerCase()}`
        yield* sql.unsafe(`DROP TRIGGER IF EXISTS ${t}`)
        yield* sql.unsafe(`CREATE TRIGGER ${t} AFTER ${ev} ON ${table} ${body}`)
      }
    }
  })

export const m0005 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* tableColumns(META_TABLE)).length === 0) {
    yield* sql`CREATE TABLE ${sql(META_TABLE)} (name VARCHAR(64) NOT NULL PRIMARY KEY, value BIGINT NOT NULL)`
  }
  const have = yield* sql<{ n: unknown }>`SELECT 1 AS n FROM ${sql(META_TABLE)} WHERE name = ${ROUTES_VERSION}`
  if (have.length === 0) yield* sql`INSERT INTO ${sql(META_TABLE)} (name, value) VALUES (${ROUTES_VERSION}, 0)`
  yield* sql.onDialectOrElse({
    pg: () =>
      Effect.gen(function*() {
        yield* sql.unsafe(`CREATE OR REPLACE FUNCTION doveroute_bump_routes_version() RETURNS trigger
          LANGUAGE plpgsql AS $fn$ BEGIN ${BUMP}; RETURN NULL; END $fn$`)
        for (const [name, table, events] of TRIGGERS) {
          yield* sql.unsafe(`DROP TRIGGER IF EXISTS ${name} ON ${table}`)
          yield* sql.unsafe(`CREATE TRIGGER ${name} AFTER ${events.join(" OR ")} ON ${table}
            FOR EACH STATEMENT EXECUTE FUNCTION doveroute_bump_routes_version()`)
        }
      }),
    mysql: () => perEventTriggers(sql, `FOR EACH ROW ${BUMP}`),
    orElse: () => perEventTriggers(sql, `BEGIN ${BUMP}; END`)
  })
})

export const m0006 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* tableColumns(MOVES_TABLE)).length > 0) return
  yield* sql`CREATE TABLE ${sql(MOVES_TABLE)} (
    route_key VARCHAR(255) NOT NULL PRIMARY KEY,
    hold_logins SMALLINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL)`
})

/** The operator migrations, keyed like Migrations.ts's record. */
export const OPERATION_MIGRATIONS = {
  "0004_backend_operations": m0004,
  "0005_routes_version": m0005,
  "0006_user_moves": m0006
} as const

const wrap = (what: string) => <A>(eff: Effect.Effect<A, SqlError>) => Effect.mapError(eff, classifySqlError(what))

/** The current routes version (fails when the table is missing: the cache then stays cleared). */
export const readRoutesVersion = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ value: number | string | bigint }>`SELECT value FROM ${sql(META_TABLE)} WHERE name = ${ROUTES_VERSION}`.pipe(
    wrap("read routes version")
  )
  if (rows.length === 0) return yield* new StoreError({ reason: "Integrity", detail: `${META_TABLE} has no ${ROUTES_VERSION} row` })
  return Number(rows[0]!.value)
})

/** {@link RouteVersion} over the store's `doveroute_meta` row; `queryTimeout` bounds each read. */
export const routeVersionLayer = (queryTimeout: Duration.DurationInput): Layer.Layer<RouteVersion, never, SqlClient.SqlClient> =>
  Layer.effect(
    RouteVersion,
    Effect.map(SqlClient.SqlClient, (sql) => ({
      current: Effect.provideService(readRoutesVersion, SqlClient.SqlClient, sql).pipe(
        Effect.timeoutFail({
          duration: queryTimeout,
          onTimeout: () => new StoreError({ reason: "Timeout", detail: "read routes version" })
        })
      )
    }))
  )

/**
 * {@link RouteHolds} over `doveroute_moves` (one primary-key query per cache miss). Provided only
 * when the table exists (a store left unmigrated keeps working without holds).
 */
export const routeHoldsLayer = (queryTimeout: Duration.DurationInput): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const exists = yield* tableColumns(MOVES_TABLE).pipe(Effect.map((c) => c.length > 0), Effect.orElseSucceed(() => false))
    if (!exists) return Layer.empty
    // typed as providing nothing: the router reads it with Effect.serviceOption
    return Layer.succeed(RouteHolds, {
      heldUntil: (key: RouteKey) =>
        sql<{ e: number | string }>`SELECT expires_at AS e FROM ${sql(MOVES_TABLE)} WHERE route_key = ${String(key)} AND hold_logins = 1`.pipe(
          guarded("read move hold", queryTimeout, { synchronous: runsSynchronously(sql) }),
          Effect.map((rows) => rows.length === 0 ? Option.none() : Option.some(Number(rows[0]!.e)))
        ),
      heldMany: (keys: ReadonlyArray<RouteKey>) =>
        sql<{ k: string; e: number | string }>`SELECT route_key AS k, expires_at AS e FROM ${sql(MOVES_TABLE)}
          WHERE route_key IN ${sql.in(keys.map(String))} AND hold_logins = 1`.pipe(
          guarded("read move holds", queryTimeout, { synchronous: runsSynchronously(sql) }),
          Effect.map((rows) => new Map(rows.map((r) => [String(r.k), Number(r.e)] as const)) as ReadonlyMap<string, number>)
        )
    }) as unknown as Layer.Layer<never>
  }))

/** {@link PlacementInfo} from `backends.weight` (1 when the column is missing) and row counts. */
export const placementInfoLayer = (queryTimeout: Duration.DurationInput): Layer.Layer<PlacementInfo, never, SqlClient.SqlClient> =>
  Layer.effect(
  PlacementInfo,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const hasWeight = yield* tableColumns("backends").pipe(Effect.map((c) => c.includes("weight")), Effect.orElseSucceed(() => false))
    const weights = hasWeight
      ? sql<{ id: number | string; weight: number | string }>`SELECT id, weight FROM backends`.pipe(
        guarded("read backend weights", queryTimeout, { synchronous: runsSynchronously(sql) }),
        Effect.map((rows) => new Map(rows.map((r) => [Number(r.id), Number(r.weight)] as const)) as ReadonlyMap<number, number>)
      )
      : Effect.succeed(new Map<number, number>() as ReadonlyMap<number, number>)
    const loads = Effect.gen(function*() {
      const w = yield* weights
      const counts = yield* sql<{ b: number | string; n: number | string }>`SELECT backend_id AS b, COUNT(*) AS n FROM user_backend GROUP BY backend_id`.pipe(
        guarded("count users per backend", queryTimeout, { synchronous: runsSynchronously(sql) })
      )
      const m = new Map<number, BackendLoad>()
      for (const [id, weight] of w) m.set(id, { weight, users: 0 })
      for (const r of counts) m.set(Number(r.b), { weight: w.get(Number(r.b)) ?? 1, users: Number(r.n) })
      return m as ReadonlyMap<number, BackendLoad>
    })
    return { weights, loads }
  })
)
