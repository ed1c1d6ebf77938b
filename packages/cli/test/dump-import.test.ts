// `doveroute dump` and `doveroute import` with 100 000 users on a real SQLite store, through the
// real launcher and bundle (`npm run build` first): one import process takes the whole CSV, the dump
// is a script whose mappings go through ONE `doveroute import -`, and replaying it into an empty
// store gives the same dump back. (The million-user figures are in `npm run bench:cli`.) Then, on
// SQLite, PostgreSQL and MariaDB: backend tags and user tags through dump and import.
import { CLI_BIN, type FreshDatabase, freshMysql, freshPostgres, freshSqlite, makeTempDir, runCli, runCommand, type TempDir } from "@doveroute/testkit"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { csvHeader, parseCsvLine, parseImport } from "../src/commands/ImportFile.js"

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

// Tags (pools): backend tags and user tags go through `dump` (script and --json) and `import` on
// every store. The source store gets them through `backend add --tag` and an import of a
// `user,backend,tag` CSV; the dump is replayed into an empty store, and `backend list --json` and
// `user tags --json` must be the same there. A dry run reports and writes nothing.
const KINDS = ["sqlite", "postgres", "mysql"] as const
const TAGGED = 1200

describe.each(KINDS)("dump and import carry backend tags and user tags (%s)", { timeout: 600_000 }, (kind) => {
  let tmp: TempDir
  let src = ""
  const dbs: Array<FreshDatabase> = []
  const fresh = async () => {
    const d = kind === "sqlite" ? await freshSqlite(tmp.path) : kind === "postgres" ? await freshPostgres() : await freshMysql()
    dbs.push(d)
    return d.url
  }
  /** `doveroute ARGS --store URL` (the option before a `-` argument: none is read after it). */
  const cli = (url: string, args: ReadonlyArray<string>, input?: string) => {
    const i = args.indexOf("-")
    const full = i < 0 ? [...args, "--store", url] : [...args.slice(0, i), "--store", url, ...args.slice(i)]
    return runCli(full, { timeoutMs: 300_000, ...(input !== undefined ? { input } : {}) })
  }
  const json = async <T = any>(url: string, args: ReadonlyArray<string>): Promise<T> => {
    const r = await cli(url, [...args, "--json"])
    if (r.code !== 0) throw new Error(`doveroute ${args.join(" ")} exited ${r.code}: ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }
  /** What the import writes, read back through the CLI, and on SQLite the file's bytes. */
  const fingerprint = async (url: string) => {
    const files = url.startsWith("sqlite:")
      ? ["", "-wal", "-journal"].map((x) => url.slice("sqlite:".length) + x).filter((f) => fs.existsSync(f) && fs.statSync(f).size > 0)
        .map((f) => `${f} ${createHash("sha256").update(fs.readFileSync(f)).digest("hex")}`)
      : []
    return JSON.stringify({
      files,
      backends: await json(url, ["backend", "list"]),
      users: await json(url, ["user", "list"]),
      tags: await json(url, ["user", "tags"])
    })
  }
  /** The user tags the source CSV gives (tag-only users and mapped ones). */
  const expectedTags = () => {
    const m = new Map<string, string>()
    for (let i = 0; i < TAGGED; i++) if (i % 4 !== 2) m.set(`t${i}`, i % 4 === 1 ? "pool-2" : "pool1")
    m.set("com,ma", "pool1")
    m.set(" lead", "pool-2")
    return m
  }
  /** Replay a dump script with `doveroute` on PATH (this checkout's launcher) into `url`. */
  const replay = async (script: string, url: string) => {
    const file = tmp.join(`replay-${Math.random().toString(36).slice(2)}.sh`)
    fs.writeFileSync(file, script)
    const env = { ...process.env, PATH: `${tmp.path}:${process.env["PATH"] ?? ""}`, DOVEROUTE_STORE: url }
    return runCommand("sh", [file], { env, timeoutMs: 300_000 })
  }

  beforeAll(async () => {
    tmp = makeTempDir({ prefix: "dvr-dumptags-" })
    fs.writeFileSync(tmp.join("doveroute"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_BIN)} "$@"\n`, { mode: 0o755 })
    src = await fresh()
    for (const args of [
      ["p1.test", "--hostip", "127.0.0.5", "--tag", "pool1", "--check-port", "2000"],
      ["p2.test", "--hostip", "127.0.0.6", "--tag", "pool-2", "--weight", "3", "--state", "2"],
      ["u.test", "--hostip", "127.0.0.7"]
    ]) {
      const r = await cli(src, ["backend", "add", ...args])
      expect(r.code, r.stderr).toBe(0)
    }
  }, 300_000)
  afterAll(async () => {
    for (const d of dbs) await d.drop().catch(() => undefined)
    await tmp?.cleanup()
  })

  it("import of a user,backend,tag CSV sets mappings and user tags in one process; --dry-run writes nothing; a re-run changes nothing; another tag is a conflict (exit 3)", async () => {
    // i % 4: 0 mapped on p1 + tag pool1, 1 mapped on p2 + tag pool-2, 2 mapped on u untagged, 3 tag only
    const line = (i: number) =>
      i % 4 === 0 ? `t${i},p1.test,pool1` : i % 4 === 1 ? `t${i},p2.test,pool-2` : i % 4 === 2 ? `t${i},u.test,` : `t${i},,pool1`
    const csv = tmp.join("tags.csv")
    fs.writeFileSync(csv, ["user,backend,tag", ...Array.from({ length: TAGGED }, (_, i) => line(i)), "com,ma,p1.test,pool1", `" lead",,pool-2`].join("\n") + "\n")
    const mapped = TAGGED - TAGGED / 4 + 1
    const before = await fingerprint(src)
    const dry = await cli(src, ["import", csv, "--dry-run", "--json"])
    expect(dry.code, dry.stderr).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({
      dryRun: true, total: mapped, inserted: mapped, userTags: { total: expectedTags().size, inserted: expectedTags().size, unchanged: 0, conflictCount: 0 }
    })
    const dryText = await cli(src, ["import", csv, "--dry-run"])
    expect(dryText.stdout).toContain(`${expectedTags().size} user tags: ${expectedTags().size} would be set, 0 unchanged, 0 conflicts, 0 errors (dry run: nothing written)`)
    expect(await fingerprint(src)).toBe(before)

    const r = await cli(src, ["import", csv, "--json"])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ total: mapped, inserted: mapped, errorCount: 0, userTags: { total: expectedTags().size, inserted: expectedTags().size, errorCount: 0 } })
    expect(r.stderr).toMatch(new RegExp(`import: ${TAGGED + 2}/${TAGGED + 2} \\(100%\\)`))
    const tags = await json<Array<{ user: string; tag: string }>>(src, ["user", "tags"])
    expect(new Map(tags.map((t) => [t.user, t.tag]))).toEqual(expectedTags())
    expect((await json(src, ["user", "show", "com,ma"])).backend.hostname).toBe("p1.test")
    expect((await json(src, ["user", "show", "t3"])).mapped).toBe(false)

    const again = await cli(src, ["import", csv, "--json"])
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ inserted: 0, unchanged: mapped, userTags: { inserted: 0, unchanged: expectedTags().size } })

    const conflict = await cli(src, ["import", "--json", "-"], "user,backend,tag\nt0,,pool-2\nt2,,bad tag!\n")
    expect(conflict.code, conflict.stderr).toBe(3)
    expect(JSON.parse(conflict.stdout).userTags).toMatchObject({
      total: 2, inserted: 0, conflictCount: 1, errorCount: 1,
      conflicts: [{ key: "t0", tag: "pool-2", current: "pool1" }], errors: [{ key: "t2", error: "invalid tag" }]
    })
    expect((await json(src, ["user", "tags"])).find((t: { user: string }) => t.user === "t0").tag).toBe("pool1")
  })

  it("the dump script carries --tag and the user tags through one import; replayed into an empty store: the same backend list, user tags and dump", async () => {
    const d = await cli(src, ["dump"])
    expect(d.code, d.stderr).toBe(0)
    const lines = d.stdout.split("\n")
    expect(lines).toContain("doveroute backend add p1.test --hostip 127.0.0.5 --state 0 --weight 1 --check-port 2000 --tag pool1 --or-update")
    expect(lines).toContain("doveroute backend add p2.test --hostip 127.0.0.6 --state 2 --weight 3 --tag pool-2 --or-update")
    expect(lines).toContain("doveroute backend add u.test --hostip 127.0.0.7 --state 0 --weight 1 --or-update")
    expect(lines.filter((l) => l.startsWith("doveroute import"))).toEqual(["doveroute import - <<'DOVEROUTE_DUMP_END'"])
    expect(lines.filter((l) => l.startsWith("doveroute user"))).toEqual([])
    expect(lines).toContain("user,backend,tag")
    expect(lines).toContain("t0,p1.test,")
    expect(lines).toContain("t0,,pool1")
    expect(lines).toContain("t3,,pool1")
    expect(lines).toContain("com,ma,,pool1")
    expect(lines).toContain(`" lead",,pool-2`)

    const other = await fresh()
    const r = await replay(d.stdout, other)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`${expectedTags().size} user tags: ${expectedTags().size} set, 0 unchanged, 0 conflicts, 0 errors`)
    expect(await json(other, ["backend", "list"])).toEqual(await json(src, ["backend", "list"]))
    expect(await json(other, ["user", "tags"])).toEqual(await json(src, ["user", "tags"]))
    expect(await json(other, ["user", "list"])).toEqual(await json(src, ["user", "list"]))
    expect((await cli(other, ["dump"])).stdout).toBe(d.stdout)
    const again = await replay(d.stdout, other)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toContain(`${expectedTags().size} user tags: 0 set, ${expectedTags().size} unchanged, 0 conflicts, 0 errors`)
  })

  it("dump --json carries backend tags and userTags; import of it into an empty store restores them (--dry-run first: reported, nothing written)", async () => {
    const d = await cli(src, ["dump", "--json"])
    expect(d.code, d.stderr).toBe(0)
    const doc = JSON.parse(d.stdout) as { backends: Array<{ hostname: string; tag: string | null }>; userTags: Array<{ user: string; tag: string }> }
    expect(doc.backends.map((b) => [b.hostname, b.tag])).toEqual([["p1.test", "pool1"], ["p2.test", "pool-2"], ["u.test", null]])
    expect(new Map(doc.userTags.map((t) => [t.user, t.tag]))).toEqual(expectedTags())

    const other = await fresh()
    const m = await cli(other, ["migrate"])
    expect(m.code, m.stderr).toBe(0)
    const before = await fingerprint(other)
    const dry = await cli(other, ["import", "--dry-run", "-"], d.stdout)
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toContain("backend p1.test: would be added (hostip 127.0.0.5, check port 2000, tag pool1)")
    expect(dry.stdout).toContain("backend p2.test: would be added (hostip 127.0.0.6, state 2, weight 3, tag pool-2)")
    expect(dry.stdout).toContain(`${expectedTags().size} user tags: ${expectedTags().size} would be set`)
    expect(dry.stdout).toMatch(/ rows: \d+ would be inserted, 0 unchanged, 0 conflicts, 0 errors/)
    expect(await fingerprint(other)).toBe(before)

    const r = await cli(other, ["import", "--json", "-"], d.stdout)
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).backends.map((b: { action: string; hostname: string }) => `${b.action} ${b.hostname}`)).toEqual(["add p1.test", "add p2.test", "add u.test"])
    expect(await json(other, ["backend", "list"])).toEqual(await json(src, ["backend", "list"]))
    expect(await json(other, ["user", "tags"])).toEqual(await json(src, ["user", "tags"]))
    expect(await json(other, ["user", "list"])).toEqual(await json(src, ["user", "list"]))

    // a backend re-tagged on the target: the dry run names the change, the import sets it back
    expect((await cli(other, ["backend", "tag", "p1.test", "elsewhere"])).code).toBe(0)
    const dry2 = await cli(other, ["import", "--dry-run", "-"], d.stdout)
    expect(dry2.stdout).toContain("backend p1.test (id 1): tag elsewhere -> pool1 (would be set)")
    expect((await json(other, ["backend", "list"]))[0].tag).toBe("elsewhere")
    expect((await cli(other, ["import", "-"], d.stdout)).code).toBe(0)
    expect((await json(other, ["backend", "list"]))[0].tag).toBe("pool1")
  })

  it("an older dump without tags (script and --json) imports as before: untagged backends, no user tags", async () => {
    const script = [
      "#!/bin/sh",
      "set -e",
      "doveroute backend add old1.test --hostip 127.0.0.8 --state 0 --weight 1 --or-update",
      "doveroute import - <<'DOVEROUTE_DUMP_END'",
      "user,backend",
      "old-a,old1.test",
      "com,ma,old1.test",
      "DOVEROUTE_DUMP_END",
      ""
    ].join("\n")
    const a = await fresh()
    const r = await replay(script, a)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("2 rows: 2 inserted, 0 unchanged, 0 conflicts, 0 errors")
    expect(r.stdout).not.toContain("user tags")
    expect(await json(a, ["backend", "list"])).toMatchObject([{ hostname: "old1.test", tag: null, users: 2 }])
    expect(await json(a, ["user", "tags"])).toEqual([])
    expect((await json(a, ["user", "show", "com,ma"])).backend.hostname).toBe("old1.test")

    const old = {
      strategy: "mapping",
      backends: [{ id: 1, hostname: "old1.test", hostip: "127.0.0.8", state: 0, stateName: "up", weight: 2, checkPort: null, users: 1, lastHealth: null, lastHealthAt: null }],
      mappings: [{ user: "old-b", backend: "old1.test" }]
    }
    const b = await fresh()
    expect((await cli(b, ["migrate"])).code).toBe(0)
    const j = await cli(b, ["import", "--json", "-"], JSON.stringify(old))
    expect(j.code, j.stderr).toBe(0)
    expect(JSON.parse(j.stdout)).toMatchObject({ total: 1, inserted: 1, userTags: { total: 0 } })
    expect(await json(b, ["backend", "list"])).toMatchObject([{ hostname: "old1.test", weight: 2, tag: null, users: 1 }])
    expect(await json(b, ["user", "tags"])).toEqual([])
  })
})

describe("import lines: user,backend and user,backend,tag", () => {
  it("the header names the columns; fields split at the last commas (a user name may hold one); quotes are taken off", () => {
    expect(csvHeader("user,backend")).toBe(2)
    expect(csvHeader(`"user" , backend , "tag"`)).toBe(3)
    expect(csvHeader("alice,b1")).toBeUndefined()
    expect(parseCsvLine("com,ma,b1.test", 2, "mapping")).toEqual({ key: "com,ma", backend: "b1.test", tag: "" })
    expect(parseCsvLine("com,ma,b1.test,pool1", 2, "mapping", 3)).toEqual({ key: "com,ma", backend: "b1.test", tag: "pool1" })
    expect(parseCsvLine("alice,b1.test,", 2, "mapping", 3)).toEqual({ key: "alice", backend: "b1.test", tag: "" })
    expect(parseCsvLine(`" lead",,pool-2`, 2, "mapping", 3)).toEqual({ key: " lead", backend: "", tag: "pool-2" })
    expect(parseCsvLine("user,backend,tag", 1, "mapping", 3)).toBeUndefined()
    expect(parseCsvLine("# user tags", 7, "mapping", 3)).toBeUndefined()
    expect(() => parseCsvLine("alice,b1.test", 3, "mapping", 3)).toThrow(/line 3: expected user,backend,tag/)
  })

  it("JSON: a dump document's backends, mappings and userTags; an array's entries may carry a tag; a document older than tags has none", () => {
    const doc = parseImport(JSON.stringify({
      strategy: "mapping",
      backends: [{ hostname: "b1.test", hostip: "127.0.0.2", state: 2, weight: 3, checkPort: 2000, tag: "pool1" }, { hostname: "b2.test", hostip: null, state: 0, weight: 1 }],
      mappings: [{ user: "alice", backend: "b1.test" }],
      userTags: [{ user: "alice", tag: "pool1" }, { user: "bob", tag: "pool2" }]
    }), "mapping")
    expect(doc.backends).toEqual([
      { hostname: "b1.test", hostip: "127.0.0.2", state: 2, weight: 3, checkPort: 2000, tag: "pool1" },
      { hostname: "b2.test", hostip: null, state: 0, weight: 1, checkPort: null, tag: null }
    ])
    expect(doc.lines).toEqual([
      { key: "alice", backend: "b1.test", tag: "" }, { key: "alice", backend: "", tag: "pool1" }, { key: "bob", backend: "", tag: "pool2" }
    ])
    expect(parseImport(`[{"user":"carol","backend":"b1.test","tag":"p"}]`, "mapping")).toEqual({ lines: [{ key: "carol", backend: "b1.test", tag: "p" }], backends: undefined })
    expect(() => parseImport(`{"backends":[{"hostip":"x"}],"mappings":[]}`, "mapping")).toThrow(/backends entry 0: no hostname/)
  })
})

describe("import of a hostile user,backend,tag CSV (SQLite, real bundle)", () => {
  it("a tag with a comma, a quote or non-ASCII is an error row (exit 3, the rest imported); a line the split cannot read refuses the whole file with its number, nothing written", async () => {
    const tmp = makeTempDir()
    try {
      const db = await freshSqlite(tmp.path)
      const cli = (...args: Array<string>) => runCli([...args, "--store", db.url], { timeoutMs: 60_000 })
      expect((await cli("migrate")).code).toBe(0)
      expect((await cli("backend", "add", "b1", "--tag", "pool1")).code).toBe(0)
      expect((await cli("backend", "add", "b2")).code).toBe(0)
      const file = `${tmp.path}/h.csv`
      // a quoted newline cannot be read line by line: refused as a whole (bob's line before it too)
      fs.writeFileSync(file, `user,backend,tag\nbob,b1,pool1\ncarol,,"pool1\nx"\n`)
      const refused = await cli("import", file)
      expect(refused.code).not.toBe(0)
      expect(refused.stderr).toMatch(/line 4: expected user,backend,tag/)
      expect(JSON.parse((await cli("user", "tags", "--json")).stdout)).toEqual([])
      expect((await cli("dump")).stdout).not.toMatch(/^bob,/m)
      // per-line trouble: error rows, the good lines imported (CRLF and a lone CR end lines)
      fs.writeFileSync(file, `user,backend,tag\nalice,b1,"po,ol"\nbob,b1,pool1\r\ndave,b2,pö\nerin,b1,pool1,\nfrank,b1,"pool1""\nhank,b1,pool1\rivan,b2,\n`)
      const r = await cli("import", file)
      expect(r.code, r.stderr).toBe(3)
      expect(r.stdout).toMatch(/5 user tags: 2 set, 0 unchanged, 0 conflicts, 3 errors/)
      expect(r.stdout).toMatch(/error: dave tag "pö": invalid tag/)
      expect(r.stdout).toMatch(/error: frank tag "pool1\\"": invalid tag/)
      expect(r.stdout).toMatch(/error: erin,b1 -> pool1: unknown backend/)
      expect(JSON.parse((await cli("user", "tags", "--json")).stdout)).toEqual([{ user: "bob", tag: "pool1" }, { user: "hank", tag: "pool1" }])
      const mapped = (await cli("dump")).stdout.split("\n").filter((l) => /^[a-z]+,b[12],$/.test(l))
      expect(mapped).toEqual(["bob,b1,", "dave,b2,", "frank,b1,", "hank,b1,", "ivan,b2,"])
    } finally {
      await tmp.cleanup()
    }
  }, 120_000)
})
