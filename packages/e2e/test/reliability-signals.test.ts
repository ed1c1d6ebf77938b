// A daemon stopped by SIGINT or SIGTERM removes its socket files and exits 0, also when
// - the signal comes more than once: GNU `timeout -s INT` sends it to the daemon and then to its
//   whole process group; a second one arriving after Effect's runMain had removed its handler used
//   to kill the process with the default action, before the finalizers removed the sockets (seen
//   3 times in 14 under `timeout`);
// - the signal comes while a listener is being created (bound, not yet published).
// Real daemons (the bundle), real UNIX sockets (dict and auth-client), many rounds each.
import { CLI_BIN, makeTempDir, REPO_ROOT, spawnManaged, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startDaemon } from "./reliability-support.js"

let tmp: TempDir
beforeAll(() => { tmp = makeTempDir({ prefix: "dvr-sig-" }) })
afterAll(() => tmp.cleanup())

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A fresh socket directory per round: what is left in it after the exit is what the daemon left. */
const roundDir = (name: string) => {
  const dir = tmp.join(name)
  fs.mkdirSync(dir, { mode: 0o700 })
  return dir
}
const serveArgs = (dir: string) =>
  ["--store", `sqlite:${tmp.join("store.db")}`, "--dict-socket", `${dir}/dict.sock`, "--auth-socket", `${dir}/auth.sock`]

describe("stop signals leave no socket file behind", () => {
  it("a repeated SIGINT / SIGTERM during the stop: exit 0, both sockets removed (24 rounds)", async () => {
    for (let round = 0; round < 24; round++) {
      const signal = round % 2 === 0 ? "SIGINT" : "SIGTERM"
      const dir = roundDir(`repeat-${round}`)
      const d = await startDaemon({ args: serveArgs(dir), waitFor: [`${dir}/dict.sock`, `${dir}/auth.sock`] })
      expect(fs.readdirSync(dir).sort()).toEqual(["auth.sock", "dict.sock"])
      // the first signal, then the same one again every millisecond (after a first pause that
      // varies per round) until the process is gone: some always land while it is stopping
      process.kill(d.pid, signal)
      await sleep(round % 6)
      let sent = 1
      while (d.alive()) {
        try {
          process.kill(d.pid, signal)
          sent++
        } catch {
          break
        }
        await sleep(1)
      }
      const exit = await d.proc.exited
      expect({ round, signal, exit, left: fs.readdirSync(dir) }, d.logs()).toEqual({ round, signal, exit: { code: 0, signal: null }, left: [] })
      expect(sent).toBeGreaterThan(1)
      expect(d.logs()).toContain(`message="listener closed" socket=${dir}/dict.sock`)
    }
  }, 120_000)

  it("SIGINT while the listeners are being created: exit 0, nothing left (16 rounds)", async () => {
    for (let round = 0; round < 16; round++) {
      const dir = roundDir(`starting-${round}`)
      const proc = await spawnManaged(process.execPath, [CLI_BIN, "serve", ...serveArgs(dir)], { cwd: REPO_ROOT })
      // the first file in the directory is a socket being bound (staging name) or just published
      const deadline = Date.now() + 20_000
      while (fs.readdirSync(dir).length === 0 && proc.exitInfo() === undefined && Date.now() < deadline) await sleep(0)
      expect(proc.exitInfo(), proc.output()).toBeUndefined()
      await sleep(round % 4)
      process.kill(proc.pid, "SIGINT")
      const exit = await proc.exited
      expect({ round, exit, left: fs.readdirSync(dir) }, proc.output()).toEqual({ round, exit: { code: 0, signal: null }, left: [] })
    }
  }, 120_000)

  it("GNU timeout -s INT (signal to the daemon and to its process group): nothing left (8 rounds)", async () => {
    for (let round = 0; round < 8; round++) {
      const dir = roundDir(`timeout-${round}`)
      const proc = await spawnManaged("timeout", ["--preserve-status", "-s", "INT", `${1.5 + (round % 4) * 0.1}`, process.execPath, CLI_BIN, "serve", ...serveArgs(dir)], { cwd: REPO_ROOT })
      const exit = await proc.exited
      // --preserve-status: the daemon's own exit status (0), not timeout's 124
      expect({ round, exit, left: fs.readdirSync(dir) }, proc.output()).toEqual({ round, exit: { code: 0, signal: null }, left: [] })
      expect(proc.output()).toContain("doveroute ready")
      expect(proc.output()).toContain(`message="listener closed" socket=${dir}/auth.sock`)
    }
  }, 120_000)
})
