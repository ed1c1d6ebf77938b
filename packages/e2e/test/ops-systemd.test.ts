// The daemon under systemd-style supervision, played by the test: a unix datagram NOTIFY_SOCKET
// (unix-dgram) receives READY=1; SIGHUP several times under a dict load loop fails no lookup and
// applies the new log level; SIGTERM with lookups in flight answers them and exits 0. Plus
// `systemd-analyze verify` on config/doveroute.service.
import { describe, expect, it } from "vitest"
import { makeTempDir, REPO_ROOT, runCommand, seedSqliteStore, sleep, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { waitUntil } from "./ops-support.js"
import { DictClient } from "./store-support.js"

interface DgramSocket {
  bind(path: string): void
  close(): void
  on(event: "message", cb: (buf: Buffer) => void): void
  on(event: "error", cb: (e: Error) => void): void
}
const unix = createRequire(import.meta.url)("unix-dgram") as { createSocket(type: "unix_dgram", cb?: (buf: Buffer) => void): DgramSocket }

describe("systemd-style supervision", () => {
  it("READY=1 on NOTIFY_SOCKET; SIGHUP under load fails no lookup; SIGTERM answers in-flight lookups and exits 0", async () => {
    const tmp = makeTempDir()
    const db = tmp.join("store.db")
    const notifyPath = tmp.join("notify.sock")
    const messages: Array<string> = []
    const notify = unix.createSocket("unix_dgram", (buf) => messages.push(buf.toString("utf8")))
    notify.on("error", () => {})
    notify.bind(notifyPath)
    let daemon: RunningDaemon | undefined
    try {
      await seedSqliteStore(db, { backends: [{ hostname: "s1.test" }, { hostname: "s2.test" }] })
      const sock = tmp.join("dict.sock")
      const config = tmp.join("doveroute.json")
      const writeConfig = (logLevel: string, extra: ReadonlyArray<string>) =>
        fs.writeFileSync(config, JSON.stringify({ store: `sqlite:${db}`, dict: { socket: sock }, log_level: logLevel, extra_fields: extra }))
      writeConfig("info", ["nopassword"])
      daemon = await startDaemon({ args: ["--config", config], waitFor: [sock], env: {
        NOTIFY_SOCKET: notifyPath,
        // the debug lines checked below are written for lookups that reach the store; with the
        // lookup cache the repeated users of the load would be answered from memory
        DOVEROUTE_CACHE_ENABLED: "false"
      } })
      const ready = await waitUntil("READY=1", async () => messages.find((m) => m.split("\n").includes("READY=1")))
      expect(ready).toContain(`MAINPID=${daemon.pid}`)
      expect(ready).toMatch(/^STATUS=/m)

      // load loop: 8 connections, each with 4 lookups in flight, until told to stop
      let stop = false
      let ok = 0
      const failures: Array<string> = []
      const replies = new Set<string>()
      const worker = async (w: number) => {
        const c = await DictClient.connect(sock)
        try {
          let i = 0
          while (!stop) {
            const batch = await Promise.all(Array.from({ length: 4 }, () => c.lookup(`load${w}-${(i++) % 50}@example.com`)))
            for (const r of batch) {
              if (r.line.startsWith("O")) {
                ok++
                replies.add(r.line.includes("\"port\":\"1143\"") ? "port" : "nopassword")
              } else failures.push(r.line)
            }
          }
        } catch (e) {
          failures.push(String(e))
        } finally {
          c.close()
        }
      }
      const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)))
      await sleep(500)
      for (let i = 0; i < 5; i++) {
        // the last reload changes the extra fields and lowers the log level to debug
        if (i === 4) writeConfig("debug", ["port=1143"])
        process.kill(daemon.pid, "SIGHUP")
        await sleep(300)
      }
      await waitUntil("the reload to apply", async () => replies.has("port") ? true : undefined, 10_000)
      await sleep(300)
      stop = true
      await load
      expect(failures.slice(0, 5)).toEqual([])
      expect(ok).toBeGreaterThan(100)
      expect(daemon.exited()).toBe(false)
      expect(daemon.logs().match(/configuration reloaded/g)?.length).toBe(5)
      expect(daemon.logs()).toMatch(/level=DEBUG/)
      expect(messages.some((m) => m.split("\n").includes("RELOADING=1"))).toBe(true)

      // a reload that needs a restart is logged as such; a broken file keeps the running settings
      fs.writeFileSync(config, JSON.stringify({ store: `sqlite:${db}`, dict: { socket: sock }, strategy: "shard" }))
      process.kill(daemon.pid, "SIGHUP")
      await waitUntil("restart warning", async () => /need a restart.*strategy/.test(daemon!.logs()) ? true : undefined, 10_000)
      fs.writeFileSync(config, "{ not json")
      process.kill(daemon.pid, "SIGHUP")
      await waitUntil("reload failure", async () => /reload failed/.test(daemon!.logs()) ? true : undefined, 10_000)

      // SIGTERM with lookups in flight: every one is answered, exit 0, STOPPING=1
      const clients = await Promise.all(Array.from({ length: 4 }, () => DictClient.connect(sock)))
      // one answered lookup each: the daemon has accepted every connection (not just the kernel backlog)
      for (const c of clients) expect((await c.lookup("warmup@example.com")).line).toMatch(/^O/)
      const inflight = clients.flatMap((c, w) => Array.from({ length: 50 }, (_, i) => c.lookup(`term${w}-${i}@example.com`)))
      const code = daemon.stop()
      const answered = await Promise.allSettled(inflight)
      const bad = answered.filter((r) => r.status === "rejected" || !r.value.line.startsWith("O"))
      expect(bad.length, `${bad.length} of ${inflight.length} in-flight lookups were not answered`).toBe(0)
      for (const c of clients) c.close()
      expect(await code).toBe(0)
      daemon = undefined
      expect(fs.existsSync(sock)).toBe(false)
      expect(messages.some((m) => m.split("\n").includes("STOPPING=1"))).toBe(true)
    } finally {
      await daemon?.stop()
      notify.close()
      tmp.cleanup()
    }
  })

  it("config/doveroute.service passes systemd-analyze verify", async () => {
    const which = await runCommand("sh", ["-c", "command -v systemd-analyze"])
    // a missing verifier is a failure, never a skip (scripts/install-deps.sh installs it)
    expect(which.code, "systemd-analyze is not installed (apt package systemd): run scripts/install-deps.sh").toBe(0)
    const unit = fs.readFileSync(path.join(REPO_ROOT, "config", "doveroute.service"), "utf8")
    expect(unit).toMatch(/^Type=notify$/m)
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
    const tmp = makeTempDir()
    try {
      // point ExecStart at this checkout (verify checks that the binary exists)
      const local = tmp.join("doveroute.service")
      fs.writeFileSync(local, unit.replace(/^ExecStart=\S+ \/opt\/doveroute\//m, `ExecStart=${process.execPath} ${REPO_ROOT}/`))
      const r = await runCommand("systemd-analyze", ["verify", local])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr.split("\n").filter((l) => l.includes("doveroute.service")), r.stderr).toEqual([])
    } finally {
      tmp.cleanup()
    }
  })
})
