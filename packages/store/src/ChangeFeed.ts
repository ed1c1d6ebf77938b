/**
 * The change feed the daemons' routing tables follow (migration `0007_change_feed`), on SQLite,
 * PostgreSQL and MySQL/MariaDB.
 *
 * `doveroute_changes(id, kind, route_key, backend_id, expires_at)`: database triggers append one row
 * per routing-relevant row change, so admin commands, the router, the health checker and
 * hand-written SQL are all seen:
 * - `user_backend` INSERT / UPDATE / DELETE → kind `u`: `route_key` and its new `backend_id`
 *   (NULL: deleted). An UPDATE that changes neither the key nor `backend_id` appends nothing; one
 *   that changes the key appends a delete of the old key too.
 * - `backends` INSERT / DELETE, and UPDATE of `id`, `hostname`, `hostip`, `state`, `weight` or
 *   `tag` (migration 0011 adds `tag` to the trigger) → kind `b` with the backend id (the reader
 *   joins the current row, its tag included). A health check that only
 *   writes `last_health` / `last_health_at`, or sets a state the row already has, appends nothing.
 * - `doveroute_moves` INSERT / UPDATE / DELETE → kind `h`: the key's login hold until `expires_at`
 *   (NULL: no hold; a move lock without `hold_logins` holds nothing).
 * - PostgreSQL `TRUNCATE` of `user_backend` or `backends` → kind `r`: every reader reloads. (MySQL
 *   and SQLite fire no trigger on TRUNCATE / `DELETE` without row triggers: nothing to catch there.)
 *
 * Reading ({@link layer}): one primary-key range query per refresh; pruning keeps the newest
 * entries. The routing core's RouteFeed / TableFeed.ts decide what to do with them.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { type Backend, type Change, RouteFeed, RouteMap, StoreError, type Strategy, type TableSnapshot } from "@doveroute/routing"
import { type Duration, Effect, Layer } from "effect"
import { forEachMappingPage } from "./AdminOps.js"
import { MOVES_TABLE } from "./Operations.js"
import { keyColumn, tableColumns } from "./Schema.js"
import { guarded, runsSynchronously, toBackend } from "./SqlRouteStore.js"

export const CHANGES_TABLE = "doveroute_changes"

export type Dialect = "pg" | "mysql" | "sqlite"

/** The `backends` columns whose change matters to routing, as migration 0007 watched them. */
export const ROUTING_COLUMNS_0007 = ["id", "hostname", "hostip", "state", "weight"] as const
/** The `backends` columns whose change matters to routing (migration 0011 adds `tag`). */
export const ROUTING_COLUMNS = [...ROUTING_COLUMNS_0007, "tag"] as const

/** The dialect of a client, as the trigger builders name it. */
export const dialectOf = (sql: SqlClient.SqlClient): Dialect =>
  sql.onDialectOrElse({ pg: () => "pg" as const, mysql: () => "mysql" as const, orElse: () => "sqlite" as const })

const q = (d: Dialect, col: string) => (d === "mysql" ? `\`${col}\`` : `"${col}"`)
const distinct = (d: Dialect, a: string, b: string) =>
  d === "pg" ? `${a} IS DISTINCT FROM ${b}` : d === "mysql" ? `NOT (${a} <=> ${b})` : `${a} IS NOT ${b}`
const text = (d: Dialect, x: string) => `CAST(${x} AS ${d === "mysql" ? "CHAR" : "TEXT"})`
const emit = (d: Dialect, kind: string, key: string, backend: string, expires: string, when?: string) =>
  `INSERT INTO ${CHANGES_TABLE} (kind, route_key, backend_id, expires_at) SELECT '${kind}', ${key}, ${backend}, ${expires}` +
  (d === "mysql" ? " FROM DUAL" : "") + (when !== undefined ? ` WHERE ${when}` : "")

/** Trigger name, table, event and body statements, for one dialect and strategy. */
export const feedTriggers = (
  d: Dialect,
  strategy: Strategy,
  columns: ReadonlyArray<string> = ROUTING_COLUMNS_0007
): ReadonlyArray<readonly [string, string, string, ReadonlyArray<string>]> => {
  const k = q(d, keyColumn(strategy))
  const keyMoved = distinct(d, `OLD.${k}`, `NEW.${k}`)
  const hold = (row: string) => `CASE WHEN ${row}.hold_logins = 1 THEN ${row}.expires_at ELSE NULL END`
  const backendChanged = columns.map((c) => distinct(d, `OLD.${q(d, c)}`, `NEW.${q(d, c)}`)).join(" OR ")
  return [
    ["doveroute_feed_ub_insert", "user_backend", "INSERT", [emit(d, "u", text(d, `NEW.${k}`), "NEW.backend_id", "NULL")]],
    ["doveroute_feed_ub_update", "user_backend", "UPDATE", [
      emit(d, "u", text(d, `OLD.${k}`), "NULL", "NULL", keyMoved),
      emit(d, "u", text(d, `NEW.${k}`), "NEW.backend_id", "NULL", `${keyMoved} OR ${distinct(d, "OLD.backend_id", "NEW.backend_id")}`)
    ]],
    ["doveroute_feed_ub_delete", "user_backend", "DELETE", [emit(d, "u", text(d, `OLD.${k}`), "NULL", "NULL")]],
    ["doveroute_feed_b_insert", "backends", "INSERT", [emit(d, "b", "NULL", "NEW.id", "NULL")]],
    ["doveroute_feed_b_update", "backends", "UPDATE", [
      emit(d, "b", "NULL", "OLD.id", "NULL", distinct(d, "OLD.id", "NEW.id")),
      emit(d, "b", "NULL", "NEW.id", "NULL", backendChanged)
    ]],
    ["doveroute_feed_b_delete", "backends", "DELETE", [emit(d, "b", "NULL", "OLD.id", "NULL")]],
    ["doveroute_feed_m_insert", MOVES_TABLE, "INSERT", [emit(d, "h", "NEW.route_key", "NULL", hold("NEW"))]],
    ["doveroute_feed_m_update", MOVES_TABLE, "UPDATE", [emit(d, "h", "NEW.route_key", "NULL", hold("NEW"))]],
    ["doveroute_feed_m_delete", MOVES_TABLE, "DELETE", [emit(d, "h", "OLD.route_key", "NULL", "NULL")]]
  ]
}

/** (Re-)create feed triggers (idempotent): drop each by name, create it again. */
export const installTriggers = (triggers: ReadonlyArray<readonly [string, string, string, ReadonlyArray<string>]>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const d = dialectOf(sql)
    for (const [name, table, event, body] of triggers) {
      if (d === "pg") {
        yield* sql.unsafe(`CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
          BEGIN ${body.join("; ")}; RETURN NULL; END $fn$`)
        yield* sql.unsafe(`DROP TRIGGER IF EXISTS ${name} ON ${table}`)
        yield* sql.unsafe(`CREATE TRIGGER ${name} AFTER ${event} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`)
      } else {
        yield* sql.unsafe(`DROP TRIGGER IF EXISTS ${name}`)
        yield* sql.unsafe(`CREATE TRIGGER ${name} AFTER ${event} ON ${table} FOR EACH ROW BEGIN ${body.join("; ")}; END`)
      }
    }
  })

/** Migration 0007: the change table and its triggers (idempotent). */
export const m0007 = (strategy: Strategy) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const d = dialectOf(sql)
    if ((yield* tableColumns(CHANGES_TABLE)).length === 0) {
      const id = d === "pg" ? "BIGSERIAL PRIMARY KEY" : d === "mysql" ? "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT"
      yield* sql.unsafe(`CREATE TABLE ${CHANGES_TABLE} (id ${id}, kind CHAR(1) NOT NULL, route_key VARCHAR(255) NULL,
        backend_id BIGINT NULL, expires_at BIGINT NULL)`)
    }
    yield* installTriggers(feedTriggers(d, strategy))
    if (d === "pg") {
      yield* sql.unsafe(`CREATE OR REPLACE FUNCTION doveroute_feed_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN ${emit(d, "r", "NULL", "NULL", "NULL")}; RETURN NULL; END $fn$`)
      for (const table of ["user_backend", "backends"]) {
        const name = `doveroute_feed_${table === "backends" ? "b" : "ub"}_truncate`
        yield* sql.unsafe(`DROP TRIGGER IF EXISTS ${name} ON ${table}`)
        yield* sql.unsafe(`CREATE TRIGGER ${name} AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION doveroute_feed_truncate()`)
      }
    }
  })

/**
 * Migration 0010: on PostgreSQL a `doveroute_changes` row written by hand with an explicit `id`
 * bypasses the BIGSERIAL default without moving its sequence: the sequence later hands out that id
 * again (the trigger's INSERT, and so the `user_backend` write behind it, fails on the primary key),
 * or every later entry gets an id below the hand-written one (the daemons, past it, never read them:
 * the feed is frozen). The id is now always taken from the sequence (a BEFORE INSERT trigger; the
 * column default is dropped so that each entry takes one value), and the sequence is moved past the
 * highest id present. MySQL and SQLite move their counters past an explicit id by themselves:
 * nothing to do there.
 */
export const m0010 = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const d: Dialect = sql.onDialectOrElse({ pg: () => "pg" as const, mysql: () => "mysql" as const, orElse: () => "sqlite" as const })
  if (d !== "pg" || (yield* tableColumns(CHANGES_TABLE)).length === 0) return
  const seqRows = yield* sql<{ s: string | null }>`SELECT pg_get_serial_sequence(${CHANGES_TABLE}, 'id') AS s`
  const seq = seqRows[0]?.s
  if (seq === null || seq === undefined) return
  const lit = seq.replace(/'/g, "''")
  yield* sql.unsafe(`CREATE OR REPLACE FUNCTION doveroute_feed_id() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN NEW.id := nextval('${lit}'); RETURN NEW; END $fn$`)
  yield* sql.unsafe(`DROP TRIGGER IF EXISTS doveroute_feed_id ON ${CHANGES_TABLE}`)
  yield* sql.unsafe(`CREATE TRIGGER doveroute_feed_id BEFORE INSERT ON ${CHANGES_TABLE} FOR EACH ROW EXECUTE FUNCTION doveroute_feed_id()`)
  yield* sql.unsafe(`ALTER TABLE ${CHANGES_TABLE} ALTER COLUMN id DROP DEFAULT`)
  // only forward, and only when an id at or past the sequence's next value is present
  yield* sql.unsafe(`SELECT setval('${lit}', m) FROM (SELECT MAX(id) AS m FROM ${CHANGES_TABLE}) x
    WHERE m >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM ${seq})`)
})

/** Migration 0010 keyed like Migrations.ts's record. */
export const FEED_ID_MIGRATION = { "0010_change_feed_ids": m0010 } as const

interface ChangeRow {
  readonly id: number | string
  readonly kind: string
  readonly route_key: string | null
  readonly backend_id: number | string | null
  readonly expires_at: number | string | null
  readonly hostname: string | null
  readonly hostip: string | null
  readonly state: number | string | null
  readonly tag: string | null
}

const num = (v: number | string | null): number | null => (v === null || v === undefined ? null : Number(v))

/** A feed row as a {@link Change} (a row of an unknown kind asks for a reload). */
export const toChange = (r: ChangeRow): Change => {
  const id = Number(r.id)
  const backendId = num(r.backend_id)
  switch (r.kind) {
    case "u":
      return { _tag: "route", id, key: String(r.route_key), backendId }
    case "b":
      return {
        _tag: "backend",
        id,
        backendId: backendId ?? -1,
        backend: r.hostname === null || r.hostname === undefined
          ? null
          : toBackend({ id: backendId ?? -1, hostname: r.hostname, hostip: r.hostip, state: r.state, tag: r.tag })
      }
    case "h":
      return { _tag: "hold", id, key: String(r.route_key), until: num(r.expires_at) }
    default:
      return { _tag: "reload", id }
  }
}

/** How long one snapshot may take before it is abandoned (and tried again at the next refresh). */
export const SNAPSHOT_TIMEOUT = "10 minutes"
/**
 * Mappings read per query of a snapshot: SQLite runs each query on the event loop (lookups wait
 * for it), so its pages are small; the network stores' are large (fewer round trips).
 */
export const pageSize = (synchronous: boolean): number => (synchronous ? 10_000 : 50_000)
/** The deadline of each page. */
export const PAGE_TIMEOUT = "1 minute"

/** {@link RouteFeed} over the store (each read bounded by `queryTimeout`). */
export const layer = (strategy: Strategy, queryTimeout: Duration.DurationInput): Layer.Layer<RouteFeed, never, SqlClient.SqlClient> =>
  Layer.effect(
    RouteFeed,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const g = (what: string) => guarded(what, queryTimeout, { synchronous: runsSynchronously(sql) })
      const t = sql(CHANGES_TABLE)
      const keyCol = keyColumn(strategy)
      const select = sql`SELECT c.id, c.kind, c.route_key, c.backend_id, c.expires_at, b.hostname, b.hostip, b.state, b.tag
        FROM ${t} c LEFT JOIN backends b ON c.kind = 'b' AND b.id = c.backend_id`
      const edge = (fn: "MAX" | "MIN") =>
        sql<{ v: number | string | null }>`SELECT ${sql.literal(fn)}(id) AS v FROM ${t}`.pipe(
          g("read the change feed's position"),
          Effect.map((rows) => num(rows[0]?.v ?? null))
        )
      const snapshot = Effect.gen(function*() {
        const backends: ReadonlyArray<Backend> = (yield* sql<{ id: number; hostname: string; hostip: string | null; state: number; tag: string | null }>`
          SELECT id, hostname, hostip, state, tag FROM backends`.pipe(g("load the routing table: backends"))).map(toBackend)
        const routes = new RouteMap()
        yield* forEachMappingPage(strategy, pageSize(runsSynchronously(sql)), (page) =>
          Effect.sync(() => {
            for (const r of page) routes.set(String(r.key), r.backendId)
          }), guarded("load the routing table: mappings", PAGE_TIMEOUT, { synchronous: runsSynchronously(sql) }))
        const holds = new Map<string, number>()
        for (const r of yield* sql<{ k: string; e: number | string }>`SELECT route_key AS k, expires_at AS e FROM ${sql(MOVES_TABLE)}
          WHERE hold_logins = 1`.pipe(g("load the routing table: holds"))) holds.set(String(r.k), Number(r.e))
        return { backends, routes, holds } satisfies TableSnapshot
      })
      return {
        head: Effect.map(edge("MAX"), (v) => v ?? 0),
        oldest: Effect.map(edge("MIN"), (v) => v ?? undefined),
        read: (after, limit) =>
          sql<ChangeRow>`${select} WHERE c.id > ${after} ORDER BY c.id LIMIT ${sql.literal(String(limit))}`.pipe(
            g("read the change feed"),
            Effect.map((rows) => rows.map(toChange))
          ),
        readIds: (ids) =>
          sql<ChangeRow>`${select} WHERE ${sql.in("c.id", ids)} ORDER BY c.id`.pipe(
            g("read missing change feed entries"),
            Effect.map((rows) => rows.map(toChange))
          ),
        rowsOf: (keys) =>
          keys.length === 0 ? Effect.succeed([]) : sql<{ k: string | number; b: number | string }>`SELECT ${sql(keyCol)} AS k, backend_id AS b
            FROM user_backend WHERE ${sql.in(keyCol, strategy === "shard" ? keys.map(Number) : keys)}`.pipe(
            g("confirm first assignments"),
            Effect.map((rows) => rows.map((r) => ({ key: String(r.k), backendId: Number(r.b) })))
          ),
        // the mappings are read in pages (forEachMappingPage); the whole load has its own bound
        snapshot: snapshot.pipe(
          Effect.provideService(SqlClient.SqlClient, sql),
          Effect.timeoutFail({
            duration: SNAPSHOT_TIMEOUT,
            onTimeout: () => new StoreError({ reason: "Timeout", detail: `load the routing table: not done within ${SNAPSHOT_TIMEOUT}` })
          })
        ),
        prune: (keep) =>
          Effect.asVoid(
            Effect.flatMap(edge("MAX"), (max) =>
              max === null || max <= keep ? Effect.void : sql`DELETE FROM ${t} WHERE id <= ${max - keep}`.pipe(g("prune the change feed")))
          )
      }
    })
  )
