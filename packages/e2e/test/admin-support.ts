// Support for the admin CLI tests: a store per kind (SQLite file, fresh PostgreSQL or MariaDB database), a
// config file (store + fast cache.refresh), `doveroute …` runs with parsed JSON, plain SQL.
import { freshMysql, freshPostgres, freshSqlite, makeTempDir, runCli, type CommandResult, type FreshDatabase } from "@doveroute/testkit"
import Database from "better-sqlite3"
import * as fs from "node:fs"
import { query } from "./store-support.js"

export type AdminStoreKind = "sqlite" | "postgres" | "mysql"
export const ADMIN_STORES: ReadonlyArray<AdminStoreKind> = ["sqlite", "postgres"]

export interface AdminStore {
  readonly url: string
  readonly config: string
  /** `doveroute <args> --config <config>`. */
  cli(args: ReadonlyArray<string>, config?: string): Promise<CommandResult>
  /** Run and parse `--json` stdout; throws with stderr on a non-zero exit. */
  json<T = any>(args: ReadonlyArray<string>): Promise<T>
  sql<T = Record<string, unknown>>(text: string): Promise<Array<T>>
  drop(): Promise<void>
}

export async function adminStore(kind: AdminStoreKind, settings: Readonly<Record<string, unknown>> = {}): Promise<AdminStore> {
  const tmp = makeTempDir()
  const db: FreshDatabase = kind === "sqlite" ? await freshSqlite(tmp.path) : kind === "postgres" ? await freshPostgres() : await freshMysql()
  const config = tmp.join(`config-${Math.random().toString(36).slice(2)}.json`)
  fs.writeFileSync(config, JSON.stringify({ store: db.url, cache: { refresh: "300 millis" }, ...settings }))
  const cli = (args: ReadonlyArray<string>, cfg: string = config) => runCli([...args, "--config", cfg], { timeoutMs: 90_000 })
  return {
    url: db.url,
    config,
    cli,
    json: async (args) => {
      const r = await cli([...args, "--json"])
      if (r.code !== 0) throw new Error(`doveroute ${args.join(" ")} exited ${r.code}: ${r.stderr}`)
      return JSON.parse(r.stdout)
    },
    sql: async <T,>(text: string) => {
      if (!db.url.startsWith("sqlite:")) return query<T>(db.url, text)
      const d = new Database(db.url.slice("sqlite:".length))
      try {
        const st = d.prepare(text)
        return (st.reader ? st.all() : (st.run(), [])) as Array<T>
      } finally {
        d.close()
      }
    },
    drop: async () => {
      await db.drop()
      await tmp.cleanup()
    }
  }
}
