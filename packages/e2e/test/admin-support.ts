// Support for the admin CLI tests: a store per kind (SQLite file, fresh PostgreSQL or MariaDB
// database), a config file (store + fast cache.refresh), `doveroute …` runs with parsed JSON, plain
// SQL, and a snapshot of every table (and the SQLite file's bytes) to prove a dry run wrote nothing.
import { freshMysql, freshPostgres, freshSqlite, makeTempDir, runCli, type CommandResult, type FreshDatabase } from "@doveroute/testkit"
import Database from "better-sqlite3"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { query } from "./store-support.js"

export type AdminStoreKind = "sqlite" | "postgres" | "mysql"
/** The stores the admin tests run on ("mysql": MariaDB, as everywhere in the tests). */
export const ADMIN_STORES: ReadonlyArray<AdminStoreKind> = ["sqlite", "postgres", "mysql"]

/** The tables doveroute keeps (a snapshot reads them all). */
const TABLES = ["backends", "user_backend", "doveroute_meta", "doveroute_moves", "doveroute_migrations"]

export interface AdminStore {
  readonly url: string
  readonly config: string
  /** `user_backend.user` quoted for this engine's SQL. */
  readonly userCol: string
  /** `doveroute <args> --config <config>` (`input` on stdin). */
  cli(args: ReadonlyArray<string>, config?: string, input?: string): Promise<CommandResult>
  /** Run and parse `--json` stdout; throws with stderr on a non-zero exit. */
  json<T = any>(args: ReadonlyArray<string>): Promise<T>
  sql<T = Record<string, unknown>>(text: string): Promise<Array<T>>
  /** Every row of every doveroute table, in a stable order (SQLite: also the files' digests). */
  snapshot(): Promise<string>
  drop(): Promise<void>
}

/**
 * `args` with `options` added: before a `-` (stdin) argument, after which @effect/cli takes no
 * options, else at the end.
 */
export const withOptions = (args: ReadonlyArray<string>, options: ReadonlyArray<string>): Array<string> => {
  const i = args.indexOf("-")
  return i < 0 ? [...args, ...options] : [...args.slice(0, i), ...options, ...args.slice(i)]
}

export async function adminStore(kind: AdminStoreKind, settings: Readonly<Record<string, unknown>> = {}): Promise<AdminStore> {
  const tmp = makeTempDir()
  const db: FreshDatabase = kind === "sqlite" ? await freshSqlite(tmp.path) : kind === "postgres" ? await freshPostgres() : await freshMysql()
  const config = tmp.join(`config-${Math.random().toString(36).slice(2)}.json`)
  fs.writeFileSync(config, JSON.stringify({ store: db.url, cache: { refresh: "300 millis" }, ...settings }))
  const cli = (args: ReadonlyArray<string>, cfg: string = config, input?: string) =>
    runCli(withOptions(args, ["--config", cfg]), { timeoutMs: 90_000, ...(input !== undefined ? { input } : {}) })
  // a read-only SQLite connection never checkpoints the WAL: a snapshot leaves the bytes alone
  const sql = async <T,>(text: string, readonly = false): Promise<Array<T>> => {
    if (!db.url.startsWith("sqlite:")) return query<T>(db.url, text)
    const d = new Database(db.url.slice("sqlite:".length), { readonly })
    try {
      const st = d.prepare(text)
      return (st.reader ? st.all() : (st.run(), [])) as Array<T>
    } finally {
      d.close()
    }
  }
  const file = db.url.slice("sqlite:".length)
  return {
    url: db.url,
    config,
    userCol: kind === "mysql" ? "`user`" : `"user"`,
    cli,
    json: async (args) => {
      const r = await cli(withOptions(args, ["--json"]))
      if (r.code !== 0) throw new Error(`doveroute ${args.join(" ")} exited ${r.code}: ${r.stderr}`)
      return JSON.parse(r.stdout)
    },
    sql: (text) => sql(text),
    snapshot: async () => {
      // (a read-only open leaves an empty -wal behind: no data, so not part of the snapshot)
      const files = kind !== "sqlite" ? [] : ["", "-wal", "-journal"].filter((x) => fs.existsSync(file + x) && fs.statSync(file + x).size > 0)
        .map((x) => `${x || "db"} ${createHash("sha256").update(fs.readFileSync(file + x)).digest("hex")}`)
      const tables: Record<string, unknown> = {}
      for (const t of TABLES) {
        const rows = await sql<Record<string, unknown>>(`SELECT * FROM ${t}`, true)
        tables[t] = rows.map((r) => JSON.stringify(r, (_, v) => typeof v === "bigint" ? String(v) : v)).sort()
      }
      return JSON.stringify({ files, tables })
    },
    drop: async () => {
      await db.drop()
      await tmp.cleanup()
    }
  }
}
