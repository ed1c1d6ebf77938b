/**
 * Store side of the backend health checker and of the metrics scrape.
 *
 * States (shared with the admin CLI): 0 = up, 1 = down (admin), 2 = drain (admin), 3 = down by the
 * health checker. The checker only ever flips 0 → 3 and 3 → 0, each as a compare-and-set
 * (`UPDATE … WHERE id = ? AND state = ?`), so an admin's 1 or 2 is never overridden and several
 * daemons checking one database cannot undo each other's or an admin's change. Each flip changes
 * `backends.state`, so the change feed (ChangeFeed.ts) carries it to every daemon's routing table
 * (and the routes-version triggers invalidate lookup caches). Recording a result changes no
 * routing column: it appends nothing to the feed.
 *
 * `last_health` / `last_health_at` are written when the columns exist (added by a migration); a
 * backend's own `check_port` is read when that column exists (CheckPort.ts).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Backend } from "@doveroute/routing"
import { Effect } from "effect"
import { type BackendInfo, backendsWithUsers } from "./Admin.js"
import { CHECK_PORT_COLUMN } from "./CheckPort.js"
import { classifySqlError } from "./Classify.js"
import { tableColumns } from "./Schema.js"
import { toBackend } from "./SqlRouteStore.js"

/** Backend states. */
export const STATE_UP = 0
export const STATE_ADMIN_DOWN = 1
export const STATE_DRAIN = 2
export const STATE_HEALTH_DOWN = 3

const wrap = (what: string) => <A, R>(eff: Effect.Effect<A, SqlError, R>) => Effect.mapError(eff, classifySqlError(what))

/** A backend as the checker sees it: with its own check port (null = the `health.port` setting). */
export interface CheckedBackend extends Backend {
  readonly checkPort: number | null
}

/** Which optional columns `backends` has (migrations 0004 and `check_port`). */
export interface HealthColumns {
  /** `last_health` / `last_health_at`. */
  readonly lastHealth: boolean
  readonly checkPort: boolean
}

/** Every backend (id, hostname, hostip, state, check port), ordered by id. */
export const listBackends = (columns: HealthColumns) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const port = columns.checkPort ? sql.literal(CHECK_PORT_COLUMN) : sql.literal("NULL")
    const rows = yield* sql<{ id: number; hostname: string; hostip: string | null; state: number; check_port: number | string | null }>`
      SELECT id, hostname, hostip, state, ${port} AS check_port FROM backends ORDER BY id`.pipe(wrap("list backends for health checks"))
    return rows.map((r): CheckedBackend => ({ ...toBackend(r), checkPort: r.check_port === null || r.check_port === undefined ? null : Number(r.check_port) }))
  })

/** Which of the checker's optional columns `backends` has. */
export const healthColumns = Effect.gen(function*() {
  const cols = yield* tableColumns("backends").pipe(wrap("read backends columns"))
  return { lastHealth: cols.includes("last_health") && cols.includes("last_health_at"), checkPort: cols.includes(CHECK_PORT_COLUMN) }
})

/** Record a check result (truncated to 255 characters) and its time; a no-op without the columns. */
export const recordHealth = (id: number, result: string, columns: boolean) =>
  Effect.gen(function*() {
    if (!columns) return
    const sql = yield* SqlClient.SqlClient
    yield* sql`UPDATE backends SET last_health = ${result.slice(0, 255)}, last_health_at = CURRENT_TIMESTAMP
      WHERE id = ${id}`.pipe(wrap("record health"))
  })

/**
 * Compare-and-set `state` from `from` to `to`; true when the row has `to` afterwards and had
 * `from` before, as far as one read after the update can tell (another daemon may have made the
 * same flip: that is still the state we wanted).
 */
const flip = (id: number, from: number, to: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`UPDATE backends SET state = ${to} WHERE id = ${id} AND state = ${from}`.pipe(wrap("set backend state"))
    const rows = yield* sql<{ state: number | string }>`SELECT state FROM backends WHERE id = ${id}`.pipe(wrap("read backend state"))
    return rows.length > 0 && Number(rows[0]!.state) === to
  })

/** 0 → 3 (only an up backend); true when the backend is now health-down. */
export const markHealthDown = (id: number) => flip(id, STATE_UP, STATE_HEALTH_DOWN)

/** 3 → 0 (only a backend the checker took down); true when the backend is now up. */
export const markHealthUp = (id: number) => flip(id, STATE_HEALTH_DOWN, STATE_UP)

/** A backend with its mapped-row count (metrics). */
export type BackendUsers = BackendInfo

/** Every backend with the number of `user_backend` rows on it (users, or shards for `shard`). */
export const backendUsers = backendsWithUsers("count users per backend")
