/**
 * `--lua-script FILE`: the Dovecot + Lua cases run an operator's own script instead of
 * lua/director.lua. The fixture below is written here (our own code) with the interface the
 * published scripts have: only the init hook `auth_passdb_init(args)`, which no released Dovecot
 * calls, and a DBI connection to a hard-coded MySQL database. Through the bench's wrapper it runs
 * in real Dovecot 2.3.19 on the bench's SQLite file: every warm user gets the host of their row,
 * first-time users are stored, and the reply carries the init argument `nopassword` (Dovecot
 * consumes it, so the load generator's PLAIN logins succeed).
 */
import Database from "better-sqlite3"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { runLoad } from "../src/LoadGen.js"
import { luaScriptWrapper, startDovecotLua } from "../src/Servers.js"
import { describeTempDir } from "./support.js"

const FIXTURE = `-- test fixture: the published scripts' interface (init hook auth_passdb_init, hard-coded MySQL)
local DBI = require "DBI"
local dbh, lookup, insert, cands
local fields
function auth_passdb_init(args)
  local err
  dbh, err = DBI.Connect("MySQL", "dovecot", "dovecot", "dovecot")
  assert(dbh, err)
  dbh:autocommit(true)
  lookup = assert(dbh:prepare("SELECT backends.hostname AS h FROM backends JOIN user_backend ON backends.id = user_backend.backend_id WHERE user_backend.user = ?"))
  cands = assert(dbh:prepare("SELECT id, hostname AS h FROM backends WHERE state = 0"))
  insert = assert(dbh:prepare("INSERT INTO user_backend (backend_id, user) VALUES (?, ?)"))
  fields = args
end
function auth_passdb_lookup(req)
  assert(lookup:execute(req.user))
  local host
  for row in lookup:rows(true) do host = row.h end
  if host == nil then
    assert(cands:execute())
    local all = {}
    for row in cands:rows(true) do all[#all + 1] = row end
    local pick = all[math.random(#all)]
    assert(insert:execute(pick.id, req.user))
    host = pick.h
  end
  local reply = {}
  for k, v in pairs(fields) do reply[k] = v end
  reply.proxy_maybe = "y"
  reply.host = host
  return dovecot.auth.PASSDB_RESULT_OK, reply
end
`

describe("bench --lua-script: an operator's script in real Dovecot 2.3.19 on the bench's database", () => {
  const tmp = describeTempDir("dvbl-")

  it("the wrapper redirects DBI.Connect to the SQLite file and calls auth_passdb_init from script_init", async () => {
    const dbDir = tmp().join("db")
    fs.mkdirSync(dbDir, { mode: 0o777 })
    fs.chmodSync(dbDir, 0o777)
    const file = tmp().join("db", "routes.db")
    const db = new Database(file)
    db.exec(`CREATE TABLE backends (id INTEGER PRIMARY KEY, hostname VARCHAR(255) NOT NULL, hostip VARCHAR(255), state SMALLINT NOT NULL DEFAULT 0);
      CREATE TABLE user_backend (backend_id INT NOT NULL, "user" VARCHAR(255) NOT NULL PRIMARY KEY);
      INSERT INTO backends (id, hostname, hostip, state) VALUES (1, '127.0.0.2', '127.0.0.2', 0), (2, '127.0.0.3', '127.0.0.3', 0);`)
    const users = Array.from({ length: 40 }, (_, i) => `w${i}`)
    const ins = db.prepare(`INSERT INTO user_backend (backend_id, "user") VALUES (?, ?)`)
    for (const [i, u] of users.entries()) ins.run((i % 2) + 1, u)
    db.close()
    const expected = new Map(users.map((u, i) => [u, i % 2 === 0 ? "127.0.0.2" : "127.0.0.3"]))
    const scriptDir = tmp().join("ops")
    fs.mkdirSync(scriptDir)
    const script = `${scriptDir}/director.lua`
    fs.writeFileSync(script, FIXTURE)
    expect(luaScriptWrapper("/x/director.lua", file)).toContain(`connect("SQLite3", ${JSON.stringify(file)})`)

    const dc = await startDovecotLua({ dir: tmp().join("dl"), dbFile: file, luaScript: script })
    try {
      const warm = await runLoad({ mode: "auth", socket: dc.authSocket, connections: 2, users, expected, sequential: true })
      expect(warm.errors, JSON.stringify(warm.errorSamples)).toBe(0)
      expect(warm.ok).toBe(users.length)
      const seen = new Map<string, string>()
      const cold = await runLoad({
        mode: "auth", socket: dc.authSocket, connections: 1, users: ["n0", "n1", "n2"], sequential: true,
        hosts: new Set(["127.0.0.2", "127.0.0.3"]), seen
      })
      expect(cold.errors, JSON.stringify(cold.errorSamples)).toBe(0)
      const check = new Database(file, { readonly: true })
      const stored = check.prepare(`SELECT ub."user" AS u, b.hostname AS h FROM user_backend ub JOIN backends b ON b.id = ub.backend_id WHERE ub."user" LIKE 'n%' ORDER BY 1`).all()
      check.close()
      expect(stored).toEqual([...seen.entries()].sort().map(([u, h]) => ({ u, h })))
      expect(stored).toHaveLength(3)
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${dc.logs().split("\n").filter((l) => /Error|Fatal|Warning/.test(l)).slice(-10).join("\n")}`)
    } finally {
      await dc.stop()
    }
  })
})
