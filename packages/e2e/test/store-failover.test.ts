// High-availability PostgreSQL stores: a store URL naming a primary and its standby
// (`postgres://user@h1:p1,h2:p2/db?target_session_attrs=read-write`), against a real streaming
// replica this test builds (a private primary, initdb in a temp dir on its own port, run as
// `postgres`; a standby made with `pg_basebackup -R`; the machine's shared server is not touched).
//
// 1. The daemon (the bundle: `npm run build` first) serves with the two-host URL (read from a
//    store_file, with a password that trust auth never asks for): first logins and `user move` go
//    to the primary. The primary crashes (`pg_ctl stop -m immediate`): while no host is read-write
//    every known user is still answered with its host from the in-memory routing table and every
//    first login answers F (temp_fail, never N, never a host). The standby is promoted
//    (`pg_ctl promote`): with no restart (same process), first logins answer O again and their rows
//    are on the new primary, a `doveroute user move` with the same URL succeeds there and the daemon
//    routes the user to its new host; the log says which host is the primary, and the password is
//    in no log line and in no command's output. `config check` accepts the URL (redacted).
// 2. The pool alone (SqlClientLayer), the standby listed first: it connects to the primary (the
//    standby is skipped), over TCP and over the servers' UNIX sockets (percent-encoded socket
//    directories in the host list). The primary is fenced (`default_transaction_read_only = on`): the next
//    statement fails with 25006 and that connection is closed; with no read-write host a statement
//    fails `Unavailable`, naming why each host was refused; once the standby is promoted statements
//    run there, and no connection to the fenced server remains.
import { parseStoreUrl, SqlClientLayer } from "@doveroute/store"
import { freePorts, makeTempDir, runCli, runCommand, sleep, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Effect, Exit, ManagedRuntime } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { DictClient, hostOf, mappings, query, seedBackends } from "./store-support.js"

const PG_BIN = "/usr/lib/postgresql/15/bin"
const PASSWORD = "Fa1lover-S3cret"

const su = async (cmd: string, timeoutMs = 60_000) => {
  const r = await runCommand("su", ["postgres", "-s", "/bin/sh", "-c", cmd], { timeoutMs })
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}\n${r.stdout}${r.stderr}`)
  return r
}

/** A primary and a streaming standby, each with its own data directory and port. */
interface ReplicaPair {
  readonly primaryPort: number
  readonly standbyPort: number
  /** Database `dvr` on the primary / the standby, one host each. */
  readonly primaryUrl: string
  readonly standbyUrl: string
  /** The servers' UNIX socket directories. */
  readonly primarySocketDir: string
  readonly standbySocketDir: string
  /** Wait until the standby has replayed everything the primary has written. */
  caughtUp(): Promise<void>
  crashPrimary(): Promise<void>
  promoteStandby(): Promise<void>
  destroy(): Promise<void>
}

async function startReplicaPair(dir: string): Promise<ReplicaPair> {
  const [primaryPort, standbyPort] = (await freePorts(2)) as [number, number]
  const root = path.join(dir, "pgha")
  for (const d of ["sock1", "sock2"]) fs.mkdirSync(path.join(root, d), { recursive: true })
  await runCommand("chown", ["-R", "postgres:postgres", root])
  const primary = path.join(root, "primary")
  const standby = path.join(root, "standby")
  await su(`${PG_BIN}/initdb -D ${primary} -U postgres --auth=trust -E UTF8 --no-locale >/dev/null`)
  await su(
    `${PG_BIN}/pg_ctl -D ${primary} -l ${root}/primary.log -w -t 30 -o '-p ${primaryPort} -k ${root}/sock1 -c listen_addresses=127.0.0.1 ` +
      `-c wal_level=replica -c max_wal_senders=4 -c fsync=off' start >/dev/null`
  )
  const primaryAdmin = `postgres://postgres@127.0.0.1:${primaryPort}/postgres`
  await query(primaryAdmin, "CREATE DATABASE dvr")
  await su(`${PG_BIN}/pg_basebackup -h 127.0.0.1 -p ${primaryPort} -U postgres -D ${standby} -R -X stream -c fast`)
  await su(
    `${PG_BIN}/pg_ctl -D ${standby} -l ${root}/standby.log -w -t 30 -o '-p ${standbyPort} -k ${root}/sock2 -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null`
  )
  const t0 = Date.now()
  for (;;) {
    const r = await query<{ n: string }>(primaryAdmin, "SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming'")
    if (r[0]!.n === "1") break
    if (Date.now() - t0 > 30_000) throw new Error("the standby does not stream from the primary")
    await sleep(100)
  }
  const inRecovery = await query<{ r: boolean }>(`postgres://postgres@127.0.0.1:${standbyPort}/dvr`, "SELECT pg_is_in_recovery() AS r")
  expect(inRecovery[0]!.r, "the standby is a standby").toBe(true)
  return {
    primaryPort,
    standbyPort,
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/dvr`,
    standbyUrl: `postgres://postgres@127.0.0.1:${standbyPort}/dvr`,
    primarySocketDir: path.join(root, "sock1"),
    standbySocketDir: path.join(root, "sock2"),
    caughtUp: async () => {
      const t = Date.now()
      for (;;) {
        const r = await query<{ ok: boolean }>(
          primaryAdmin,
          "SELECT coalesce(bool_and(replay_lsn >= pg_current_wal_lsn()), false) AS ok FROM pg_stat_replication"
        )
        if (r[0]!.ok) return
        if (Date.now() - t > 30_000) throw new Error("the standby does not catch up")
        await sleep(50)
      }
    },
    crashPrimary: () => su(`${PG_BIN}/pg_ctl -D ${primary} -m immediate -w -t 30 stop >/dev/null`).then(() => undefined),
    promoteStandby: () => su(`${PG_BIN}/pg_ctl -D ${standby} -w -t 60 promote >/dev/null`).then(() => undefined),
    destroy: async () => {
      for (const d of [primary, standby]) await su(`${PG_BIN}/pg_ctl -D ${d} -m immediate -w stop >/dev/null 2>&1 || true`).catch(() => undefined)
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
}

const lookupAll = async (socket: string, users: ReadonlyArray<string>) => {
  const c = await DictClient.connect(socket)
  try {
    const out = new Map<string, string>()
    for (const u of users) out.set(u, (await c.lookup(u)).line)
    return out
  } finally {
    c.close()
  }
}

/** A failed statement's error and its causes, as `code: message` lines. */
const failureText = (e: Exit.Exit<unknown, unknown>): string => {
  if (!Exit.isFailure(e)) return "(succeeded)"
  const out: Array<string> = []
  let c: unknown = Cause.squash(e.cause)
  for (let i = 0; i < 5 && c !== null && typeof c === "object"; i++) {
    const d = c as { code?: unknown; message?: unknown; cause?: unknown }
    out.push(`${String(d.code ?? "")}: ${String(d.message ?? "")}`)
    c = d.cause
  }
  return out.join("\n")
}

const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> => {
  const t0 = Date.now()
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out: ${what}`)
    await sleep(100)
  }
}

describe("PostgreSQL store on a primary and a streaming standby", () => {
  it("daemon: known users routed from memory while no host is read-write, first logins F; after the promotion first logins and user move land on the new primary without a restart", async () => {
    const tmp = makeTempDir()
    let pair: ReplicaPair | undefined
    let daemon: RunningDaemon | undefined
    try {
      pair = await startReplicaPair(tmp.path)
      const hosts = `127.0.0.1:${pair.primaryPort},127.0.0.1:${pair.standbyPort}`
      const url = `postgres://postgres:${PASSWORD}@${hosts}/dvr?target_session_attrs=read-write`
      const storeFile = tmp.join("store.url")
      fs.writeFileSync(storeFile, url + "\n", { mode: 0o600 })
      const socket = tmp.join("dict.sock")

      // config check takes the URL and shows it without the password
      const check = await runCli(["config", "check", "--store-file", storeFile])
      expect(check.code, check.stdout + check.stderr).toBe(0)
      expect(check.stdout).toContain(`store postgres://postgres:xxx@${hosts}/dvr?target_session_attrs=read-write`)
      expect(check.stdout + check.stderr).not.toContain(PASSWORD)

      daemon = await startDaemon({
        args: ["--store-file", storeFile, "--dict-socket", socket, "--log-level", "info"],
        waitFor: [socket],
        env: { DOVEROUTE_QUERY_TIMEOUT: "1500 millis", DOVEROUTE_CONNECT_TIMEOUT: "1500 millis", DOVEROUTE_MAX_CONNECTIONS: "4" },
        timeoutMs: 60_000
      })
      const cli = async (args: ReadonlyArray<string>) => {
        const r = await runCli([...args, "--store-file", storeFile], { timeoutMs: 60_000 })
        expect(r.stdout + r.stderr, `doveroute ${args.join(" ")}: no password`).not.toContain(PASSWORD)
        return r
      }
      await seedBackends(pair.primaryUrl, 3)

      // first logins and an admin write, on the primary
      const known = Array.from({ length: 20 }, (_, i) => `known${i}@example.com`)
      const first = await lookupAll(socket, known)
      const before = new Map<string, string>()
      for (const [u, line] of first) {
        expect(line, u).toMatch(/^O/)
        before.set(u, hostOf(line)!)
      }
      const other = (h: string) => (h === "backend1.test" ? "backend2.test" : "backend1.test")
      const moved0 = other(before.get("known0@example.com")!)
      const mv0 = await cli(["user", "move", "known0@example.com", moved0])
      expect(mv0.code, mv0.stdout + mv0.stderr).toBe(0)
      before.set("known0@example.com", moved0)
      expect(hostOf((await lookupAll(socket, ["known0@example.com"])).get("known0@example.com")!), "the move is seen").toBe(moved0)
      expect(Object.fromEntries([...(await mappings(pair.primaryUrl))].map(([u, h]) => [u, h[0]]))).toEqual(Object.fromEntries(before))
      await pair.caughtUp()

      // the primary crashes; nothing is read-write until the promotion
      const logsBefore = daemon.logs().length
      await pair.crashPrimary()
      const crashed = Date.now()
      const during = new Map<string, Array<string>>()
      let round = 0
      while (Date.now() - crashed < 3000 || round < 2) {
        const fresh = `during${round}@example.com`
        const lines = await lookupAll(socket, [...known, fresh])
        for (const [u, line] of lines) during.set(u, [...(during.get(u) ?? []), line])
        round++
        await sleep(200)
      }
      for (const u of known) {
        const lines = during.get(u)!
        expect(lines.filter((l) => hostOf(l) !== before.get(u)), `${u} routed from memory to its host while no primary`).toEqual([])
      }
      for (let i = 0; i < round; i++) {
        const lines = during.get(`during${i}@example.com`)!
        expect(lines[0], `first login during${i} while no host is read-write: temp_fail`).toMatch(/^F/)
      }

      // promote the standby: the same daemon writes there by itself
      await pair.promoteStandby()
      const promoted = Date.now()
      const afterUser = await waitFor("a first login succeeds after the promotion", async () => {
        const u = `after${Date.now()}@example.com`
        const line = (await lookupAll(socket, [u])).get(u)!
        expect(line, `${u}: never N`).not.toMatch(/^N/)
        return line.startsWith("O") ? { u, host: hostOf(line)! } : undefined
      })
      console.log(`first login answered O ${Date.now() - promoted} ms after the promotion`)
      const onNew = await mappings(pair.standbyUrl)
      expect(onNew.get(afterUser.u), "the first login's row is on the new primary").toEqual([afterUser.host])
      // the users the failed first logins asked for got no row anywhere half-written
      for (let i = 0; i < round; i++) expect(onNew.get(`during${i}@example.com`)).toBeUndefined()
      // known users kept their hosts
      const still = await lookupAll(socket, known)
      for (const u of known) expect(hostOf(still.get(u)!), u).toBe(before.get(u))

      // an admin write with the same URL: the move lands on the new primary, the daemon routes by it
      const moved1 = other(before.get("known1@example.com")!)
      const mv1 = await cli(["user", "move", "known1@example.com", moved1])
      expect(mv1.code, mv1.stdout + mv1.stderr).toBe(0)
      expect((await mappings(pair.standbyUrl)).get("known1@example.com"), "the move's row on the new primary").toEqual([moved1])
      await waitFor("the daemon routes the moved user to its new host", async () =>
        hostOf((await lookupAll(socket, ["known1@example.com"])).get("known1@example.com")!) === moved1 ? true : undefined)

      // the same process all along; the log names the new primary and never the password
      expect(daemon.exited()).toBe(false)
      const logs = daemon.logs()
      expect(logs.slice(logsBefore)).toContain(`PostgreSQL primary is now 127.0.0.1:${pair.standbyPort}`)
      expect(logs).toContain(`PostgreSQL primary 127.0.0.1:${pair.primaryPort} (of 2 hosts)`)
      expect(logs).not.toContain(PASSWORD)
      const code = await daemon.stop()
      daemon = undefined
      expect(code).toBe(0)
    } finally {
      await daemon?.stop()
      await pair?.destroy()
      await tmp.cleanup()
    }
  }, 240_000)

  it("pool: the standby listed first is skipped; a fenced primary's connection is closed after 25006; no read-write host = Unavailable; then the promoted standby", async () => {
    const tmp = makeTempDir()
    let pair: ReplicaPair | undefined
    let rt: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown> | undefined
    try {
      pair = await startReplicaPair(tmp.path)
      const url = `postgres://postgres@127.0.0.1:${pair.standbyPort},127.0.0.1:${pair.primaryPort}/dvr?target_session_attrs=primary`
      rt = ManagedRuntime.make(SqlClientLayer.layer(parseStoreUrl(url), { maxConnections: 1, connectTimeout: "2 seconds" }))
      const run = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) => rt!.runPromiseExit(Effect.flatMap(SqlClient.SqlClient, f))
      const port = async () => {
        const e = await run((sql) => sql<{ p: number }>`SELECT inet_server_port() AS p`)
        if (!Exit.isSuccess(e)) throw new Error(String(e))
        return e.value[0]!.p
      }
      expect(await port(), "the standby, listed first, is skipped").toBe(pair.primaryPort)
      // the same through the servers' UNIX sockets (percent-encoded socket directories)
      const enc = encodeURIComponent
      const viaSockets = `postgres://postgres@${enc(pair.standbySocketDir)}:${pair.standbyPort},${enc(pair.primarySocketDir)}:${pair.primaryPort}/dvr`
      const sockRt = ManagedRuntime.make(SqlClientLayer.layer(parseStoreUrl(viaSockets), { maxConnections: 1 }))
      try {
        const where = await sockRt.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ port: string; addr: string | null }>`SELECT current_setting('port') AS port, inet_server_addr()::text AS addr`))
        expect(where, "over the primary's UNIX socket").toEqual([{ port: String(pair.primaryPort), addr: null }])
      } finally {
        await sockRt.dispose()
      }
      expect(Exit.isSuccess(await run((sql) => sql`CREATE TABLE t (x int)`))).toBe(true)
      expect(Exit.isSuccess(await run((sql) => sql`INSERT INTO t VALUES (1)`))).toBe(true)
      await pair.caughtUp()

      // fence the primary: its sessions turn read-only
      await query(pair.primaryUrl, "ALTER SYSTEM SET default_transaction_read_only = on")
      await query(pair.primaryUrl, "SELECT pg_reload_conf()")
      await sleep(300)
      const fenced = await run((sql) => sql`INSERT INTO t VALUES (2)`)
      expect(Exit.isFailure(fenced)).toBe(true)
      expect(failureText(fenced), "the statement met 25006 read_only_sql_transaction").toContain("25006: ")
      const appConns = (u: string) =>
        query<{ n: string }>(u, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'doveroute'").then((r) => Number(r[0]!.n))
      await waitFor("the connection that met 25006 is closed", async () => ((await appConns(pair!.primaryUrl)) === 0 ? true : undefined), 5000)

      // no read-write host now: Unavailable, each host named with its reason
      const none = await run((sql) => sql`INSERT INTO t VALUES (3)`)
      expect(Exit.isFailure(none)).toBe(true)
      const why = failureText(none)
      expect(why).toContain(`127.0.0.1:${pair.standbyPort}: in recovery (a standby)`)
      expect(why).toContain(`127.0.0.1:${pair.primaryPort}: read-only (transaction_read_only on)`)
      expect(await appConns(pair.primaryUrl), "no connection kept on the fenced server").toBe(0)

      await pair.promoteStandby()
      await waitFor("a statement runs on the promoted standby", async () =>
        Exit.isSuccess(await run((sql) => sql`INSERT INTO t VALUES (4)`)) ? true : undefined)
      expect(await port()).toBe(pair.standbyPort)
      const rows = await query<{ x: number }>(pair.standbyUrl, "SELECT x FROM t ORDER BY x")
      expect(rows.map((r) => r.x)).toEqual([1, 4])
      expect(await appConns(pair.primaryUrl), "nothing on the fenced server").toBe(0)
    } finally {
      await rt?.dispose()
      await pair?.destroy()
      await tmp.cleanup()
    }
  }, 180_000)
})
