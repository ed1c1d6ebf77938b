/**
 * Tags (pools) in the store, migration `0011_tags` (the routing rules: routing's Tags.ts):
 *
 * - `backends.tag VARCHAR(64) NULL`: the backend's pool (NULL = untagged). An additive, nullable
 *   column: the Lua scripts name their columns and never see it (they place among every up
 *   backend, tags unknown to them).
 * - `doveroute_user_tags(user_name VARCHAR(255) PRIMARY KEY, tag VARCHAR(64) NOT NULL)`: a user's
 *   tag set by the operator (`doveroute user tag USER TAG`), keyed like `user_backend.user` (the
 *   routing key: the user name after `normalize`). It wins over the request's `director_tag` and
 *   the domain rule.
 * - The change feed's `backends` UPDATE trigger watches `tag` too, so a re-tagged backend reaches
 *   every daemon's routing table.
 *
 * @since 0.3.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { dialectOf, feedTriggers, installTriggers, ROUTING_COLUMNS } from "./ChangeFeed.js"
import { TAG_COLUMN, tableColumns, USER_TAGS_TABLE } from "./Schema.js"
import type { Strategy } from "@doveroute/routing"

export { TAG_COLUMN, USER_TAGS_TABLE } from "./Schema.js"

/** Migration 0011 (idempotent). */
export const m0011 = (strategy: Strategy): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (!(yield* tableColumns("backends")).includes(TAG_COLUMN)) {
      yield* sql`ALTER TABLE backends ADD COLUMN tag VARCHAR(64) NULL`
    }
    if ((yield* tableColumns(USER_TAGS_TABLE)).length === 0) {
      yield* sql`CREATE TABLE ${sql(USER_TAGS_TABLE)} (user_name VARCHAR(255) NOT NULL PRIMARY KEY, tag VARCHAR(64) NOT NULL)`
    }
    // the backends UPDATE trigger of the change feed, now watching `tag` as well
    const d = dialectOf(sql)
    yield* installTriggers(feedTriggers(d, strategy, ROUTING_COLUMNS).filter(([name]) => name === "doveroute_feed_b_update"))
  })

/** Migration 0011 keyed like Migrations.ts's record. */
export const TAGS_MIGRATION = (strategy: Strategy) => ({ "0011_tags": m0011(strategy) }) as const
