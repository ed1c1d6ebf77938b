// MySQL/MariaDB store URL parameters, against the machine's real MariaDB:
// - `?socket=/run/mysqld/mysqld.sock` connects through the UNIX socket (the server sees the
//   connection from `localhost` with no port; the URL's host is a name that does not resolve, so
//   TCP could not have worked), and doveroute's migrations and routing run over it;
// - `?ssl=true` / `?ssl=skip-verify` are kept: against this server (TLS off) the connection is
//   refused instead of silently going out in clear text;
// - unknown parameters, relative paths, bad `ssl` values and half client certificates are refused
//   when the URL is parsed, with the parameter named and no password in the message.
import { describe, expect, it } from "@effect/vitest"
import { Router } from "@doveroute/routing"
import { MysqlUrl, parseStoreUrl, SqlClientLayer, storeLayer } from "@doveroute/store"
import { freshMysql } from "@doveroute/testkit"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit, Layer, Logger, LogLevel } from "effect"
import * as fs from "node:fs"

const SOCKET = "/run/mysqld/mysqld.sock"

describe("MySQL store URL parameters", () => {
  it.effect("socket=: connects through the real MariaDB's UNIX socket; migrations and routing work", () =>
    Effect.gen(function*() {
      expect(fs.statSync(SOCKET).isSocket(), `${SOCKET} is missing: MariaDB must run (scripts/install-deps.sh)`).toBe(true)
      const db = yield* Effect.promise(() => freshMysql())
      try {
        // a host that cannot resolve: only the socket can reach the server
        const url = `mysql://root@no-such-host.invalid/${db.name}?socket=${encodeURIComponent(SOCKET)}`
        const where = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ host: string }>`SELECT HOST AS host FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()`
        ).pipe(Effect.provide(SqlClientLayer.layer(parseStoreUrl(url))))
        // over TCP MariaDB reports `host:port`; over the UNIX socket just `localhost`
        expect(where[0]?.host).toBe("localhost")
        const routed = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO backends (hostname, hostip, state) VALUES ('sock1.test', '127.0.0.2', 0)`
          const route = yield* Effect.flatMap(Router, (r) => r.route("sock-user@example.com"))
          const rows = yield* sql<{ b: number }>`SELECT backend_id AS b FROM user_backend WHERE user = 'sock-user@example.com'`
          return { route, rows }
        }).pipe(
          Effect.provide(
            Router.layer({ strategy: "mapping", downPolicy: "keep" }).pipe(
              Layer.provideMerge(storeLayer({ url: parseStoreUrl(url), strategy: "mapping" }))
            )
          )
        )
        expect(JSON.stringify(routed.route)).toMatch(/sock1\.test/)
        expect(routed.rows.map((r) => Number(r.b))).toEqual([1])
      } finally {
        yield* Effect.promise(() => db.drop())
      }
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)), 60_000)

  it.effect("ssl=true and ssl=skip-verify are kept: a server without TLS is refused, never used in clear text", () =>
    Effect.gen(function*() {
      for (const ssl of ["true", "skip-verify"]) {
        const exit = yield* Effect.exit(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
            Effect.provide(SqlClientLayer.layer(parseStoreUrl(`mysql://root@localhost/test?socket=${SOCKET}&ssl=${ssl}`)))
          )
        )
        expect(Exit.isFailure(exit), `ssl=${ssl} against a server without TLS`).toBe(true)
        expect(JSON.stringify(exit)).toMatch(/SSL|TLS|secure/i)
      }
      // the same URL without ssl connects: the failure above is the TLS requirement
      const ok = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ one: number }>`SELECT 1 AS one`).pipe(
        Effect.provide(SqlClientLayer.layer(parseStoreUrl(`mysql://root@localhost/test?socket=${SOCKET}&ssl=false`)))
      )
      expect(Number(ok[0]?.one)).toBe(1)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)), 60_000)

  it("refuses unknown parameters, relative paths, bad ssl values and half client certificates", () => {
    const bad: Array<[string, RegExp]> = [
      ["mysql://u:secretpw@h/db?sockt=/run/mysqld/mysqld.sock", /unknown parameter "sockt".*accepted: socket/],
      ["mysql://u:secretpw@h/db?socket=run/mysqld.sock", /socket must be an absolute path/],
      ["mysql://u:secretpw@h/db?ssl=yes", /ssl must be one of true, false, skip-verify/],
      ["mysql://u:secretpw@h/db?ssl_cert=/a.pem", /ssl_cert and ssl_key go together/],
      ["mysql://u:secretpw@h/db?ssl=false&ssl_ca=/ca.pem", /ssl=false with ssl_ca/],
      ["mariadb://u:secretpw@h/db?socket=/a&socketPath=/b", /not both/]
    ]
    for (const [url, msg] of bad) {
      let err: unknown
      try {
        parseStoreUrl(url)
      } catch (e) {
        err = e
      }
      expect(err, url).toBeDefined()
      expect((err as Error).message).toMatch(msg)
      expect((err as Error).message).not.toContain("secretpw")
    }
    expect(MysqlUrl.parseMysqlParams(new URLSearchParams("ssl_ca=/etc/ssl/ca.pem"))).toEqual({ ssl: { verify: true, ca: "/etc/ssl/ca.pem" } })
    expect(MysqlUrl.parseMysqlParams(new URLSearchParams("socketPath=/s.sock&ssl=skip-verify"))).toEqual({ socketPath: "/s.sock", ssl: { verify: false } })
    expect(MysqlUrl.parseMysqlParams(new URLSearchParams(""))).toEqual({})
  })

  it("an unreadable ssl_ca file is a clear store error naming the file", () => {
    const store = parseStoreUrl("mysql://root@localhost/test?ssl_ca=/nonexistent/ca.pem")
    if (store._tag !== "Mysql") throw new Error(`expected a MySQL store URL, got ${store._tag}`)
    expect(() => SqlClientLayer.mysqlFields(store.url)).toThrow(/cannot read ssl_ca \/nonexistent\/ca\.pem: ENOENT/)
  })
})
