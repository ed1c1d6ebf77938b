// Rollback from doveroute to the Lua passdb on one SQLite file (issue 12), end to end:
// doveroute serve routes users on a SQLite file (that an earlier doveroute version had left in
// WAL mode) → it is stopped (SIGTERM, or kill -9) → real Dovecot 2.3.19 with our lua/director.lua
// passdb on the same file, whose directory the `dovecot` user cannot write to (root-owned 0755;
// the file itself 0640 root:dovecot), with `blocking=no` so that the script opens the file in the
// auth process, as user `dovecot` → every user's real IMAP login lands on the backend doveroute
// gave them, and no row changed. A file left in WAL could not be opened there at all ("attempt to
// write a readonly database": SQLite must create `-wal`/`-shm` beside it); doveroute now keeps
// SQLite's rollback journal unless `doveroute migrate --journal wal` chose WAL.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import Database from "better-sqlite3"
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs"
import path from "node:path"
import {
  imapLogin,
  joinConfig,
  makeTempDir,
  proxyBase23,
  REPO_ROOT,
  runCli,
  runCommand,
  startBackend23,
  startDaemon,
  startDovecot23,
  stopDovecots,
  freePort,
  type Backend,
  type Dovecot,
  type TempDir
} from "@doveroute/testkit"
import { DictClient, hostOf } from "./store-support.js"

const USERS = ["alice", "bob", "carol", "dave"] as const
const BACKEND_HOSTS = [["backend-a.test", "127.0.0.2"], ["backend-b.test", "127.0.0.3"]] as const

let tmp: TempDir
let backend: Backend
const started: Array<Dovecot> = []

beforeAll(async () => {
  tmp = makeTempDir()
  backend = await startBackend23(tmp.path)
}, 60_000)

afterAll(async () => {
  const exits = await stopDovecots([...started, (backend as Backend | undefined)?.dovecot])
  await tmp?.cleanup()
  for (const e of exits) if (e !== undefined) expect(e.code).toBe(0)
}, 60_000)

const dovecotIds = async () => {
  const r = await runCommand("id", ["-u", "dovecot"])
  const g = await runCommand("id", ["-g", "dovecot"])
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) }
}

/** doveroute places every user on a SQLite file that starts in WAL (as an earlier version left it); returns user → backend hostname. */
async function routeWithDoveroute(name: string, stop: "SIGTERM" | "SIGKILL") {
  const storeDir = tmp.join(`${name}-store`)
  mkdirSync(storeDir, { mode: 0o755 })
  const file = path.join(storeDir, "routes.db")
  const url = `sqlite:${file}`
  // a Lua director's store (a store doveroute creates itself starts in WAL, chosen: README)
  const lua = new Database(file)
  lua.exec("CREATE TABLE backends (id INTEGER PRIMARY KEY, hostname VARCHAR(255) NOT NULL, hostip VARCHAR(255), state SMALLINT NOT NULL DEFAULT 0);" +
    " CREATE TABLE user_backend (backend_id INT NOT NULL, user VARCHAR(255) NOT NULL, PRIMARY KEY (backend_id, user))")
  lua.close()
  expect((await runCli(["migrate", "--store", url])).code).toBe(0)
  for (const [h, ip] of BACKEND_HOSTS) {
    const r = await runCli(["backend", "add", h, "--hostip", ip, "--store", url])
    expect(r.code, r.stderr).toBe(0)
  }
  // what doveroute before this change left behind: the file switched to WAL for good
  const old = new Database(file)
  old.pragma("journal_mode = WAL")
  old.close()

  const sock = tmp.join(`${name}-dict.sock`)
  const d = await startDaemon({ args: ["--store", url, "--dict-socket", sock, "--log-level", "info"], waitFor: [sock], timeoutMs: 60_000 })
  const c = await DictClient.connect(sock)
  const told = new Map<string, string>()
  for (const u of USERS) {
    const r = await c.lookup(u)
    const host = hostOf(r.line)
    expect(host, r.line).toBeDefined()
    told.set(u, host!)
  }
  c.close()
  expect(d.logs()).toContain("journal mode set back from wal to delete")
  if (stop === "SIGKILL") {
    process.kill(d.pid, "SIGKILL")
    await d.stop()
  } else {
    expect(await d.stop()).toBe(0)
  }
  return { file, storeDir, told }
}

/** The admin's permissions for the Lua passdb: the file readable by group dovecot, the directory root's. */
async function lockDown(storeDir: string, file: string) {
  const { gid } = await dovecotIds()
  chmodSync(storeDir, 0o755)
  chownSync(file, 0, gid)
  chmodSync(file, 0o640)
  const w = await runCommand("runuser", ["-u", "dovecot", "--", "test", "-w", storeDir])
  expect(w.code, "the dovecot user must not be able to write to the store directory").not.toBe(0)
  const r = await runCommand("runuser", ["-u", "dovecot", "--", "test", "-r", file])
  expect(r.code, "the dovecot user can read the file").toBe(0)
}

/** Dovecot 2.3.19 with lua/director.lua (blocking=no: the script runs in the auth process, as dovecot). */
async function startLuaProxy(name: string, file: string) {
  const dir = tmp.join(`${name}-proxy`)
  const luaDir = path.join(dir, "lua")
  mkdirSync(luaDir, { recursive: true, mode: 0o755 })
  for (const f of ["director.lua", "director-core.lua"]) copyFileSync(path.join(REPO_ROOT, "lua", f), path.join(luaDir, f))
  const imapPort = await freePort()
  const config = joinConfig(
    proxyBase23({ dir, imapPort, instanceName: `dvr-${name}` }),
    `passdb {\n  driver = lua\n  args = file=${luaDir}/director.lua blocking=no\n}`
  )
  const proxy = await startDovecot23({
    dir,
    config,
    files: {
      [path.join(luaDir, "director.conf")]: `driver = SQLite3\ndatabase = ${file}\nproxy_flag = proxy\nextra_fields = "nopassword port=${backend.imapPort}"\n`
    },
    tcp: [{ host: "127.0.0.1", port: imapPort }]
  })
  started.push(proxy)
  return { proxy, imapPort }
}

/**
 * The rows, read from a copy: opening the file itself as root would create the `-wal`/`-shm` files
 * of a WAL database, which would let the dovecot user read it and hide the failure under test.
 */
const rowsOf = (file: string) => {
  const copy = `${file}.copy-${process.pid}`
  copyFileSync(file, copy)
  const db = new Database(copy, { readonly: true })
  try {
    return db.prepare(`SELECT ub."user" AS u, b.hostname AS h FROM user_backend ub JOIN backends b ON b.id = ub.backend_id ORDER BY 1`).all()
  } finally {
    db.close()
    for (const f of [copy, `${copy}-wal`, `${copy}-shm`]) rmSync(f, { force: true })
  }
}

/** The journal mode recorded in the file header (bytes 18–19: 2 = WAL, 1 = rollback journal), read without SQLite. */
const headerJournal = (file: string): "wal" | "rollback" => {
  const b = readFileSync(file).subarray(18, 20)
  return b[0] === 2 && b[1] === 2 ? "wal" : "rollback"
}

describe.each(["SIGTERM", "SIGKILL"] as const)("rollback to Dovecot 2.3.19 + lua/director.lua after doveroute stopped by %s", (stop) => {
  it("every user's IMAP login lands on the backend doveroute gave them; the dovecot user cannot write the store directory", async () => {
    const name = stop.toLowerCase()
    const { file, storeDir, told } = await routeWithDoveroute(name, stop)
    const rowsBefore = rowsOf(file)
    expect(rowsBefore).toHaveLength(USERS.length)
    // the file is back in SQLite's rollback journal; no -wal file for the Lua passdb to trip on
    expect(headerJournal(file)).toBe("rollback")
    expect(readdirSync(storeDir).filter((f) => f.endsWith("-wal") || f.endsWith("-shm"))).toEqual([])
    await lockDown(storeDir, file)

    const { proxy, imapPort } = await startLuaProxy(name, file)
    const ipOf = new Map<string, string>(BACKEND_HOSTS.map(([h, ip]) => [h, ip]))
    for (const u of USERS) {
      const r = await imapLogin("127.0.0.1", imapPort, u, "secret")
      expect(r.login.status, `${u}: ${r.transcript}\n${proxy.log().slice(-3000)}`).toBe("OK")
      expect(backend.servedBy(u, "imap"), u).toBe(ipOf.get(told.get(u)!))
    }
    expect(proxy.log()).not.toMatch(/readonly database|unable to open database/)
    // the auth process (user dovecot) ran the script
    expect(proxy.log()).toMatch(/auth: Debug: .*lua\(alice/)
    expect(rowsOf(file)).toEqual(rowsBefore)
    expect(existsSync(file + "-wal")).toBe(false)
  }, 180_000)
})
