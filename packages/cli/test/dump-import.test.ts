// `doveroute dump` and `doveroute import` with 100 000 users on a real SQLite store, through the
// real launcher and bundle (`npm run build` first): one import process takes the whole CSV, the dump
// is a script whose mappings go through ONE `doveroute import -`, and replaying it into an empty
// store gives the same dump back. (The million-user figures are in `npm run bench:cli`.)
import { CLI_BIN, makeTempDir, runCli, runCommand, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const USERS = 100_000
const backendOf = (i: number) => (i % 3 === 0 ? "b1.test" : i % 3 === 1 ? "b2.test" : "3")

describe(`dump and import of ${USERS} users through one process each (SQLite)`, () => {
  let tmp: TempDir
  let store: string
  let dumpText = ""

  beforeAll(async () => {
    tmp = makeTempDir({ prefix: "dvr-dump-" })
    store = `sqlite:${tmp.join("a.db")}`
    for (const [h, ip] of [["b1.test", "127.0.0.2"], ["b2.test", "127.0.0.3"], ["b3.test", "127.0.0.4"]] as const) {
      const r = await runCli(["backend", "add", h, "--hostip", ip, "--store", store], { timeoutMs: 60_000 })
      expect(r.code, r.stderr).toBe(0)
    }
  })
  afterAll(async () => {
    await tmp?.cleanup()
  })

  it("import reads a 100 000-line CSV (odd names quoted) in one process, with progress; a second run changes nothing", async () => {
    const odd = [" lead space", "trail space ", "#hash", "\"quoted\"", "com,ma", "ünï©ødé"]
    const lines = ["user,backend", ...Array.from({ length: USERS - odd.length }, (_, i) => `user${i},${backendOf(i)}`), ...odd.map((u) => `"${u}",b1.test`)]
    const csv = tmp.join("users.csv")
    fs.writeFileSync(csv, lines.join("\n") + "\n")
    const r = await runCli(["import", csv, "--store", store, "--json"], { timeoutMs: 300_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ total: USERS, inserted: USERS, unchanged: 0, conflictCount: 0, errorCount: 0 })
    expect(r.stderr).toMatch(new RegExp(`import: ${USERS}/${USERS} \\(100%\\)`))
    const again = await runCli(["import", csv, "--store", store, "--json"], { timeoutMs: 300_000 })
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ total: USERS, inserted: 0, unchanged: USERS })
    const show = await runCli(["user", "show", " lead space", "--store", store, "--json"])
    expect(show.code, show.stderr).toBe(0)
    expect(JSON.parse(show.stdout).backend.hostname).toBe("b1.test")
  })

  it("dump: the backends, then every mapping as CSV through ONE `doveroute import -`", async () => {
    const r = await runCli(["dump", "--store", store], { timeoutMs: 300_000 })
    expect(r.code, r.stderr).toBe(0)
    dumpText = r.stdout
    const lines = dumpText.split("\n")
    expect(lines.filter((l) => l.startsWith("doveroute backend add"))).toHaveLength(3)
    expect(lines.filter((l) => /^doveroute (user|shard) move/.test(l))).toHaveLength(0)
    expect(lines.filter((l) => l.startsWith("doveroute import"))).toEqual(["doveroute import - <<'DOVEROUTE_DUMP_END'"])
    const start = lines.indexOf("user,backend")
    const end = lines.indexOf("DOVEROUTE_DUMP_END")
    expect(end - start - 1).toBe(USERS)
    expect(lines).toContain("user42,b1.test")
    expect(lines).toContain("user43,b2.test")
    expect(lines).toContain("user44,b3.test")
    expect(lines).toContain("\" lead space\",b1.test")
  })

  it("replaying the dump into an empty store (sh, one import process) gives the same dump; a second replay changes nothing", async () => {
    const script = tmp.join("dump.sh")
    fs.writeFileSync(script, dumpText)
    fs.writeFileSync(tmp.join("doveroute"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_BIN)} "$@"\n`, { mode: 0o755 })
    const other = `sqlite:${tmp.join("b.db")}`
    const env = { ...process.env, PATH: `${tmp.path}:${process.env["PATH"] ?? ""}`, DOVEROUTE_STORE: other }
    const replay = await runCommand("sh", [script], { env, timeoutMs: 300_000 })
    expect(replay.code, replay.stderr).toBe(0)
    expect(replay.stdout).toMatch(new RegExp(`${USERS} rows: ${USERS} inserted, 0 unchanged, 0 conflicts, 0 errors`))
    const back = await runCli(["dump", "--store", other], { timeoutMs: 300_000 })
    expect(back.code, back.stderr).toBe(0)
    expect(back.stdout).toBe(dumpText)
    const again = await runCommand("sh", [script], { env, timeoutMs: 300_000 })
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(new RegExp(`${USERS} rows: 0 inserted, ${USERS} unchanged, 0 conflicts, 0 errors`))
  })

  it("dump --json is one document whose mappings import takes back from stdin; a conflict is reported, not applied (exit 3)", async () => {
    const r = await runCli(["dump", "--store", store, "--json"], { timeoutMs: 300_000 })
    expect(r.code, r.stderr).toBe(0)
    const doc = JSON.parse(r.stdout) as { strategy: string; backends: Array<{ hostname: string }>; mappings: Array<{ user: string; backend: string }> }
    expect(doc.strategy).toBe("mapping")
    expect(doc.backends.map((b) => b.hostname)).toEqual(["b1.test", "b2.test", "b3.test"])
    expect(doc.mappings).toHaveLength(USERS)
    const back = await runCli(["import", "--store", store, "--json", "-"], { input: r.stdout, timeoutMs: 300_000 })
    expect(back.code, back.stderr).toBe(0)
    expect(JSON.parse(back.stdout)).toMatchObject({ total: USERS, unchanged: USERS, inserted: 0 })
    const conflict = await runCli(["import", "--store", store, "--json", "-"], { input: "user,backend\nuser0,b2.test\nfresh,b2.test\n" })
    expect(conflict.code).toBe(3)
    expect(JSON.parse(conflict.stdout)).toMatchObject({ total: 2, inserted: 1, conflictCount: 1, conflicts: [{ key: "user0", backend: "b2.test", current: 1 }] })
    const still = await runCli(["user", "show", "user0", "--store", store, "--json"])
    expect(JSON.parse(still.stdout).backend.hostname).toBe("b1.test")
  })
})
