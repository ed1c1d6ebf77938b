/**
 * "Warm" users: rows inserted straight into a store's `user_backend` table (the Lua director's
 * schema, which doveroute and lua/director.lua share), user i on the i-th backend round-robin.
 * Returns user → backend hostname, the host every reply for that user must name.
 */
import { MYSQL, PG, runCommand } from "@doveroute/testkit"
import { createConnection } from "mysql2/promise"
import { createRequire } from "node:module"

interface BetterSqlite {
  prepare(sql: string): { run(...a: Array<unknown>): unknown; all(...a: Array<unknown>): Array<Record<string, unknown>> }
  transaction<F extends (...a: Array<never>) => unknown>(f: F): F
  close(): void
}

/** better-sqlite3 (the daemon's driver; loaded with require, it ships no types here). */
export const openSqlite = (file: string): BetterSqlite => {
  const Database = createRequire(import.meta.url)("better-sqlite3") as new (f: string) => BetterSqlite
  return new Database(file)
}

export type StoreRef =
  | { readonly kind: "sqlite"; readonly file: string }
  | { readonly kind: "postgres"; readonly database: string }
  | { readonly kind: "mysql"; readonly database: string }

type Backends = ReadonlyArray<readonly [id: number, hostname: string]>

const assignment = (users: ReadonlyArray<string>, backends: Backends): Map<string, string> => {
  if (backends.length === 0) throw new Error("no backends in the store")
  return new Map(users.map((u, i) => [u, backends[i % backends.length]![1]]))
}

async function psql(database: string, sql: string, input?: string): Promise<string> {
  const r = await runCommand("psql", ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", PG.host, "-p", String(PG.port), "-U", PG.user, "-d", database, "-c", sql], {
    timeoutMs: 300_000,
    ...(input !== undefined ? { input } : {})
  })
  if (r.code !== 0) throw new Error(`psql: ${r.stderr}${r.stdout}`)
  return r.stdout
}

/** Inserts one row per user (users must not be mapped yet); returns user → hostname. */
export async function bulkMap(store: StoreRef, users: ReadonlyArray<string>): Promise<Map<string, string>> {
  switch (store.kind) {
    case "sqlite": {
      const db = openSqlite(store.file)
      try {
        const backends = db.prepare("SELECT id, hostname FROM backends ORDER BY id").all().map((r) => [Number(r["id"]), String(r["hostname"])] as const)
        const ins = db.prepare(`INSERT INTO user_backend (backend_id, "user") VALUES (?, ?)`)
        db.transaction(() => {
          users.forEach((u, i) => ins.run(backends[i % backends.length]![0], u))
        })()
        return assignment(users, backends)
      } finally {
        db.close()
      }
    }
    case "postgres": {
      const backends = (await psql(store.database, "SELECT id, hostname FROM backends ORDER BY id")).trim().split("\n").filter((l) => l.length > 0)
        .map((l) => {
          const [id, host] = l.split("|")
          return [Number(id), host!] as const
        })
      const rows = users.map((u, i) => `${backends[i % backends.length]![0]}\t${u}\n`).join("")
      await psql(store.database, `COPY user_backend (backend_id, "user") FROM STDIN`, rows + "\\.\n")
      return assignment(users, backends)
    }
    case "mysql": {
      const conn = await createConnection({ host: MYSQL.host, port: MYSQL.port, user: MYSQL.user, database: store.database })
      try {
        const [res] = await conn.query("SELECT id, hostname FROM backends ORDER BY id")
        const backends = (res as Array<{ id: number; hostname: string }>).map((r) => [Number(r.id), String(r.hostname)] as const)
        for (let i = 0; i < users.length; i += 2000) {
          const batch = users.slice(i, i + 2000).map((u, j) => [backends[(i + j) % backends.length]![0], u])
          await conn.query("INSERT INTO user_backend (backend_id, `user`) VALUES ?", [batch])
        }
        return assignment(users, backends)
      } finally {
        await conn.end().catch(() => undefined)
      }
    }
  }
}

/** user → hostname as stored in a SQLite file, for the given users (missing users are absent). */
export function storedHosts(file: string, users: Iterable<string>): Map<string, string> {
  const db = openSqlite(file)
  try {
    const q = db.prepare(`SELECT b.hostname AS h FROM user_backend ub JOIN backends b ON b.id = ub.backend_id WHERE ub."user" = ?`)
    const out = new Map<string, string>()
    for (const u of users) {
      const rows = q.all(u)
      if (rows.length > 0) out.set(u, String(rows[rows.length - 1]!["h"]))
    }
    return out
  } finally {
    db.close()
  }
}
