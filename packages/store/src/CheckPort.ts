/**
 * The per-backend health-check port: `backends.check_port` (INT NULL; NULL = the checker's
 * `health.port`). Added by its own additive migration, so the Lua scripts' columns stay as they
 * are; renumbering the migration (when others land first) is the one key in
 * {@link CHECK_PORT_MIGRATION}.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { tableColumns } from "./Schema.js"

export const CHECK_PORT_COLUMN = "check_port"

const addCheckPort = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* tableColumns("backends")).includes(CHECK_PORT_COLUMN)) return
  yield* sql`ALTER TABLE backends ADD COLUMN check_port INT NULL`
})

/** The migration, keyed like Migrations.ts's record. */
export const CHECK_PORT_MIGRATION = { "0008_backend_check_port": addCheckPort } as const

/** A check port as the store keeps it: 1-65535, or null (none of its own). */
export const validCheckPort = (port: number | null): boolean => port === null || (Number.isInteger(port) && port >= 1 && port <= 65535)
