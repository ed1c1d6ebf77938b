// Every admin command on SQLite, PostgreSQL and MariaDB: JSON output parsed, exit codes and stderr checked.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CLI_BIN, makeTempDir, runCommand } from "@doveroute/testkit"
import * as fs from "node:fs"
import { ADMIN_STORES, adminStore, type AdminStore } from "./admin-support.js"

// every CLI run is a process start (seconds on a loaded machine): generous per-test timeouts
describe.each(ADMIN_STORES)("admin CLI on %s", { timeout: 400_000 }, (kind) => {
  let s: AdminStore
  beforeAll(async () => {
    s = await adminStore(kind)
  })
  afterAll(async () => {
    await s?.drop()
  })

  it("backend add/list/up/down/drain/weight, errors with exit codes", async () => {
    const b1 = await s.json(["backend", "add", "b1.test", "--hostip", "127.0.0.2"])
    expect(b1).toMatchObject({ id: 1, hostname: "b1.test", hostip: "127.0.0.2", state: 0, stateName: "up", weight: 1, users: 0 })
    expect(await s.json(["backend", "add", "b2.test", "--weight", "2"])).toMatchObject({ id: 2, weight: 2 })
    const dup = await s.cli(["backend", "add", "b1.test"])
    expect(dup.code).toBe(1)
    expect(dup.stderr).toMatch(/exists already/)
    expect(await s.json(["backend", "add", "b3.test", "--state", "1", "--weight", "0"])).toMatchObject({ id: 3, stateName: "down", weight: 0 })

    expect(await s.json(["backend", "down", "b1.test"])).toMatchObject({ id: 1, state: 1, stateName: "down" })
    expect(await s.json(["backend", "drain", "1"])).toMatchObject({ id: 1, state: 2, stateName: "drain" })
    expect(await s.json(["backend", "up", "b1.test"])).toMatchObject({ state: 0, stateName: "up" })
    expect(await s.json(["backend", "weight", "b3.test", "4"])).toMatchObject({ weight: 4 })
    expect(await s.json(["backend", "add", "b3.test", "--weight", "0", "--state", "0", "--or-update"])).toMatchObject({ id: 3, weight: 0, state: 0 })

    const list = await s.json<Array<{ id: number; hostname: string; stateName: string; weight: number; users: number; lastHealth: unknown }>>(["backend", "list"])
    expect(list.map((b) => [b.id, b.hostname, b.stateName, b.weight, b.users, b.lastHealth])).toEqual([
      [1, "b1.test", "up", 1, 0, null], [2, "b2.test", "up", 2, 0, null], [3, "b3.test", "up", 0, 0, null]
    ])
    const text = await s.cli(["backend", "list"])
    expect(text.stdout).toMatch(/^id\thostname\thostip\tstate\tweight\tusers\tcheck_port\tlast_health\ttag\n1\tb1.test\t127.0.0.2\tup\t1\t0\t-\t-\t-\n/)

    for (const args of [["backend", "down", "nosuch"], ["backend", "weight", "99", "1"], ["user", "move", "x", "nosuch"]]) {
      const r = await s.cli(args)
      expect(r.code, args.join(" ")).toBe(68)
      expect(r.stderr).toMatch(/no backend with hostname or id/)
    }
    const neg = await s.cli(["backend", "weight", "b1.test", "-1"])
    expect(neg.code).not.toBe(0)
  })

  it("user move/show/list/unassign; a move to the current backend is a no-op; weight 0 gets no new users", async () => {
    const m = await s.json(["user", "move", "alice", "b1.test"])
    expect(m).toMatchObject({ user: "alice", key: "alice", from: null, to: 1, changed: true })
    expect(m.waitedMs).toBeGreaterThanOrEqual(300)
    expect(await s.json(["user", "move", "alice", "1"])).toMatchObject({ changed: false, to: 1 })
    expect(await s.json(["user", "move", "alice", "b2.test"])).toMatchObject({ from: 1, to: 2, changed: true })
    const show = await s.json(["user", "show", "alice"])
    expect(show).toMatchObject({ user: "alice", normalized: "alice", key: "alice", shard: 10670, rows: [2], mapped: true, state: "up", moveInProgress: null })
    expect(show.backend).toMatchObject({ id: 2, hostname: "b2.test" })
    const unmapped = await s.json(["user", "show", "nobody"])
    expect(unmapped).toMatchObject({ mapped: false, rows: [] })
    // b3 has weight 0: never a candidate
    expect(unmapped.candidates.map((c: { hostname: string }) => c.hostname)).toEqual(["b1.test", "b2.test"])

    await s.json(["user", "move", "bob", "b1.test", "--no-wait"])
    expect(await s.json(["user", "list"])).toEqual([
      { user: "alice", backendId: 2, backend: "b2.test" }, { user: "bob", backendId: 1, backend: "b1.test" }
    ])
    expect(await s.json(["user", "list", "--backend", "b1.test"])).toEqual([{ user: "bob", backendId: 1, backend: "b1.test" }])

    expect(await s.json(["user", "unassign", "bob"])).toMatchObject({ removed: true, backendIds: [1] })
    expect(await s.json(["user", "unassign", "bob"])).toMatchObject({ removed: false })
    expect((await s.json(["user", "show", "bob"])).mapped).toBe(false)

    // a row naming a deleted backend: shown as such, the next login replaces it
    await s.sql(`INSERT INTO user_backend (backend_id, ${s.userCol}) VALUES (77, 'ghost')`)
    expect(await s.json(["user", "show", "ghost"])).toMatchObject({ mapped: false, rows: [77], backend: null })
    const text = await s.cli(["user", "show", "ghost"])
    expect(text.stdout).toContain("row: ghost -> backend 77, which does not exist: the next login replaces it, on one of: b1.test, b2.test")
    await s.sql(`DELETE FROM user_backend WHERE ${s.userCol} = 'ghost'`)
  })

  it("two concurrent moves of one user: one succeeds, the other fails with try again (exit 75)", async () => {
    await s.json(["user", "move", "carol", "b1.test", "--no-wait"])
    // the first move holds the user's lock for >= 6 s (it waits cache.refresh before it returns);
    // the second starts only once that lock row is in the store, so the two always overlap
    const slow = { cache: { refresh: "6 seconds" } }
    fs.writeFileSync(s.config + ".slow.json", JSON.stringify({ ...JSON.parse(fs.readFileSync(s.config, "utf8")), ...slow }))
    const first = s.cli(["user", "move", "carol", "b2.test", "--json"], s.config + ".slow.json")
    for (let i = 0; i < 300; i++) {
      const rows = await s.sql<{ n: number | string }>(`SELECT COUNT(*) AS n FROM doveroute_moves`)
      if (Number(rows[0]?.n ?? 0) > 0) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const b = await s.cli(["user", "move", "carol", "b3.test", "--json"], s.config + ".slow.json")
    const a = await first
    expect([a.code, b.code].sort()).toEqual([0, 75])
    const [won, lost] = a.code === 0 ? [a, b] : [b, a]
    expect(lost.stderr).toMatch(/already being moved.*try again/)
    expect((await s.json(["user", "show", "carol"])).backend.id).toBe(JSON.parse(won.stdout).to)
    // the lock is released: a later move works
    expect(await s.json(["user", "move", "carol", "b1.test", "--no-wait"])).toMatchObject({ changed: true })
  })

  it("status, routes version bumped by hand-written SQL (triggers), not by first inserts", async () => {
    const st = await s.json(["status"])
    expect(st.backends.map((b: { hostname: string; users: number }) => [b.hostname, b.users])).toEqual([["b1.test", 1], ["b2.test", 1], ["b3.test", 0]])
    expect(st.totalUsers).toBe(2)
    const v0 = st.routesVersion as number
    expect(typeof v0).toBe("number")
    const col = s.userCol
    await s.sql(`INSERT INTO user_backend (backend_id, ${col}) VALUES (1, 'hand')`)
    const v1 = (await s.json(["status"])).routesVersion
    expect(v1).toBe(v0)
    await s.sql(`UPDATE user_backend SET backend_id = 2 WHERE ${col} = 'hand'`)
    const v2 = (await s.json(["status"])).routesVersion
    expect(v2).toBeGreaterThan(v1)
    await s.sql(`DELETE FROM user_backend WHERE ${col} = 'hand'`)
    const v3 = (await s.json(["status"])).routesVersion
    expect(v3).toBeGreaterThan(v2)
    await s.sql(`UPDATE backends SET hostip = hostip WHERE id = 1`)
    expect((await s.json(["status"])).routesVersion).toBeGreaterThan(v3)
    const text = await s.cli(["status"])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/127\.0\.0\.2\tb1\.test\t1\tup\t1\t1/)
  })

  it("import CSV and JSON: idempotent, conflicts and unknown backends reported (exit 3), progress on stderr", async () => {
    const tmp = makeTempDir()
    try {
      const csv = tmp.join("users.csv")
      const lines = ["user,backend", ...Array.from({ length: 1500 }, (_, i) => `imp${i},${i % 2 === 0 ? "b1.test" : "2"}`)]
      fs.writeFileSync(csv, lines.join("\n") + "\n")
      const r1 = await s.json(["import", csv])
      expect(r1).toMatchObject({ total: 1500, inserted: 1500, unchanged: 0, conflicts: [], errors: [] })
      const again = await s.cli(["import", csv, "--json"])
      expect(again.code).toBe(0)
      expect(JSON.parse(again.stdout)).toMatchObject({ inserted: 0, unchanged: 1500 })
      expect(again.stderr).toMatch(/import: 1500\/1500 \(100%\)/)
      const js = tmp.join("users.json")
      fs.writeFileSync(js, JSON.stringify([{ user: "imp0", backend: "b2.test" }, { user: "newj", backend: "b2.test" }, { user: "x", backend: "nosuch" }]))
      const r2 = await s.cli(["import", js, "--json"])
      expect(r2.code).toBe(3)
      expect(r2.stderr).toMatch(/1 conflicts and 1 errors/)
      const rep = JSON.parse(r2.stdout)
      expect(rep).toMatchObject({ total: 3, inserted: 1, conflicts: [{ key: "imp0", backend: "b2.test", current: 1 }], errors: [{ key: "x", error: "unknown backend" }] })
      expect((await s.json(["user", "show", "imp0"])).backend.id).toBe(1)
      fs.writeFileSync(tmp.join("bad.csv"), "no comma here\n")
      const bad = await s.cli(["import", tmp.join("bad.csv")])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/expected user,backend/)
    } finally {
      await tmp.cleanup()
    }
  })

  it("dump prints a script that recreates backends and mappings on an empty store through one import process", async () => {
    const r = await s.cli(["dump"])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.split("\n")
    expect(lines).toContain("doveroute backend add b1.test --hostip 127.0.0.2 --state 0 --weight 1 --or-update")
    // every mapping goes through ONE `doveroute import -` (a heredoc of CSV), not a process per user
    expect(lines.filter((l) => l.startsWith("doveroute import")).length).toBe(1)
    expect(lines.filter((l) => l.startsWith("doveroute user move")).length).toBe(0)
    expect(lines).toContain("alice,b2.test")
    const other = await adminStore(kind)
    const tmp = makeTempDir()
    try {
      const script = tmp.join("dump.sh")
      fs.writeFileSync(script, r.stdout)
      // `doveroute` on PATH is this checkout's launcher; the replay's store is the empty one
      fs.writeFileSync(tmp.join("doveroute"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_BIN)} "$@"\n`, { mode: 0o755 })
      const env = { ...process.env, PATH: `${tmp.path}:${process.env["PATH"] ?? ""}`, DOVEROUTE_STORE: other.url }
      const replay = await runCommand("sh", [script], { env, timeoutMs: 120_000 })
      expect(replay.code, replay.stderr).toBe(0)
      const back = await other.cli(["dump"])
      expect(back.stdout).toBe(r.stdout)
      // re-runnable: a second replay changes nothing (every row unchanged)
      const again = await runCommand("sh", [script], { env, timeoutMs: 120_000 })
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toMatch(/ 0 inserted, \d+ unchanged, 0 conflicts, 0 errors/)
      expect((await other.cli(["dump"])).stdout).toBe(r.stdout)
      // --json: one document whose mappings `import` takes back
      const doc = await s.json(["dump"])
      expect(doc.mappings).toContainEqual({ user: "alice", backend: "b2.test" })
    } finally {
      await tmp.cleanup()
      await other.drop()
    }
  })

  it("backend remove refuses with mapped users unless --move-users-to or --unassign-users", async () => {
    const r = await s.cli(["backend", "remove", "b1.test"])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/has \d+ mapped users; give --move-users-to BACKEND or --unassign-users/)
    const n1 = (await s.json(["status"])).backends.find((b: { id: number }) => b.id === 1).users
    const moved = await s.json(["backend", "remove", "b1.test", "--move-users-to", "b2.test"])
    expect(moved).toMatchObject({ removed: { id: 1 }, users: n1, movedTo: { hostname: "b2.test" } })
    const n2 = (await s.json(["status"])).backends.find((b: { id: number }) => b.id === 2).users
    expect(await s.json(["backend", "remove", "2", "--unassign-users"])).toMatchObject({ users: n2, unassigned: n2 })
    expect(await s.json(["backend", "remove", "b3.test"])).toMatchObject({ users: 0 })
    expect(await s.json(["backend", "list"])).toEqual([])
    expect((await s.json(["status"])).totalUsers).toBe(0)
  })

  it("shard show/move with --strategy shard; user move refused there", async () => {
    const sh = await adminStore(kind, { strategy: "shard" })
    try {
      await sh.json(["backend", "add", "s1"])
      await sh.json(["backend", "add", "s2"])
      expect(await sh.json(["shard", "move", "10670", "s1"])).toMatchObject({ shard: 10670, to: 1, changed: true })
      const show = await sh.json(["shard", "show", "alice"])
      expect(show).toMatchObject({ user: "alice", shard: 10670, key: 10670, mapped: true })
      expect(show.backend.hostname).toBe("s1")
      expect((await sh.json(["shard", "show", "10670"])).backend.hostname).toBe("s1")
      expect(await sh.json(["shard", "move", "10670", "s2"])).toMatchObject({ from: 1, to: 2, changed: true })
      expect(await sh.json(["user", "list"])).toEqual([{ shard: 10670, backendId: 2, backend: "s2" }])
      const um = await sh.cli(["user", "move", "alice", "s1"])
      expect(um.code).toBe(1)
      expect(um.stderr).toMatch(/shard move N BACKEND/)
      const bad = await sh.cli(["shard", "move", "70000", "s1"])
      expect(bad.code).toBe(1)
      const wrong = await s.cli(["shard", "move", "1", "b1"])
      expect(wrong.code).not.toBe(0)
    } finally {
      await sh.drop()
    }
  })
})
