// Issue 11 — admin commands run as root against the SQLite store of a unit that runs as doveroute
// (README, "systemd and signals"): the daemon is started as doveroute-dict.service starts it
// (systemd-support.ts), root adds backends with `doveroute backend add --config <the unit's config>`
// while it runs and while it is stopped, and every file of the store (the database, its -wal and
// -shm) stays the unit user's: the daemon keeps answering, and starts again on the same store
// and routes to the backends root added.
import { makeTempDir, runCli, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startAsUnit, talkAs, Unit, waitListening, type UnitRun } from "./systemd-support.js"

const DICT_PROBE = (user: string) => `H3\t2\t0\t\tdirector\nLshared/passdb/${user}\t${user}\n`

describe("admin commands as root on a unit's SQLite store", () => {
  let tmp: TempDir
  let run: UnitRun | undefined
  const unit = Unit.read("doveroute-dict.service")

  beforeAll(() => {
    tmp = makeTempDir({ prefix: "dva-" })
  })
  afterAll(async () => {
    await run?.stop()
    await tmp?.cleanup()
  })

  /** Every file of the store (database, -wal, -shm, journal) with its owner. */
  const storeFiles = (store: string): Array<[string, number]> =>
    fs.readdirSync(path.dirname(store)).filter((f) => f.startsWith(path.basename(store)))
      .map((f) => [f, fs.statSync(path.join(path.dirname(store), f)).uid])
  const configFile = () => tmp.join("root", "etc", "doveroute", "dict.json")

  it("root's backend add while the unit runs and while it is stopped leaves every store file the unit's; the daemon routes to them", async () => {
    run = await startAsUnit(unit, tmp, [])
    expect(await waitListening(run), run.proc.output()).toBe(true)
    const store = String(run.config.store).replace(/^sqlite:/, "")
    const uid = run.uid
    expect(process.getuid?.(), "this test runs as root, as CI does").toBe(0)

    // while the daemon holds the store open (its -wal and -shm exist)
    const added = await runCli(["backend", "add", "b1.example.org", "--hostip", "10.0.0.11", "--config", configFile()])
    expect(added.code, added.stderr).toBe(0)
    expect(storeFiles(store).length, "database with -wal/-shm").toBeGreaterThanOrEqual(3)
    for (const [f, owner] of storeFiles(store)) expect(owner, `${f} while the unit runs`).toBe(uid)
    expect(await talkAs("dovecot", run.config.dict.socket, DICT_PROBE("alice"))).toMatch(/^O.*"hostip":"10\.0\.0\.11"/)

    // with the daemon stopped: root's command creates -wal/-shm itself
    expect((await run.stop()).code, run.proc.output()).toBe(0)
    const second = await runCli(["backend", "down", "b1.example.org", "--config", configFile()])
    expect(second.code, second.stderr).toBe(0)
    const third = await runCli(["backend", "add", "b2.example.org", "--hostip", "10.0.0.12", "--config", configFile()])
    expect(third.code, third.stderr).toBe(0)
    for (const [f, owner] of storeFiles(store)) expect(owner, `${f} after root's commands`).toBe(uid)

    // the unit starts again on that store and routes a new user to the only up backend root added
    run = await startAsUnit(unit, tmp, [])
    expect(await waitListening(run), run.proc.output()).toBe(true)
    expect(await talkAs("dovecot", run.config.dict.socket, DICT_PROBE("bob"))).toMatch(/^O.*"hostip":"10\.0\.0\.12"/)
    for (const [f, owner] of storeFiles(store)) expect(owner, `${f} with the unit running again`).toBe(uid)
  }, 120_000)
})
