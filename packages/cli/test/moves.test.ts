// The move engine (Moves.ts) in process on a real SQLite store: a flush item whose key is no longer
// on the backend being emptied is skipped and left alone; a key whose lock another command holds is
// skipped and that lock kept; every other key moves, only the last window waits, and no lock of
// the run is left behind. (The commands are tested end to end in packages/e2e.)
import { makeTempDir, runCli, type TempDir } from "@doveroute/testkit"
import { AdminOps } from "@doveroute/store"
import type { Settings } from "@doveroute/daemon"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { withStore } from "../src/commands/AdminSupport.js"
import { moveKeys, planMoves, summaryExitCode } from "../src/commands/Moves.js"

describe("move engine on SQLite", { timeout: 120_000 }, () => {
  let tmp: TempDir
  let config: string
  beforeAll(async () => {
    tmp = makeTempDir()
    config = tmp.join("c.json")
    fs.writeFileSync(config, JSON.stringify({ store: `sqlite:${tmp.join("m.db")}`, cache: { refresh: "100 millis" } }))
    for (const b of ["b1", "b2"]) expect((await runCli(["backend", "add", b, "--config", config])).code).toBe(0)
    fs.writeFileSync(tmp.join("seed.csv"), "a,b1\nb,b2\nc,b1\nd,b1\n")
    expect((await runCli(["import", tmp.join("seed.csv"), "--config", config])).code).toBe(0)
  })
  afterAll(async () => {
    await tmp?.cleanup()
  })

  const run = <A, E>(body: (settings: Settings) => Effect.Effect<A, E, any>) =>
    Effect.runPromise(withStore({ config: Option.some(config), store: Option.none(), storeFile: Option.none(), strategy: Option.none() }, body) as Effect.Effect<A, E>)

  it("skips stale and locked keys, moves the rest, releases its locks", async () => {
    const summary = await run((settings) => Effect.gen(function*() {
      const b1 = yield* AdminOps.resolveBackend("b1")
      const b2 = yield* AdminOps.resolveBackend("b2")
      // another command is moving d
      yield* AdminOps.lockKey("d", false, Date.now() + 600_000)
      const items = ["a", "b", "c", "d"].map((key) => ({ key, to: b2, expectFrom: b1.id }))
      const plan = yield* planMoves(settings, items)
      const done = yield* moveKeys(settings, items, { wait: true, parallel: 2 })
      return { plan, done, moving: yield* AdminOps.moveInProgress("d"), free: yield* AdminOps.moveInProgress("a") }
    }))
    expect(summary.plan.results.map((r) => [r.key, r.status])).toEqual([["a", "would-move"], ["b", "skipped"], ["c", "would-move"], ["d", "would-move"]])
    const done = summary.done
    expect(done).toMatchObject({ total: 4, moved: 2, skipped: 2, failed: 0 })
    expect(done.results.map((r) => [r.key, r.status])).toEqual([["a", "moved"], ["b", "skipped"], ["c", "moved"], ["d", "skipped"]])
    expect(done.results[1]!.detail).toBe("no longer on backend 1 (now on backend 2)")
    expect(done.results[3]!.detail).toMatch(/already being moved by another command/)
    // only the last window waits cache.refresh + 0.5 s
    expect(done.waitedMs).toBe(600)
    expect(summaryExitCode(done)).toBe(75)
    expect(summary.moving).not.toBeNull()
    expect(summary.free).toBeNull()
  })
})
