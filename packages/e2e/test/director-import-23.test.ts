// Issue 13: from a Dovecot 2.3 Director ring to doveroute. A real 2.3.19 ring (two directors on
// loopback, own base_dir and ring port each) in front of a real backend: hosts changed with real
// doveadm (update, down, add, remove), users mapped with `doveadm director move` (through both
// directors) and by a real IMAP login through the ring. What real doveadm prints (`director
// status`, `dump`, `map -f USERS`, table and `-f tab`; `doveconf -h director_mail_servers`) goes
// through `doveroute import --from-director-config` / `--from-director` into SQLite, PostgreSQL
// and MariaDB: the rows, the hosts' tags (`@tagx` in director_mail_servers, `doveadm director add
// HOST@tagy`), `doveroute lookup` and the report must match what the ring had.
import {
  dictConfExt23,
  dictRoute23,
  freePort,
  imapLogin,
  makeTempDir,
  proxyConfig23,
  runCommand,
  startBackend23,
  startDaemon,
  startDirectorRing23,
  startDovecot23,
  stopDovecots,
  waitUntil,
  type Backend,
  type DirectorRing,
  type Dovecot,
  type TempDir
} from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ADMIN_STORES, adminStore, type AdminStore, type AdminStoreKind } from "./admin-support.js"

const MAIL_SERVERS = "127.0.0.2 127.0.0.3 127.0.0.4@tagx 127.0.0.10-127.0.0.11"
/** The user names given to `doveadm director map -f` ("Alice" has alice's hash: director_username_hash = %Lu). */
const NAMED = ["alice", "Alice", "bob", "carol", "dave"] as const
const MOVES = { alice: "127.0.0.3", bob: "127.0.0.4", carol: "127.0.0.2", erin: "127.0.0.3" } as const

let tmp: TempDir
let backend: Backend
let ring: DirectorRing
/** A Dovecot 2.3 proxy whose passdb is doveroute's dict socket (`dictSock`): the logins after the switch. */
let proxy: Dovecot
let proxyImapPort: number
let dictSock: string
/** user → IP as the ring maps it (`doveadm -f tab director map -f USERS` of the second director). */
const ringMap = new Map<string, string>()
/** The rows doveroute must have with `normalize.lowercase` (alice and Alice are one user, as on the ring). */
const lowered = () => Object.fromEntries([...ringMap].map(([u, ip]) => [u.toLowerCase(), ip]))
let files: { table: string; tab: string; servers: string; users: string }

const doveadm = async (args: ReadonlyArray<string>, i = 0) => {
  const r = await ring.doveadm(args, i)
  if (r.code !== 0) throw new Error(`doveadm ${args.join(" ")}: exit ${r.code}: ${r.stderr}${r.stdout}`)
  return r.stdout
}

beforeAll(async () => {
  tmp = makeTempDir({ prefix: "dvr-director-" })
  backend = await startBackend23(tmp.path, { listen: ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.10", "127.0.0.20"] })
  ring = await startDirectorRing23({ tmpDir: tmp.path, mailServers: MAIL_SERVERS, backendImapPort: backend.imapPort })
  await doveadm(["director", "update", "127.0.0.2", "50"])
  await doveadm(["director", "add", "127.0.0.20@tagy", "7"])
  await doveadm(["director", "down", "127.0.0.10"])
  await doveadm(["director", "remove", "127.0.0.11"], 1)
  for (const [user, host] of Object.entries(MOVES)) await doveadm(["director", "move", user, host], user === "carol" ? 1 : 0)
  // dave logs in for real through the ring: the director picks his host
  const login = await imapLogin("127.0.0.1", ring.imapPorts[0]!, "dave", "secret")
  expect(login.login.status, login.transcript).toBe("OK")
  await waitUntil("the backend's Login: line of dave", () => backend.logins("dave").length === 1)
  files = { table: tmp.join("ring.txt"), tab: tmp.join("ring-tab.txt"), servers: tmp.join("servers.txt"), users: tmp.join("users.txt") }
  fs.writeFileSync(files.users, NAMED.join("\n") + "\n")
  // the second director must know every mapping (the ring shares them)
  const deadline = Date.now() + 20_000
  let tab = ""
  for (;;) {
    tab = await doveadm(["-f", "tab", "director", "map", "-f", files.users], 1)
    if (tab.split("\n").filter((l) => /\t127\.0\.0\./.test(l)).length >= 6 || Date.now() > deadline) break
    await new Promise((r) => setTimeout(r, 200))
  }
  for (const line of tab.split("\n").slice(1)) {
    const [user, , ip] = line.split("\t")
    if (user !== undefined && ip !== undefined && user !== "<unknown>") ringMap.set(user, ip)
  }
  expect(Object.fromEntries(ringMap)).toMatchObject({ alice: "127.0.0.3", Alice: "127.0.0.3", bob: "127.0.0.4", carol: "127.0.0.2" })
  expect([...ringMap.keys()].sort()).toEqual([...NAMED].sort())
  expect(backend.servedBy("dave")).toBe(ringMap.get("dave"))
  fs.writeFileSync(files.table, [
    await doveadm(["director", "status"]),
    await doveadm(["director", "dump"]),
    await doveadm(["director", "map", "-f", files.users])
  ].join(""))
  fs.writeFileSync(files.tab, [
    await doveadm(["-f", "tab", "director", "status"], 1),
    await doveadm(["-f", "tab", "director", "dump"], 1),
    tab
  ].join(""))
  const servers = await runCommand("doveconf", ["-c", ring.directors[0]!.paths.configPath, "-h", "director_mail_servers"])
  expect(servers.code, servers.stderr).toBe(0)
  fs.writeFileSync(files.servers, servers.stdout)
  dictSock = tmp.join("dict.sock")
  proxyImapPort = await freePort()
  const dir = tmp.join("proxy")
  const ext = tmp.join("dict.conf.ext")
  proxy = await startDovecot23({
    dir,
    config: proxyConfig23({ dir, imapPort: proxyImapPort }, dictRoute23({ dictConfPath: ext })),
    files: { [ext]: dictConfExt23({ socketPath: dictSock }) },
    tcp: [{ host: "127.0.0.1", port: proxyImapPort }]
  })
}, 120_000)

afterAll(async () => {
  await ring?.stop()
  await stopDovecots([(backend as Backend | undefined)?.dovecot, proxy])
  await tmp?.cleanup()
}, 60_000)

const STORES: ReadonlyArray<AdminStoreKind> = ADMIN_STORES

describe.each(STORES)("a 2.3 Director ring into %s", { timeout: 300_000 }, (kind) => {
  let store: AdminStore
  beforeAll(async () => {
    // as docs/migrating-from-director.md advises: the ring hashed %Lu, so "Alice" is alice
    store = await adminStore(kind, { normalize: { lowercase: true } })
    const m = await store.cli(["migrate"])
    expect(m.code, m.stderr).toBe(0)
  }, 120_000)
  afterAll(async () => {
    await store?.drop()
  })

  const userRows = async () => {
    const rows = await store.sql<{ u: string; ip: string }>(
      `SELECT ub.${kind === "mysql" ? "`user`" : `"user"`} AS u, b.hostip AS ip FROM user_backend ub JOIN backends b ON b.id = ub.backend_id`
    )
    return Object.fromEntries(rows.map((r) => [r.u, r.ip]))
  }

  it("--from-director-config: director_mail_servers (range expanded) become backends, up, weight 100; the host's @tag is the backend's tag", async () => {
    const r = await store.cli(["import", "--from-director-config", files.servers, "--json"])
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.backends.map((b: { action: string; hostname: string }) => `${b.action} ${b.hostname}`)).toEqual(
      ["add 127.0.0.2", "add 127.0.0.3", "add 127.0.0.4", "add 127.0.0.10", "add 127.0.0.11"]
    )
    expect(r.stderr).not.toContain("not carried over")
    const list = await store.json<Array<{ hostname: string; hostip: string; state: number; weight: number; tag: string | null }>>(["backend", "list"])
    expect(list.map((b) => [b.hostname, b.hostip, b.state, b.weight, b.tag])).toEqual([
      ["127.0.0.2", "127.0.0.2", 0, 100, null], ["127.0.0.3", "127.0.0.3", 0, 100, null], ["127.0.0.4", "127.0.0.4", 0, 100, "tagx"],
      ["127.0.0.10", "127.0.0.10", 0, 100, null], ["127.0.0.11", "127.0.0.11", 0, 100, null]
    ])
  })

  it("--from-director --dry-run shows the changes (vhosts, down, a new host, the users) and writes nothing", async () => {
    const r = await store.cli(["import", "--from-director", files.table, "--dry-run", "--json"])
    expect(r.code, r.stderr).toBe(3) // erin's hash has no user name: not carried over
    const out = JSON.parse(r.stdout)
    expect(out.dryRun).toBe(true)
    const steps = Object.fromEntries(out.backends.map((b: { hostname: string }) => [b.hostname, b]))
    expect(steps["127.0.0.2"]).toMatchObject({ action: "update", weightBefore: 100, weight: 50, state: "up" })
    expect(steps["127.0.0.10"]).toMatchObject({ action: "update", stateBefore: "up", state: "down" })
    // the tag added with `doveadm director add 127.0.0.20@tagy` (dump: HOST@TAG, status: the tag column)
    expect(steps["127.0.0.20"]).toMatchObject({ action: "add", hostip: "127.0.0.20", weight: 7, tag: "tagy" })
    expect(steps["127.0.0.3"]).toMatchObject({ action: "unchanged", tag: null })
    expect(steps["127.0.0.4"]).toMatchObject({ action: "unchanged", tag: "tagx" })
    expect(out.mappings).toMatchObject({ total: NAMED.length, inserted: NAMED.length - 1, unchanged: 1, conflictCount: 0, errorCount: 0 })
    expect(out.unnamedCount).toBe(1)
    expect(out.removedHosts).toEqual([{ ip: "127.0.0.11", backend: { id: 5, hostname: "127.0.0.11" } }])
    expect(r.stderr).toMatch(/not carried over: 1 user hashes without a user name/)
    expect(await userRows()).toEqual({})
    const list = await store.json<Array<{ hostname: string }>>(["backend", "list"])
    expect(list).toHaveLength(5)
  })

  it("--from-director imports the ring: rows and `doveroute lookup` give every user the director's host", async () => {
    const r = await store.cli(["import", "--from-director", files.table])
    expect(r.code, r.stderr).toBe(3)
    expect(r.stdout).toContain(`${NAMED.length} rows: ${NAMED.length - 1} inserted, 1 unchanged, 0 conflicts, 0 errors`)
    expect(r.stdout).toContain("backend 127.0.0.10 (id 4): up -> down")
    expect(r.stderr).toContain("not carried over: host 127.0.0.11 was removed from the ring, but backend 127.0.0.11 (id 5) has its IP")
    expect(r.stderr).toMatch(/hash \d+ on 127\.0\.0\.3/)
    expect(await userRows()).toEqual(lowered())
    for (const [user, ip] of ringMap) {
      const l = await store.json<{ mapped: boolean; backend: { hostip: string }; fields: Record<string, unknown> }>(["lookup", user])
      expect(l.mapped, user).toBe(true)
      expect(l.backend.hostip, user).toBe(ip)
      expect(l.fields, user).toMatchObject({ host: ip, hostip: ip })
    }
    const erin = await store.json<{ mapped: boolean }>(["lookup", "erin"])
    expect(erin.mapped).toBe(false)
    const list = await store.json<Array<{ hostname: string; state: number; weight: number; tag: string | null }>>(["backend", "list"])
    expect(Object.fromEntries(list.map((b) => [b.hostname, [b.state, b.weight, b.tag]]))).toEqual({
      "127.0.0.2": [0, 50, null], "127.0.0.3": [0, 100, null], "127.0.0.4": [0, 100, "tagx"], "127.0.0.10": [1, 100, null], "127.0.0.11": [0, 100, null],
      "127.0.0.20": [0, 7, "tagy"]
    })
  })

  it("after the switch, real IMAP logins through Dovecot + doveroute (dict) land on the ring's backends", async () => {
    const daemon = await startDaemon({
      args: ["--config", store.config, "--dict-socket", dictSock, "--proxy-flag", "proxy", "--extra-field", "nopassword", "--extra-field", `port=${backend.imapPort}`],
      waitFor: [dictSock]
    })
    try {
      for (const user of ["alice", "Alice", "bob", "carol", "dave"]) {
        const before = backend.logins(user.toLowerCase()).length
        const r = await imapLogin("127.0.0.1", proxyImapPort, user, "secret")
        expect(r.login.status, `${user}: ${r.transcript}`).toBe("OK")
        await waitUntil(`the backend's Login: line of ${user}`, () => backend.logins(user.toLowerCase()).length === before + 1)
        // the backend logs the lower-cased name: its passwd-file knows alice, and so did the ring
        expect(backend.servedBy(user.toLowerCase()), user).toBe(ringMap.get(user))
      }
    } finally {
      expect(await daemon.stop()).toBe(0)
    }
  })

  it("the `doveadm -f tab` output of the other director imports as unchanged", async () => {
    const r = await store.cli(["import", "--from-director", files.tab, "--json"])
    expect(r.code, r.stderr).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out.backends.every((b: { action: string }) => b.action === "unchanged")).toBe(true)
    expect(out.mappings).toMatchObject({ total: NAMED.length, inserted: 0, unchanged: NAMED.length })
    expect(await userRows()).toEqual(lowered())
  })
})

describe("--from-director refuses what it cannot carry over (SQLite)", { timeout: 120_000 }, () => {
  let store: AdminStore
  beforeAll(async () => {
    store = await adminStore("sqlite")
    expect((await store.cli(["migrate"])).code).toBe(0)
  })
  afterAll(async () => {
    await store?.drop()
  })

  it("a line that is not director output stops the import before anything is written", async () => {
    const bad = tmp.join("bad.txt")
    fs.writeFileSync(bad, fs.readFileSync(files.table, "utf8") + "Error: auth-master: userdb list: User listing returned failure\n")
    const r = await store.cli(["import", "--from-director", bad])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/line \d+: not a line of "doveadm director dump", "status" or "map"/)
    expect(await store.sql("SELECT id FROM backends")).toEqual([])
    expect(await store.sql("SELECT backend_id FROM user_backend")).toEqual([])
  })

  it("a map without the dump names hosts no backend has: errors, not guesses (exit 3)", async () => {
    const mapOnly = tmp.join("map-only.txt")
    fs.writeFileSync(mapOnly, (await doveadm(["director", "map", "-f", files.users])))
    const r = await store.cli(["import", "--from-director", mapOnly, "--json"])
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    expect(out.mappings).toMatchObject({ inserted: 0, errorCount: NAMED.length })
    expect(out.mappings.errors[0]).toMatchObject({ error: "unknown backend" })
    expect(await store.sql("SELECT backend_id FROM user_backend")).toEqual([])
  })

  it("a backend added beforehand under its host name is found by its hostip", async () => {
    const add = await store.cli(["backend", "add", "imap-c.example.org", "--hostip", "127.0.0.3"])
    expect(add.code, add.stderr).toBe(0)
    const r = await store.cli(["import", "--from-director", files.table, "--json"])
    const out = JSON.parse(r.stdout)
    expect(out.backends.find((b: { hostip: string }) => b.hostip === "127.0.0.3")).toMatchObject({ action: "update", hostname: "imap-c.example.org", weight: 100 })
    const alice = await store.json<{ backend: { hostname: string } }>(["lookup", "alice"])
    expect(alice.backend.hostname).toBe("imap-c.example.org")
  })

  it("--strategy shard is refused: the ring's hashes are not doveroute's shards", async () => {
    const r = await store.cli(["import", "--from-director", files.table, "--strategy", "shard", "--store", `sqlite:${tmp.join("shard.db")}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("this command needs --strategy mapping")
  })
})
