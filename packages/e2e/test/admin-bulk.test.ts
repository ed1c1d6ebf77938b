// The weekly operations on SQLite, PostgreSQL and MariaDB through the real binary, --json parsed:
// dry runs of user move, backend remove, import, flush and move-many write nothing (every table
// row for row, the SQLite file byte for byte); backend flush (placed or --to), user move-many
// (file and stdin), shard move N-M; a key locked by another move is skipped (exit 75); a progress
// line only on a terminal.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CLI_BIN, makeTempDir, runCommand, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import { ADMIN_STORES, adminStore, type AdminStore } from "./admin-support.js"

const USERS = Array.from({ length: 24 }, (_, i) => `u${String(i).padStart(2, "0")}`)

describe.each(ADMIN_STORES)("bulk operations on %s", { timeout: 400_000 }, (kind) => {
  let s: AdminStore
  let tmp: TempDir
  const onBackend = async (id: number) =>
    (await s.json<Array<{ user: string }>>(["user", "list", "--backend", String(id)])).map((r) => r.user).sort()

  beforeAll(async () => {
    s = await adminStore(kind)
    tmp = makeTempDir()
    for (const b of ["b1.test", "b2.test", "b3.test"]) await s.json(["backend", "add", b])
    fs.writeFileSync(tmp.join("seed.csv"), USERS.map((u) => `${u},b1.test`).join("\n") + "\n")
    expect(await s.json(["import", tmp.join("seed.csv")])).toMatchObject({ inserted: USERS.length })
  })
  afterAll(async () => {
    await tmp?.cleanup()
    await s?.drop()
  })

  it("dry runs report what would change and write nothing", async () => {
    fs.writeFileSync(tmp.join("more.csv"), "user,backend\nu00,b1.test\nu01,b2.test\nnew1,b3.test\nx,nosuch\n")
    fs.writeFileSync(tmp.join("list.txt"), "# to b3\nu00\nu01\n\nu00\nnobody\n")
    await s.json(["backend", "drain", "b1.test"])
    const before = await s.snapshot()

    expect(await s.json(["user", "move", "u00", "b2.test", "--dry-run"])).toMatchObject({ user: "u00", from: 1, to: 2, changed: true, dryRun: true, waitedMs: 0 })
    expect(await s.json(["user", "move", "u00", "b1.test", "--dry-run"])).toMatchObject({ changed: false, dryRun: true })
    expect(await s.json(["backend", "remove", "b1.test", "--move-users-to", "b2.test", "--dry-run"]))
      .toMatchObject({ removed: { id: 1 }, users: USERS.length, movedTo: { id: 2 }, unassigned: 0, dryRun: true })
    const refused = await s.cli(["backend", "remove", "b1.test", "--dry-run"])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/has 24 mapped users; give --move-users-to BACKEND or --unassign-users/)
    const imp = await s.cli(["import", tmp.join("more.csv"), "--dry-run", "--json"])
    expect(imp.code).toBe(3)
    expect(JSON.parse(imp.stdout)).toMatchObject({ total: 4, inserted: 1, unchanged: 1, conflictCount: 1, errorCount: 1, dryRun: true })

    const flush = await s.json(["backend", "flush", "b1.test", "--dry-run"])
    expect(flush).toMatchObject({ dryRun: true, total: 24, moved: 24, unchanged: 0, skipped: 0, failed: 0 })
    expect(new Set(flush.results.map((r: { status: string }) => r.status))).toEqual(new Set(["would-move"]))
    expect(flush.results.every((r: { from: number; to: number }) => r.from === 1 && (r.to === 2 || r.to === 3))).toBe(true)
    const many = await s.json(["user", "move-many", tmp.join("list.txt"), "b3.test", "--dry-run"])
    expect(many).toMatchObject({ dryRun: true, total: 3, moved: 3 })
    expect(many.results.map((r: { key: string; from: number | null }) => [r.key, r.from])).toEqual([["u00", 1], ["u01", 1], ["nobody", null]])
    const text = await s.cli(["backend", "flush", "b1.test", "--to", "b3.test", "--dry-run"])
    expect(text.code).toBe(0)
    expect(text.stdout).toContain("would move u05 from backend 1 to 3 (b3.test)")
    expect(text.stdout).toMatch(/flush b1\.test \(dry run, nothing changed\): 24 checked, 24 would move, 0 unchanged/)
    expect(text.stderr).not.toMatch(/\r/) // no progress line on a pipe

    expect(await s.snapshot()).toBe(before)
  })

  it("backend flush: refused while up, placed among up backends, or all --to B2; B stays defined", async () => {
    await s.json(["backend", "up", "b1.test"])
    const up = await s.cli(["backend", "flush", "b1.test"])
    expect(up.code).toBe(1)
    expect(up.stderr).toMatch(/backend b1\.test is up: .*run doveroute backend drain b1\.test first/)
    await s.json(["backend", "drain", "b1.test"])
    // least-loaded placement by weight: b3 (weight 2) gets twice b2's share
    await s.json(["backend", "weight", "b3.test", "2"])
    const leastLoaded = s.config + ".least.json"
    fs.writeFileSync(leastLoaded, JSON.stringify({ ...JSON.parse(fs.readFileSync(s.config, "utf8")), placement: "least-loaded" }))
    const r = await s.cli(["backend", "flush", "b1.test", "--parallel", "5", "--json"], leastLoaded)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ dryRun: false, total: 24, moved: 24, unchanged: 0, skipped: 0, failed: 0 })
    expect(out.waitedMs).toBeGreaterThanOrEqual(300)
    expect(await onBackend(1)).toEqual([])
    const on2 = await onBackend(2)
    const on3 = await onBackend(3)
    expect([on2.length, on3.length]).toEqual([8, 16])
    expect([...on2, ...on3].sort()).toEqual(USERS)
    for (const x of out.results) expect(x.to === 2 ? on2 : on3).toContain(x.key)
    expect((await s.json(["backend", "list"])).map((b: { hostname: string; stateName: string; users: number }) => [b.hostname, b.stateName, b.users]))
      .toEqual([["b1.test", "drain", 0], ["b2.test", "up", 8], ["b3.test", "up", 16]])
    expect(await s.sql(`SELECT * FROM doveroute_moves`)).toEqual([])

    // everything back onto b1 with move-many (stdin), then flush --to b3
    const back = await s.cli(["user", "move-many", "--json", "-", "b1.test"], undefined, USERS.join("\n") + "\n")
    expect(back.code, back.stderr).toBe(0)
    expect(JSON.parse(back.stdout)).toMatchObject({ total: 24, moved: 24 })
    expect(await onBackend(1)).toEqual(USERS)
    expect(await s.json(["backend", "flush", "b1.test", "--to", "b3.test", "--no-wait"])).toMatchObject({ total: 24, moved: 24, waitedMs: 0 })
    expect(await onBackend(3)).toEqual(USERS)
    // a flush of an empty backend does nothing
    expect(await s.json(["backend", "flush", "b1.test"])).toMatchObject({ total: 0, moved: 0 })
    const self = await s.cli(["backend", "flush", "b3.test", "--to", "b3.test"])
    expect(self.code).toBe(1)
    expect(self.stderr).toMatch(/--to names the backend being flushed/)
    expect((await s.cli(["backend", "flush", "nosuch"])).code).toBe(68)
  })

  it("a user locked by another move is skipped (exit 75) and a re-run finishes the flush", async () => {
    await s.json(["backend", "drain", "b3.test"])
    await s.sql(`INSERT INTO doveroute_moves (route_key, hold_logins, expires_at) VALUES ('u07', 0, ${Date.now() + 600_000})`)
    const r = await s.cli(["backend", "flush", "b3.test", "--to", "b2.test", "--json", "--no-wait"])
    expect(r.code).toBe(75)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ total: 24, moved: 23, skipped: 1, failed: 0 })
    expect(out.results.find((x: { key: string }) => x.key === "u07")).toMatchObject({ status: "skipped", detail: expect.stringMatching(/already being moved/) })
    // the other command's lock is left alone
    expect((await s.sql<{ route_key: string }>(`SELECT route_key FROM doveroute_moves`)).map((x) => x.route_key)).toEqual(["u07"])
    await s.sql(`DELETE FROM doveroute_moves`)
    // on a terminal (script(1) gives the command a pty) the progress line is drawn on stderr
    const argv = [process.execPath, CLI_BIN, "backend", "flush", "b3.test", "--to", "b2.test", "--no-wait", "--config", s.config]
    const text = await runCommand("script", ["-qec", argv.map((a) => `'${a}'`).join(" "), "/dev/null"], { timeoutMs: 90_000 })
    expect(text.code, text.stdout).toBe(0)
    expect(text.stdout).toContain("\rflush b3.test: 1/1 moved 1 unchanged 0 skipped 0 failed 0\r\n")
    expect(text.stdout).toMatch(/flush b3\.test: 1 total, 1 moved, 0 unchanged, 0 skipped \(changed meanwhile\), 0 failed/)
    expect(await onBackend(2)).toEqual(USERS)

    // move-many: a missing file, a bad --parallel
    const missing = await s.cli(["user", "move-many", tmp.join("nope.txt"), "b1.test"])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/cannot read .*nope\.txt/)
    expect((await s.cli(["user", "move-many", "--parallel", "0", "-", "b1.test"], undefined, "u00\n")).code).toBe(1)
  })

  it("shard move N-M with --strategy shard (dry run, then the move); flush moves shards", async () => {
    const sh = await adminStore(kind, { strategy: "shard" })
    try {
      await sh.json(["backend", "add", "s1"])
      await sh.json(["backend", "add", "s2"])
      expect(await sh.json(["shard", "move", "100-149", "s1", "--parallel", "8"])).toMatchObject({ total: 50, moved: 50 })
      const before = await sh.snapshot()
      const dry = await sh.json(["shard", "move", "140-159", "s2", "--dry-run"])
      expect(dry).toMatchObject({ dryRun: true, total: 20, moved: 20 })
      expect(dry.results.filter((r: { from: number | null }) => r.from === 1)).toHaveLength(10)
      expect(await sh.snapshot()).toBe(before)
      expect(await sh.json(["shard", "move", "140-159", "s2"])).toMatchObject({ total: 20, moved: 20 })
      expect(await sh.json(["shard", "move", "150-159", "s2"])).toMatchObject({ total: 10, moved: 0, unchanged: 10 })
      // a single shard keeps the single-move output
      expect(await sh.json(["shard", "move", "100", "s2"])).toMatchObject({ shard: 100, from: 1, to: 2, changed: true })
      const bad = await sh.cli(["shard", "move", "9-3", "s1"])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/a range is N-M with N <= M/)
      const kick = await sh.cli(["backend", "flush", "s1", "--kick"])
      expect(kick.code).toBe(1)
      expect(kick.stderr).toMatch(/--kick needs the mapping strategy/)
      await sh.json(["backend", "down", "s1"])
      expect(await sh.json(["backend", "flush", "s1"])).toMatchObject({ total: 39, moved: 39 })
      expect(await sh.json(["user", "list", "--backend", "s1"])).toEqual([])
      const many = await sh.cli(["user", "move-many", "-", "s1"], undefined, "alice\n")
      expect(many.code).toBe(1)
      expect(many.stderr).toMatch(/shard move N-M BACKEND/)
    } finally {
      await sh.drop()
    }
  })
})
