/**
 * Route-store fixtures for end-to-end tests on the embedded SQLite store: backends are added with
 * the real CLI (`doveroute backend add`, which also creates the Lua director tables), fixed user →
 * backend mappings and the stored rows go through the `sqlite3` command-line tool.
 */
import { runChecked, runCommand } from "./Exec.js"
import { runCli } from "./Daemon.js"

/** A backend row to create. */
export interface SeedBackend {
  readonly hostname: string
  readonly hostip?: string
  readonly state?: number
}

/** One `user_backend` row (mapping strategy). */
export interface MappingRow {
  readonly user: string
  readonly backendId: number
}

const sqlQuote = (s: string): string => `'${s.replace(/'/g, "''")}'`

/** Runs SQL through the `sqlite3` CLI; resolves with its stdout. */
export async function sqlite(file: string, sql: string): Promise<string> {
  return (await runChecked("sqlite3", ["-batch", "-bail", file, sql])).stdout
}

/**
 * Creates the store at `file` with `backends` (ids 1, 2, … in order) and the fixed `mappings`
 * (user → backend id). Rejects with the CLI's output on failure.
 */
export async function seedSqliteStore(
  file: string,
  o: { readonly backends: ReadonlyArray<SeedBackend>; readonly mappings?: Readonly<Record<string, number>> }
): Promise<void> {
  for (const b of o.backends) {
    const args = ["backend", "add", "--store", `sqlite:${file}`, b.hostname]
    if (b.hostip !== undefined) args.push("--hostip", b.hostip)
    if (b.state !== undefined) args.push("--state", String(b.state))
    const r = await runCli(args)
    if (r.code !== 0) throw new Error(`doveroute ${args.join(" ")} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`)
  }
  const rows = Object.entries(o.mappings ?? {})
  if (rows.length > 0) {
    await sqlite(file, rows.map(([u, id]) => `INSERT INTO user_backend (backend_id, "user") VALUES (${id}, ${sqlQuote(u)});`).join("\n"))
  }
}

/** Every `user_backend` row of a mapping-strategy SQLite store, ordered by user. */
export async function mappingRows(file: string): Promise<Array<MappingRow>> {
  const r = await runCommand("sqlite3", ["-batch", "-separator", "\t", file, `SELECT "user", backend_id FROM user_backend ORDER BY "user";`])
  if (r.code !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`)
  return r.stdout.split("\n").filter((l) => l.length > 0).map((l) => {
    const [user, id] = l.split("\t")
    return { user: user ?? "", backendId: Number(id) }
  })
}

/** The backend id `user` is mapped to, undefined when there is no row. */
export async function mappedBackend(file: string, user: string): Promise<number | undefined> {
  return (await mappingRows(file)).find((r) => r.user === user)?.backendId
}

/** `doveadm auth test` / `auth lookup` output → the field lines (`user=alice`, `proxy`, …) / `key : value` pairs. */
export function doveadmFields(stdout: string): Array<string> {
  const out: Array<string> = []
  for (const raw of stdout.split("\n")) {
    const line = raw.trim()
    if (line.length === 0 || /^(passdb|userdb|extra fields)\b/.test(line)) continue
    const kv = /^([A-Za-z0-9_.-]+)\s+:\s*(.*)$/.exec(line)
    out.push(kv !== null ? `${kv[1]}=${kv[2]}` : line)
  }
  return out
}
