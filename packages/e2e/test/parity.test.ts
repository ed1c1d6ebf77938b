// Parity with the Lua director in real Dovecot (issue 5): for every store × strategy × Dovecot
// version, our Lua passdb (lua/director*.lua) and doveroute (2.3: dict; 2.4: lua/http-route.lua →
// the HTTP endpoint) answer the same users from the same database, and must agree on the reply
// fields of `doveadm auth test` and `doveadm auth lookup`, on the rows written (shard numbers
// included), on pre-existing rows, on backends with `state != 0` and on an empty backend table.
// Random placement is compared by property: one row per user, on a `state = 0` backend.
// Layout: see parity-support.ts. Fails (does not skip) when Dovecot 2.4, PostgreSQL or MariaDB
// is missing.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  makeChrootTempDir,
  requireDovecot24,
  stopDovecots,
  type ChrootTempDir,
  type Dovecot
} from "@doveroute/testkit"
import {
  authLookup,
  authLookupMany,
  authTest,
  BACKENDS,
  collidingPair,
  COMBOS,
  type Combo,
  EXTRA_PORT,
  makeParityDb,
  mapLimit,
  type ParityDaemon,
  type ParityDb,
  resetDb,
  rowsFor,
  rowsOf,
  shardOf,
  startParityDaemon,
  startParityProxy,
  USERS,
  WORKERS
} from "./parity-support.js"

const UP = new Set<number>(BACKENDS.filter((b) => b.state === 0).map((b) => b.id))
const byId = new Map<number, (typeof BACKENDS)[number]>(BACKENDS.map((b) => [b.id, b]))

let tmp: ChrootTempDir
const dbs = new Map<string, ParityDb>()
const daemons = new Map<string, ParityDaemon>()
const proxies = new Map<string, Dovecot>()

beforeAll(async () => {
  requireDovecot24()
  tmp = makeChrootTempDir()
  // allSettled: when one start fails, the others still finish, so afterAll stops everything started
  const started = await Promise.allSettled(COMBOS.map(async (c) => {
    const db = await makeParityDb(c.kind, c.variant, tmp, c.tag)
    dbs.set(c.label, db)
    await resetDb(db)
    const d = await startParityDaemon(db, tmp, c.tag)
    daemons.set(c.label, d)
    proxies.set(c.label, await startParityProxy(c, db, d, tmp))
  }))
  const failed = started.flatMap((r) => (r.status === "rejected" ? [r.reason] : []))
  if (failed.length > 0) throw failed[0]
}, 240_000)

afterAll(async () => {
  const [exits, codes] = await Promise.all([
    stopDovecots([...proxies.values()]),
    Promise.all([...daemons.values()].map((d) => d.daemon.stop()))
  ])
  await Promise.all([...dbs.values()].map((d) => d.drop()))
  if (process.env["DVR_PARITY_KEEP"] === undefined) await tmp?.cleanup()
  else console.log(`parity: kept ${tmp?.path}`)
  for (const e of exits) expect(e?.code).toBe(0)
  for (const c of codes) expect(c).toBe(0)
}, 120_000)

const NO_LOOKUP = { rc: null, fields: [] } as const

/**
 * Both sides for every user: `auth test` (and `auth lookup` unless `lookups` is false); `first`
 * runs all its lookups before the other side starts.
 */
const askAll = async (proxy: Dovecot, first: "lua" | "dr", users: ReadonlyArray<string>, lookups = true, firstLimit = WORKERS) => {
  const second = first === "lua" ? "dr" : "lua"
  const a = await mapLimit(users, firstLimit, (u) => authTest(proxy, first, u))
  const b = await mapLimit(users, WORKERS, (u) => authTest(proxy, second, u))
  const [ma, mb] = lookups ? await Promise.all([authLookupMany(proxy, first, users), authLookupMany(proxy, second, users)]) : [undefined, undefined]
  const la = users.map((u) => ma?.get(u) ?? NO_LOOKUP)
  const lb = users.map((u) => mb?.get(u) ?? NO_LOOKUP)
  return users.map((user, i) => ({ user, [first]: { test: a[i]!, lookup: la[i]! }, [second]: { test: b[i]!, lookup: lb[i]! } }) as {
    user: string
    lua: { test: typeof a[number]; lookup: typeof a[number] }
    dr: { test: typeof a[number]; lookup: typeof a[number] }
  })
}

/** The backend named by a field list (`host=`), checked against the backends table. */
const backendOf = (fields: ReadonlyArray<string>) => {
  const host = fields.find((f) => f.startsWith("host="))?.slice(5)
  return BACKENDS.find((b) => b.hostname === host)
}

/** Each user: one stored row on a state=0 backend, the reply names that backend (host, hostip iff non-empty, port). */
const checkPlaced = async (c: Combo, db: ParityDb, results: Awaited<ReturnType<typeof askAll>>) => {
  for (const r of results) {
    const rows = await rowsFor(db, r.user)
    expect(rows, `${c.label} ${r.user}: rows`).toHaveLength(1)
    expect(UP.has(rows[0]!), `${c.label} ${r.user}: placed on backend ${rows[0]} (state must be 0)`).toBe(true)
    const b = byId.get(rows[0]!)!
    const fields = r.lua.test.fields
    expect(r.lua.test.rc, `${c.label} ${r.user}: ${fields.join(" ")}`).toBe(0)
    expect(backendOf(fields)?.id, `${c.label} ${r.user}`).toBe(b.id)
    expect(fields).toContain(`port=${EXTRA_PORT}`)
    expect(fields.some((f) => f.startsWith("hostip=")), `${c.label} ${r.user}: hostip`).toBe(b.hostip !== null && b.hostip !== "")
    expect(fields.some((f) => f.startsWith("nopassword"))).toBe(false)
  }
  if (c.variant === "shard") {
    const keys = (await rowsOf(db)).map((r) => Number(r.split("→")[0]))
    expect(new Set(keys)).toEqual(new Set(results.map((r) => shardOf(r.user))))
  }
}

/** One scenario; it runs for every combination at once (each combination owns its proxy and database). */
const scenario = (name: string, run: (c: Combo, proxy: () => Dovecot, db: () => ParityDb) => Promise<void>, only?: (c: Combo) => boolean) =>
  describe(name, () => {
    it.concurrent.each(COMBOS.filter(only ?? (() => true)))("$label", async (c) => {
      await run(c, () => proxies.get(c.label)!, () => dbs.get(c.label)!)
    })
  })

scenario("first logins by the Lua passdb: one row per user on a state=0 backend; doveroute reads the same rows and answers the same fields", async (c, proxy, db) => {
  await resetDb(db())
  const res = await askAll(proxy(), "lua", USERS)
  const rows = await rowsOf(db())
  await checkPlaced(c, db(), res)
  for (const r of res) {
    expect(r.dr.test, `${c.label} ${r.user}: auth test`).toEqual(r.lua.test)
    expect(r.dr.lookup, `${c.label} ${r.user}: auth lookup`).toEqual(r.lua.lookup)
    expect(r.lua.lookup.rc, `${c.label} ${r.user}: auth lookup`).toBe(0)
    expect(r.lua.lookup.fields).toContain(`user=${r.user}`)
    expect(r.lua.lookup.fields.some((f) => f.startsWith("host="))).toBe(true)
  }
  expect(await rowsOf(db())).toEqual(rows) // doveroute wrote nothing
})

scenario("first logins by doveroute: the same properties; the Lua passdb reads doveroute's rows and answers the same fields", async (c, proxy, db) => {
  await resetDb(db())
  const res = await askAll(proxy(), "dr", USERS, false) // auth lookup parity: the scenario above
  const rows = await rowsOf(db())
  await checkPlaced(c, db(), res)
  for (const r of res) {
    expect(r.lua.test, `${c.label} ${r.user}: auth test`).toEqual(r.dr.test)
    expect(r.lua.lookup, `${c.label} ${r.user}: auth lookup`).toEqual(r.dr.lookup)
  }
  expect(await rowsOf(db())).toEqual(rows)
})

scenario("pre-existing rows win, also on a down backend (state != 0) and with NULL or empty hostip; nothing is written", async (c, proxy, db) => {
  const placed: Array<readonly [string, number]> = [["alice", 3], ["bob", 2], ["jörg", 4], ["CamelCase.User@Example.COM", 1]]
  await resetDb(db(), { rows: placed.map(([u, id]) => [c.variant === "shard" ? shardOf(u) : u, id] as const) })
  const before = await rowsOf(db())
  // the Lua side one at a time, hostip user first: a reply table shared between requests (the
  // published scripts' defect 5) would leak backend 3's hostip into bob's and jörg's replies
  const res = await askAll(proxy(), "lua", placed.map(([u]) => u), true, 1)
  for (const [i, [user, id]] of placed.entries()) {
    const r = res[i]!
    expect(r.lua.test.rc, `${c.label} ${user}: ${r.lua.test.fields.join(" ")}`).toBe(0)
    expect(backendOf(r.lua.test.fields)?.id, user).toBe(id)
    expect(r.lua.test.fields.some((f) => f.startsWith("hostip=")), user).toBe(id === 1 || id === 3)
    expect(r.dr.test, user).toEqual(r.lua.test)
    expect(r.dr.lookup, user).toEqual(r.lua.lookup)
    expect(r.lua.lookup.rc, user).toBe(0)
    expect(backendOf(r.lua.lookup.fields)?.id, user).toBe(id)
  }
  expect(await rowsOf(db())).toEqual(before)
})

scenario("only one backend with state = 0: every new user lands there on both sides (exact rows and fields)", async (c, proxy, db) => {
  await resetDb(db(), { backends: BACKENDS.map((b) => ({ ...b, state: b.id === 2 ? 0 : 1 })) })
  const [lua, dr] = [USERS.slice(0, 3), USERS.slice(5, 8)]
  const a = await mapLimit(lua, WORKERS, (u) => authTest(proxy(), "lua", u))
  const b = await mapLimit(dr, WORKERS, (u) => authTest(proxy(), "dr", u))
  for (const x of [...a, ...b]) {
    expect(x.rc, `${c.label}: ${x.fields.join(" ")}`).toBe(0)
    expect(backendOf(x.fields)?.id).toBe(2)
    expect(x.fields.some((f) => f.startsWith("hostip="))).toBe(false)
  }
  for (const u of [...lua, ...dr]) expect(await rowsFor(db(), u), u).toEqual([2])
})

scenario("an empty backend table, or no backend with state = 0: both sides temp_fail a new user and write no row", async (c, proxy, db) => {
  for (const backends of [[], BACKENDS.map((b) => ({ ...b, state: 1 }))]) {
    await resetDb(db(), { backends })
    for (const user of [backends.length === 0 ? "newcomer" : "Jörg-New@example.com"]) {
      const [lt, dt] = await Promise.all([authTest(proxy(), "lua", user), authTest(proxy(), "dr", user)])
      expect(lt.rc, `${c.label} ${user}: lua ${lt.fields.join(" ")}`).not.toBe(0)
      expect(dt).toEqual(lt)
      expect(lt.fields).toContain("code=temp_fail")
      if (c.version === "2.4") expect(lt.rc).toBe(75) // 2.4 doveadm: "internal auth failure"
      const [ll, dl] = await Promise.all([authLookup(proxy(), "lua", user), authLookup(proxy(), "dr", user)])
      expect(ll.rc).toBe(75)
      expect(dl).toEqual(ll)
    }
    expect(await rowsOf(db())).toEqual([])
  }
})

scenario("shard keys: the documented vectors, and two names with one shard share one row", async (_c, proxy, db) => {
  await resetDb(db())
  const [x, y] = collidingPair()
  const a = await mapLimit(["alice", "jörg", "user1@example.com"], WORKERS, (u) => authTest(proxy(), "dr", u))
  const bx = await authTest(proxy(), "lua", x)
  const by = await authTest(proxy(), "dr", y)
  for (const r of [...a, bx, by]) expect(r.rc, r.fields.join(" ")).toBe(0)
  const keys = (await rowsOf(db())).map((r) => Number(r.split("→")[0])).sort((p, q) => p - q)
  expect(keys).toEqual([10670, 8669, 40881, shardOf(x)].sort((p, q) => p - q))
  expect(shardOf(y)).toBe(shardOf(x))
  expect(backendOf(by.fields)).toEqual(backendOf(bx.fields))
  expect(by.fields.filter((f) => !f.startsWith("user="))).toEqual(bx.fields.filter((f) => !f.startsWith("user=")))
}, (c) => c.variant === "shard")

scenario("a row pointing at a backend id that does not exist: each side places the user anew on a state=0 backend, replacing the row (one row); the other side then reads it", async (c, proxy, db) => {
  const key = (u: string) => (c.variant === "shard" ? shardOf(u) : u)
  await resetDb(db(), { rows: [[key("ghost"), 77], [key("ghost2"), 78]] })
  for (const [user, first, second] of [["ghost", "lua", "dr"], ["ghost2", "dr", "lua"]] as const) {
    const a = await authTest(proxy(), first, user)
    expect(a.rc, `${c.label} ${first} ${user}: ${a.fields.join(" ")}`).toBe(0)
    const rows = await rowsFor(db(), user)
    expect(rows, `${c.label} ${user}: rows after ${first}`).toHaveLength(1)
    expect(UP.has(rows[0]!), `${c.label} ${user}: placed on backend ${rows[0]}`).toBe(true)
    expect(backendOf(a.fields)?.id).toBe(rows[0])
    const b = await authTest(proxy(), second, user)
    expect(b, `${c.label} ${second} ${user}`).toEqual(a)
    expect(await rowsFor(db(), user)).toEqual(rows)
  }
})

scenario("an INSERT that fails: both sides temp_fail and store nothing (no unstored random backend); the next new user works", async (c, proxy, db) => {
  await resetDb(db())
  await db().query("CREATE TRIGGER parity_no_insert BEFORE INSERT ON user_backend BEGIN SELECT RAISE(ABORT, 'parity: inserts refused'); END")
  try {
    for (const side of ["lua", "dr"] as const) {
      const r = await authTest(proxy(), side, `refused-${side}`)
      expect(r.rc, `${c.label} ${side}: ${r.fields.join(" ")}`).not.toBe(0)
      expect(r.fields).toContain("code=temp_fail")
    }
    expect(await rowsOf(db())).toEqual([])
  } finally {
    await db().query("DROP TRIGGER parity_no_insert")
  }
  // the failed statement does not poison the next lookup (LuaDBI's SQLite driver would repeat the error)
  for (const side of ["lua", "dr"] as const) expect((await authTest(proxy(), side, `after-${side}`)).rc).toBe(0)
  expect(await rowsOf(db())).toHaveLength(2)
}, (c) => c.kind === "sqlite")

scenario("the database server drops every connection: both sides reconnect and answer the next lookup", async (c, proxy, db) => {
  await resetDb(db(), { rows: [[c.variant === "shard" ? shardOf("alice") : "alice", 1]] })
  const warm = await Promise.all([authTest(proxy(), "lua", "alice"), authTest(proxy(), "dr", "alice")])
  expect(warm.map((w) => w.rc)).toEqual([0, 0])
  if (c.kind === "postgres") {
    await db().query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
  } else {
    for (const row of await db().query("SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")) {
      await db().query(`KILL ${Number(row["id"] ?? row["ID"])}`).catch(() => undefined)
    }
  }
  const [lt, dt] = [await authTest(proxy(), "lua", "alice"), await authTest(proxy(), "dr", "alice")]
  expect(lt.rc, `${c.label} lua: ${lt.fields.join(" ")}`).toBe(0)
  expect(dt).toEqual(lt)
  expect(backendOf(lt.fields)?.id).toBe(1)
}, (c) => c.kind !== "sqlite")
