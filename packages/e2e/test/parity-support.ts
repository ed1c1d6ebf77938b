// The parity matrix: for every store (SQLite, PostgreSQL, MariaDB), strategy (mapping, shard) and
// Dovecot version (2.3.19 host, 2.4.1 chroot), one Dovecot proxy whose auth process runs
//   - `protocol imap`: our Lua passdb (lua/director.lua or lua/director-shard.lua) on the database;
//   - `protocol pop3`: doveroute on the same database — 2.3: `passdb dict` → the dict socket;
//     2.4: lua/http-route.lua → the HTTP endpoint;
// so `doveadm auth test|lookup -x service=imap|pop3 USER` asks one or the other, and both see the
// very same user names (auth_username_format and auth_username_chars empty: no lowercasing, any
// byte). Each combination has its own database and doveroute daemon, so all run at once.
import Database from "better-sqlite3"
import { createRequire } from "node:module"
import { copyFileSync, mkdirSync } from "node:fs"
import path from "node:path"
import * as zlib from "node:zlib"
import * as mysql from "mysql2/promise"
import {
  doveadmFields,
  freePort,
  freshMysql,
  freshPostgres,
  joinConfig,
  MYSQL,
  PG,
  proxyBase23,
  proxyBase24,
  REPO_ROOT,
  runCli,
  startDaemon,
  startDovecot23,
  startDovecot24,
  type ChrootTempDir,
  type Dovecot,
  type FreshDatabase,
  type RunningDaemon
} from "@doveroute/testkit"

export type StoreKind = "sqlite" | "postgres" | "mysql"
export type Variant = "mapping" | "shard"
export type Version = "2.3" | "2.4"

export const STORES: ReadonlyArray<StoreKind> = ["sqlite", "postgres", "mysql"]
export const VARIANTS: ReadonlyArray<Variant> = ["mapping", "shard"]
export const VERSIONS: ReadonlyArray<Version> = ["2.3", "2.4"]

/** The extra reply fields both sides are configured with (nopassword is consumed by Dovecot). */
export const EXTRA_PORT = "14300"

/**
 * The user list: mixed case, domains, non-ASCII (2- and 3-byte UTF-8), a ~200-character name,
 * and `alice`/`Alice` (distinct keys on SQLite and PostgreSQL, one row under MariaDB's
 * case-insensitive collation: both sides must agree either way).
 */
export const USERS: ReadonlyArray<string> = [
  "alice",
  "Alice",
  "bob",
  "CamelCase.User@Example.COM",
  "user1@example.com",
  "jörg",
  "jörg@müller.example",
  "用户@例子.example",
  "l" + "o".repeat(186) + "ng@example.com"
]

/** Shard key computed independently of doveroute and the Lua code: zlib CRC-32, seed 120254, low 16 bits. */
export const shardOf = (user: string): number => (zlib.crc32(Buffer.from(user, "utf8"), 120254) >>> 0) & 0xffff

/** Two distinct names whose shard keys collide (found by brute force). */
export const collidingPair = (): readonly [string, string] => {
  const seen = new Map<number, string>()
  for (let i = 0; ; i++) {
    const u = `shard-twin-${i}@example.com`
    const k = shardOf(u)
    const other = seen.get(k)
    if (other !== undefined) return [other, u]
    seen.set(k, u)
  }
}

/**
 * Backends: 1 with hostip, 2 an IP without hostip, 3 down (`state = 1`), 4 an IP with an empty hostip.
 * Ids are explicit so both sides' rows can be compared.
 */
export const BACKENDS = [
  { id: 1, hostname: "backend1.test", hostip: "127.0.0.2", state: 0 },
  { id: 2, hostname: "127.0.0.3", hostip: null, state: 0 },
  { id: 3, hostname: "backend3.test", hostip: "127.0.0.4", state: 1 },
  // an IP as host name: without a hostip Dovecot resolves `host` by DNS (backend4.test would temp_fail)
  { id: 4, hostname: "127.0.0.5", hostip: "", state: 0 }
] as const

// ---- SQL on any of the three stores ---------------------------------------------------------

interface PgClientLike {
  connect(): Promise<void>
  query(text: string, params?: Array<unknown>): Promise<{ rows: Array<Record<string, unknown>> }>
  end(): Promise<void>
}
const pg = createRequire(import.meta.url)("pg") as { Client: new(options: object) => PgClientLike }

/** A database of the matrix: how doveroute, the Lua script and the test reach it. */
export interface ParityDb {
  readonly kind: StoreKind
  readonly variant: Variant
  /** doveroute store URL. */
  readonly url: string
  /** SQLite: host path of the file. */
  readonly file: string | undefined
  /** Lua settings (`driver`, `database`, …) for a given Dovecot (SQLite path differs in the chroot). */
  luaSettings(version: Version): Record<string, string>
  /** Run statements (`?` placeholders) and return rows. */
  query(text: string, params?: ReadonlyArray<unknown>): Promise<Array<Record<string, unknown>>>
  drop(): Promise<void>
}

const keyCol = (kind: StoreKind, variant: Variant): string =>
  variant === "shard" ? "user_hash" : kind === "mysql" ? "`user`" : `"user"`

/** Create the database of one (store, strategy) and migrate it with `doveroute migrate`. */
export async function makeParityDb(kind: StoreKind, variant: Variant, tmp: ChrootTempDir, tag: string): Promise<ParityDb> {
  let fresh: FreshDatabase | undefined
  let file: string | undefined
  let url: string
  if (kind === "sqlite") {
    file = tmp.hostPath(tmp.join(`${tag}.db`))
    url = `sqlite:${file}`
  } else {
    fresh = kind === "postgres" ? await freshPostgres() : await freshMysql()
    url = fresh.url
  }
  const query = async (text: string, params: ReadonlyArray<unknown> = []): Promise<Array<Record<string, unknown>>> => {
    if (kind === "sqlite") {
      const db = new Database(file!)
      try {
        const st = db.prepare(text)
        return st.reader ? (st.all(...params) as Array<Record<string, unknown>>) : (st.run(...params), [])
      } finally {
        db.close()
      }
    }
    if (kind === "postgres") {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 20_000 })
      await c.connect()
      try {
        let n = 0
        return (await c.query(text.replace(/\?/g, () => `$${++n}`), [...params])).rows
      } finally {
        await c.end()
      }
    }
    const c = await mysql.createConnection({ uri: url, connectTimeout: 20_000, charset: "utf8mb4" })
    try {
      const [rows] = await c.query(text, [...params])
      return Array.isArray(rows) ? (rows as Array<Record<string, unknown>>) : []
    } finally {
      await c.end()
    }
  }
  const m = await runCli(["migrate", "--store", url, "--strategy", variant], { timeoutMs: 120_000 })
  if (m.code !== 0) throw new Error(`doveroute migrate ${url} failed: ${m.stdout}${m.stderr}`)
  return {
    kind,
    variant,
    url,
    file,
    luaSettings: (version) => {
      if (kind === "sqlite") return { driver: "SQLite3", database: version === "2.4" ? tmp.join(`${tag}.db`) : file! }
      if (kind === "postgres") return { driver: "PostgreSQL", database: fresh!.name, user: PG.user, host: PG.host, port: String(PG.port) }
      return { driver: "MySQL", database: fresh!.name, user: MYSQL.user, host: MYSQL.host, port: String(MYSQL.port) }
    },
    query,
    drop: async () => {
      await fresh?.drop()
    }
  }
}

/** Reset: backends as {@link BACKENDS} (optionally changed), `user_backend` as `rows`. */
export async function resetDb(
  db: ParityDb,
  o: { readonly backends?: ReadonlyArray<{ id: number; hostname: string; hostip: string | null; state: number }>; readonly rows?: ReadonlyArray<readonly [string | number, number]> } = {}
): Promise<void> {
  await db.query("DELETE FROM user_backend")
  await db.query("DELETE FROM backends")
  for (const b of o.backends ?? BACKENDS) {
    await db.query("INSERT INTO backends (id, hostname, hostip, state) VALUES (?, ?, ?, ?)", [b.id, b.hostname, b.hostip, b.state])
  }
  for (const [key, id] of o.rows ?? []) {
    await db.query(`INSERT INTO user_backend (backend_id, ${keyCol(db.kind, db.variant)}) VALUES (?, ?)`, [id, key])
  }
}

/** All `user_backend` rows as sorted `key→backend_id` strings. */
export async function rowsOf(db: ParityDb): Promise<Array<string>> {
  const col = keyCol(db.kind, db.variant)
  const rows = await db.query(`SELECT ${col} AS k, backend_id AS b FROM user_backend`)
  return rows.map((r) => `${String(r["k"])}→${Number(r["b"])}`).sort()
}

/** The rows a lookup of `user` would see (database collation applies). */
export async function rowsFor(db: ParityDb, user: string): Promise<Array<number>> {
  const col = keyCol(db.kind, db.variant)
  const key = db.variant === "shard" ? shardOf(user) : user
  return (await db.query(`SELECT backend_id AS b FROM user_backend WHERE ${col} = ?`, [key])).map((r) => Number(r["b"]))
}

// ---- Dovecot proxies and daemons -------------------------------------------------------------

/** A global passdb that never runs (the protocol filters carry the real ones; both versions need one). */
const NEVER_PASSDB_23 = "passdb {\n  driver = static\n  args = nopassword=y\n  username_filter = never-a-user@invalid\n}"
const NEVER_PASSDB_24 = "passdb never {\n  driver = static\n  username_filter = never-a-user@invalid\n  fields {\n    nopassword = yes\n  }\n}"

const luaScript = (variant: Variant) => (variant === "shard" ? "director-shard.lua" : "director.lua")

/** Copy the entry script and the shared core into `dir` (host path); returns the entry's file name. */
const installLua = (hostDir: string, files: ReadonlyArray<string>): void => {
  mkdirSync(hostDir, { recursive: true, mode: 0o755 })
  for (const f of files) copyFileSync(path.join(REPO_ROOT, "lua", f), path.join(hostDir, f))
}

const settingsFile = (s: Record<string, string>): string =>
  "# written by the parity suite\n" + Object.entries(s).map(([k, v]) => `${k} = "${v}"\n`).join("")

/** Auth-workers per proxy (one Lua state each) = doveadm commands the suite runs at once. */
export const WORKERS = 2

export interface Combo {
  readonly version: Version
  readonly kind: StoreKind
  readonly variant: Variant
  readonly label: string
  /** Short name for files: `23-sqlite-mapping`. */
  readonly tag: string
}

/** Every combination; `DVR_PARITY_ONLY=<substring of a label>` (e.g. "2.3 sqlite") narrows it while debugging. */
export const COMBOS: ReadonlyArray<Combo> = VERSIONS.flatMap((version) =>
  STORES.flatMap((kind) =>
    VARIANTS.map((variant) => ({ version, kind, variant, label: `${version} ${kind} ${variant}`, tag: `${version.replace(".", "")}-${kind}-${variant}` }))
  )
).filter((c) => c.label.includes(process.env["DVR_PARITY_ONLY"] ?? ""))

/** doveroute for one (store, strategy): dict socket (2.3) and HTTP endpoint (2.4). */
export interface ParityDaemon {
  readonly daemon: RunningDaemon
  readonly dictSocket: string
  readonly httpPort: number
}

/** The HTTP endpoint's shared token (lua/http-route.lua sends it). */
const PARITY_HTTP_TOKEN = "parity-http-token-9b1e"

export async function startParityDaemon(db: ParityDb, tmp: ChrootTempDir, tag: string): Promise<ParityDaemon> {
  const dictSocket = tmp.hostPath(tmp.join(`${tag}.sock`))
  const httpPort = await freePort()
  const daemon = await startDaemon({
    args: [
      "--store", db.url, "--strategy", db.variant, "--dict-socket", dictSocket, "--socket-mode", "0666",
      "--http-listen", `127.0.0.1:${httpPort}`, "--proxy-flag", "proxy", "--extra-field", "nopassword", "--extra-field", `port=${EXTRA_PORT}`,
      "--log-level", "warning"
    ],
    // parity compares routing decisions scenario by scenario, and the scenarios rewrite the tables
    // faster than the lookup cache's invalidation bound (cache.refresh): compare without the cache
    env: { DOVEROUTE_CACHE_ENABLED: "false", DOVEROUTE_HTTP_TOKEN: PARITY_HTTP_TOKEN },
    waitFor: [dictSocket],
    waitForTcp: [{ host: "127.0.0.1", port: httpPort }],
    timeoutMs: 120_000
  })
  return { daemon, dictSocket, httpPort }
}

/** Start the proxy of one combo: Lua passdb for `imap`, doveroute for `pop3`. */
export async function startParityProxy(combo: Combo, db: ParityDb, d: ParityDaemon, tmp: ChrootTempDir): Promise<Dovecot> {
  const name = `px-${combo.tag}`
  const dir = tmp.join(name) // in-chroot path (2.4); its host path is used for 2.3
  const imapPort = await freePort()
  const pop3Port = await freePort()
  // nopassword needs proxy on both sides (doveroute refuses it with proxy_maybe: a local login no one checks)
  const settings = { ...db.luaSettings(combo.version), proxy_flag: "proxy", extra_fields: `nopassword port=${EXTRA_PORT}` }
  const script = luaScript(combo.variant)
  const raw = "auth_username_format =\nauth_username_chars ="
  if (combo.version === "2.3") {
    const hdir = tmp.hostPath(dir)
    installLua(path.join(hdir, "lua"), [script, "director-core.lua"])
    const dictConf = path.join(hdir, "dict.conf.ext")
    const config = joinConfig(
      proxyBase23({ dir: hdir, imapPort, pop3Port, instanceName: name, authWorkerLimit: WORKERS }),
      raw,
      `protocol imap {\n  passdb {\n    driver = lua\n    args = file=${hdir}/lua/${script}\n  }\n}`,
      `protocol pop3 {\n  passdb {\n    driver = dict\n    args = ${dictConf}\n  }\n}`,
      NEVER_PASSDB_23
    )
    return startDovecot23({
      dir: hdir,
      config,
      files: {
        [path.join(hdir, "lua", script.replace(/\.lua$/, ".conf"))]: settingsFile(settings),
        [dictConf]: `uri = proxy:idle_msecs=10000:${d.dictSocket}:director\ndefault_pass_scheme = PLAIN\niterate_disable = yes\n` +
          "key passdb {\n  key = passdb/%u\n  format = json\n}\npassdb_objects = passdb\n"
      },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  }
  installLua(tmp.hostPath(path.join(dir, "lua")), [script, "director-core.lua", "http-route.lua"])
  const block = (k: string, v: string) => `      ${k} = ${/[\s"]/.test(v) ? JSON.stringify(v) : v}\n`
  const config = joinConfig(
    proxyBase24({ dir, imapPort, pop3Port, instanceName: name, authWorkerLimit: WORKERS }),
    raw,
    `protocol imap {\n  passdb director {\n    driver = lua\n    lua_file = ${dir}/lua/${script}\n    lua_settings {\n` +
      Object.entries(settings).map(([k, v]) => block(k, v)).join("") + "    }\n  }\n}",
    `protocol pop3 {\n  passdb route {\n    driver = lua\n    lua_file = ${dir}/lua/http-route.lua\n    lua_settings {\n` +
      `      route_url = http://127.0.0.1:${d.httpPort}/route\n      token = ${PARITY_HTTP_TOKEN}\n      request_timeout_msecs = 15000\n    }\n    fields {\n      nopassword = yes\n    }\n  }\n}`,
    NEVER_PASSDB_24
  )
  return startDovecot24({ dir, config, tcp: [{ host: "127.0.0.1", port: imapPort }] })
}

// ---- asking both sides -----------------------------------------------------------------------

/** What one doveadm command showed: exit code and the sorted field lines. */
export interface Answer {
  readonly rc: number | null
  readonly fields: ReadonlyArray<string>
}

const answer = (r: { code: number | null; stdout: string }): Answer => ({ rc: r.code, fields: doveadmFields(r.stdout).sort() })

/** `doveadm auth test` (auth-client socket) for `user` through the Lua passdb (`lua`) or doveroute (`dr`). */
export const authTest = async (proxy: Dovecot, side: "lua" | "dr", user: string): Promise<Answer> =>
  answer(await proxy.doveadm(["auth", "test", "-x", `service=${side === "lua" ? "imap" : "pop3"}`, user, "any-password"]))

/** `doveadm auth lookup` (auth-master PASS) for `user` through one side. */
export const authLookup = async (proxy: Dovecot, side: "lua" | "dr", user: string): Promise<Answer> =>
  answer(await proxy.doveadm(["auth", "lookup", "-x", `service=${side === "lua" ? "imap" : "pop3"}`, user]))

/**
 * `doveadm auth lookup` for several users in one doveadm run (one `passdb: <user>` block each);
 * every user's answer carries the command's exit code. Use for users expected to succeed.
 */
export const authLookupMany = async (proxy: Dovecot, side: "lua" | "dr", users: ReadonlyArray<string>): Promise<Map<string, Answer>> => {
  const r = await proxy.doveadm(["auth", "lookup", "-x", `service=${side === "lua" ? "imap" : "pop3"}`, ...users])
  const out = new Map<string, Answer>()
  for (const block of r.stdout.split(/^passdb: /m).slice(1)) {
    const nl = block.indexOf("\n")
    const user = (nl === -1 ? block : block.slice(0, nl)).trim()
    out.set(user, { rc: r.code, fields: doveadmFields(nl === -1 ? "" : block.slice(nl + 1)).sort() })
  }
  return out
}

/** Map with at most `limit` promises running. */
export async function mapLimit<T, R>(items: ReadonlyArray<T>, limit: number, f: (t: T) => Promise<R>): Promise<Array<R>> {
  const out: Array<R> = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await f(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** The fields a successful lookup must show for a backend (Dovecot consumed `nopassword`). */
export const expectedFields = (
  user: string,
  variant: Variant,
  b: { hostname: string; hostip: string | null },
  kind: "test" | "lookup"
): Array<string> => {
  const f = [`user=${user}`, `host=${b.hostname}`, `port=${EXTRA_PORT}`]
  if (b.hostip !== null && b.hostip !== "") f.push(`hostip=${b.hostip}`)
  // both sides answer proxy (nopassword); auth-client shows it (2.3 prints a bare `proxy`), PASS lookups do not list it here
  if (kind === "test") f.push("proxy")
  return f.sort()
}
