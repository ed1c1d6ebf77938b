// The per-backend health-check port on SQLite, PostgreSQL and MariaDB:
// - a database migrated up to the migration before it (as an earlier doveroute left it) gains
//   `backends.check_port` (nullable: the Lua scripts' INSERT without it still works) and keeps its rows;
// - AdminOps sets, changes and clears it; out-of-range ports are refused; the checker's
//   Health.listBackends reads it, and reads NULL on a store without the column.
import { describe, expect, it } from "@effect/vitest"
import { AdminOps, CheckPort, Health, Migrations, parseStoreUrl, Schema, SqlClientLayer } from "@doveroute/store"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit } from "effect"
import { dropFileDatabaseAfterAll, KINDS, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const CHECK_PORT_ID = parseInt(Object.keys(CheckPort.CHECK_PORT_MIGRATION)[0]!, 10)

describe.concurrent.each(KINDS)("backends.check_port on %s", (kind) => {
  it.live("an older schema gains the column, rows kept; set, change, clear; refused out of range", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // every migration before this one, as an earlier doveroute left the store
        yield* Migrator.make({})({
          loader: Effect.map(Migrations.loader("mapping"), (all) => all.filter(([id]) => id < CHECK_PORT_ID)),
          table: Migrations.MIGRATIONS_TABLE
        })
        yield* sql`INSERT INTO backends (hostname, hostip, state) VALUES ('old.test', '10.0.0.1', 0)`
        expect(yield* Schema.tableColumns("backends")).not.toContain("check_port")
        const columnsBefore = yield* Health.healthColumns
        expect(columnsBefore.checkPort).toBe(false)
        expect((yield* Health.listBackends(columnsBefore)).map((b) => b.checkPort)).toEqual([null])

        const applied = yield* Migrations.migrate("mapping")
        expect(applied.map(([id]) => id)).toContain(CHECK_PORT_ID)
        expect(yield* Schema.tableColumns("backends")).toContain("check_port")
        // the Lua scripts' insert (no check_port) still works
        yield* sql`INSERT INTO backends (hostname, hostip, state) VALUES ('lua.test', '10.0.0.2', 0)`

        const added = yield* AdminOps.addOrUpdateBackend({ hostname: "new.test", hostip: "10.0.0.3", state: 0, weight: 1, checkPort: 1143, orUpdate: false })
        expect(added.backend.checkPort).toBe(1143)
        const changed = yield* AdminOps.setCheckPort("old.test", 10143)
        expect([changed.before.checkPort, changed.after.checkPort]).toEqual([null, 10143])
        // --or-update without a check port keeps it
        yield* AdminOps.addOrUpdateBackend({ hostname: "new.test", hostip: "10.0.0.4", state: 0, weight: 2, orUpdate: true })
        const columns = yield* Health.healthColumns
        expect(columns).toEqual({ lastHealth: true, checkPort: true })
        expect((yield* Health.listBackends(columns)).map((b) => [b.hostname, b.checkPort])).toEqual([
          ["old.test", 10143],
          ["lua.test", null],
          ["new.test", 1143]
        ])
        const cleared = yield* AdminOps.setCheckPort("old.test", null)
        expect(cleared.after.checkPort).toBeNull()
        for (const bad of [0, 65536, 1.5, Number.NaN]) {
          const exit = yield* Effect.exit(AdminOps.setCheckPort("new.test", bad))
          expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/check port must be 1-65535/)
        }
        expect((yield* AdminOps.resolveBackend("new.test")).checkPort).toBe(1143)
      }).pipe(Effect.provide(SqlClientLayer.layer(parseStoreUrl(url))))))
})
