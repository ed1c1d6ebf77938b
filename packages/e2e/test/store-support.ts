// Support for the store end-to-end tests: a pipelining dict client, plain SQL on a store URL, and
// private PostgreSQL / MariaDB servers (own data directory and port) that a test may stop, pause
// and restart without touching the machine's shared servers.
import { LineSplitter } from "@doveroute/protocol"
import { freePort, runCommand, sleep, spawnManaged, waitForTcp, type ManagedProcess } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { createRequire } from "node:module"
import * as mysql from "mysql2/promise"

// pg ships no types here (no @types/pg); the little used is typed below
interface PgClientLike {
  connect(): Promise<void>
  query(text: string, params?: Array<unknown>): Promise<{ rows: Array<unknown> }>
  end(): Promise<void>
}
const pg = createRequire(import.meta.url)("pg") as { Client: new(options: object) => PgClientLike }

// ---- dict client -----------------------------------------------------------------------------

/** One dict reply: `O…` found, `N` not found, `F…` failure; `ms` from send to reply. */
export interface DictReply {
  readonly user: string
  readonly line: string
  readonly sentAt: number
  readonly repliedAt: number
}

/** A dict connection (`H3\t2\t0\t\tdirector`); lookups are pipelined, replies come in order. */
export class DictClient {
  private readonly lines = new LineSplitter(1 << 20)
  private readonly pending: Array<{ user: string; sentAt: number; resolve: (r: DictReply) => void; reject: (e: Error) => void }> = []
  private error: Error | undefined

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.lines.push(d, (line) => {
      const p = this.pending.shift()
      if (p !== undefined) p.resolve({ user: p.user, line, sentAt: p.sentAt, repliedAt: Date.now() })
    }))
    const fail = (e: Error) => {
      this.error ??= e
      for (const p of this.pending.splice(0)) p.reject(this.error)
    }
    socket.on("error", fail)
    socket.on("close", () => fail(new Error("dict connection closed")))
  }

  static connect(socketPath: string): Promise<DictClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path: socketPath })
      s.once("error", reject)
      s.once("connect", () => {
        s.off("error", reject)
        s.write("H3\t2\t0\t\tdirector\n")
        resolve(new DictClient(s))
      })
    })
  }

  lookup(user: string): Promise<DictReply> {
    if (this.error !== undefined) return Promise.reject(this.error)
    return new Promise((resolve, reject) => {
      this.pending.push({ user, sentAt: Date.now(), resolve, reject })
      this.socket.write(`Lshared/passdb/${user}\t${user}\n`)
    })
  }

  close(): void {
    this.socket.end()
  }
}

/** The `host` of an `O{json}` reply, or undefined. */
export const hostOf = (line: string): string | undefined => {
  if (!line.startsWith("O")) return undefined
  return (JSON.parse(line.slice(1)) as { host?: string }).host
}

// ---- plain SQL on a store URL --------------------------------------------------------------

/** Run one statement on a `postgres://` or `mysql://` URL and return its rows. */
export async function query<T = Record<string, unknown>>(url: string, text: string, params: ReadonlyArray<unknown> = []): Promise<Array<T>> {
  if (url.startsWith("postgres")) {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
    await c.connect()
    try {
      return (await c.query(text, params as Array<unknown>)).rows as Array<T>
    } finally {
      await c.end()
    }
  }
  const c = await mysql.createConnection({ uri: url, connectTimeout: 5000 })
  try {
    const [rows] = await c.query(text, [...params] as Array<string | number | null>)
    return rows as Array<T>
  } finally {
    await c.end()
  }
}

/** `user_backend` joined to `backends` as `user → [hostnames…]` (several only when duplicated). */
export async function mappings(url: string): Promise<Map<string, Array<string>>> {
  const col = url.startsWith("postgres") ? `ub."user"` : "ub.`user`"
  const rows = await query<{ u: string; h: string }>(url, `SELECT ${col} AS u, b.hostname AS h FROM user_backend ub JOIN backends b ON b.id = ub.backend_id`)
  const m = new Map<string, Array<string>>()
  for (const r of rows) m.set(r.u, [...(m.get(r.u) ?? []), r.h])
  return m
}

/** Insert backends `backend<N>.test` (hostip 127.0.0.<N+1>, state 0) for N = 1..count. */
export async function seedBackends(url: string, count: number): Promise<void> {
  const values = Array.from({ length: count }, (_, i) => `('backend${i + 1}.test', '127.0.0.${i + 2}', 0)`).join(", ")
  await query(url, `INSERT INTO backends (hostname, hostip, state) VALUES ${values}`)
}

// ---- private servers -------------------------------------------------------------------------

/** A database server owned by one test: stop/start/pause/resume it freely. */
export interface PrivateServer {
  readonly kind: "postgres" | "mysql"
  readonly port: number
  /** URL of database `dvr` on it. */
  readonly url: string
  /** Clean shutdown (`pg_ctl stop -m fast` / SIGTERM to mariadbd), waits until it is gone. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Crash: `pg_ctl stop -m immediate` (no shutdown checkpoint) / SIGKILL to mariadbd; `start` recovers. */
  crash(): Promise<void>
  /** SIGSTOP every server process: connections hang instead of failing. */
  pause(): void
  resume(): void
  /** Client connections to database `dvr` other than the one asking. */
  connections(): Promise<number>
  /** Close every client connection to `dvr` from the server side. */
  killConnections(): Promise<void>
  /** Stop for good and remove the data directory. */
  destroy(): Promise<void>
}

const PG_BIN = "/usr/lib/postgresql/15/bin"

const su = async (cmd: string, timeoutMs = 60_000) => {
  const r = await runCommand("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { timeoutMs })
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}\n${r.stdout}${r.stderr}`)
  return r
}

const childrenOf = (pid: number): Array<number> => {
  const out: Array<number> = []
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === pid) out.push(Number(e))
    } catch {
      // gone
    }
  }
  return out
}

/**
 * Both private servers skip only what protects against an operating-system crash (PostgreSQL
 * `fsync=off`, MariaDB `innodb_flush_log_at_trx_commit=2`): a commit they acknowledged survives a
 * crash of the server process (`crash()`), as on a production server.
 */

/** initdb + start a PostgreSQL 15 cluster in `dir` (as user postgres) on a free port; creates database `dvr`. */
export async function startPrivatePostgres(dir: string): Promise<PrivateServer> {
  const port = await freePort()
  const root = path.join(dir, "pg")
  fs.mkdirSync(path.join(root, "sock"), { recursive: true })
  await runCommand("chown", ["-R", "postgres:postgres", root])
  const data = path.join(root, "data")
  await su(`${PG_BIN}/initdb -D ${data} -U postgres --auth=trust -E UTF8 --no-locale >/dev/null`)
  const start = () =>
    su(`${PG_BIN}/pg_ctl -D ${data} -l ${root}/pg.log -w -t 30 -o '-p ${port} -k ${root}/sock -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null`).then(() => undefined)
  await start()
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`
  await query(admin, "CREATE DATABASE dvr")
  const url = `postgres://postgres@127.0.0.1:${port}/dvr`
  const postmaster = () => Number(fs.readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0])
  let paused: Array<number> = []
  const server: PrivateServer = {
    kind: "postgres",
    port,
    url,
    start,
    stop: () => su(`${PG_BIN}/pg_ctl -D ${data} -m fast -w -t 30 stop >/dev/null`).then(() => undefined),
    crash: () => su(`${PG_BIN}/pg_ctl -D ${data} -m immediate -w -t 30 stop >/dev/null`).then(() => undefined),
    pause: () => {
      const pm = postmaster()
      paused = [pm, ...childrenOf(pm)]
      for (const p of paused) process.kill(p, "SIGSTOP")
    },
    resume: () => {
      for (const p of paused) {
        try {
          process.kill(p, "SIGCONT")
        } catch {
          // exited meanwhile
        }
      }
      paused = []
    },
    connections: async () =>
      Number((await query<{ n: string }>(admin, "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'dvr' AND pid <> pg_backend_pid()"))[0]!.n),
    killConnections: async () => {
      await query(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'dvr' AND pid <> pg_backend_pid()")
    },
    destroy: async () => {
      server.resume()
      await su(`${PG_BIN}/pg_ctl -D ${data} -m immediate -w stop >/dev/null 2>&1 || true`).catch(() => undefined)
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
  return server
}

/** mariadb-install-db + mariadbd in `dir` on a free port (a child of this process); creates database `dvr`. */
export async function startPrivateMariadb(dir: string): Promise<PrivateServer> {
  const port = await freePort()
  const root = path.join(dir, "my")
  const data = path.join(root, "data")
  fs.mkdirSync(root, { recursive: true })
  const inst = await runCommand("mariadb-install-db", [
    "--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"
  ], { timeoutMs: 60_000 })
  if (inst.code !== 0) throw new Error(`mariadb-install-db failed: ${inst.stdout}${inst.stderr}`)
  let proc: ManagedProcess | undefined
  const start = async () => {
    proc = await spawnManaged("/usr/sbin/mariadbd", [
      "--no-defaults", "--user=root", `--datadir=${data}`, `--socket=${root}/mysqld.sock`, `--port=${port}`,
      "--bind-address=127.0.0.1", `--pid-file=${root}/mariadbd.pid`, `--log-error=${root}/err.log`, "--skip-name-resolve",
      "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin", "--innodb-buffer-pool-size=32M"
    ])
    await waitForTcp("127.0.0.1", port, {
      timeoutMs: 30_000,
      abortIf: () => (proc?.exitInfo() !== undefined ? `mariadbd exited: ${fs.readFileSync(`${root}/err.log`, "utf8")}` : undefined)
    })
    // the port accepts slightly before the server answers
    for (let i = 0; i < 100; i++) {
      try {
        await query(`mysql://root@127.0.0.1:${port}/mysql`, "SELECT 1")
        return
      } catch {
        await sleep(50)
      }
    }
  }
  await start()
  const admin = `mysql://root@127.0.0.1:${port}/mysql`
  await query(admin, "CREATE DATABASE dvr")
  const server: PrivateServer = {
    kind: "mysql",
    port,
    url: `mysql://root@127.0.0.1:${port}/dvr`,
    start,
    stop: async () => {
      const info = await proc?.stop(30_000)
      if (info !== undefined && info.code !== 0) throw new Error(`mariadbd exited with ${JSON.stringify(info)}`)
    },
    crash: async () => {
      if (proc === undefined) return
      process.kill(proc.pid, "SIGKILL")
      await proc.exited
    },
    pause: () => {
      if (proc !== undefined) process.kill(proc.pid, "SIGSTOP")
    },
    resume: () => {
      if (proc !== undefined && proc.exitInfo() === undefined) process.kill(proc.pid, "SIGCONT")
    },
    connections: async () =>
      Number((await query<{ n: number }>(admin, "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = 'dvr' AND id <> CONNECTION_ID()"))[0]!.n),
    killConnections: async () => {
      const ids = await query<{ id: number }>(admin, "SELECT id FROM information_schema.processlist WHERE db = 'dvr' AND id <> CONNECTION_ID()")
      for (const { id } of ids) await query(admin, `KILL ${Number(id)}`).catch(() => undefined)
    },
    destroy: async () => {
      server.resume()
      await proc?.stop(10_000)
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
  return server
}
