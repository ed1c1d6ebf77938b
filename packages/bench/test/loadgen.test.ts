/**
 * Tests of the tool, not timed tests: the generator counts replies, checks every one of them and
 * reports a wrong reply as an error (never as throughput). Against the bare server (in this
 * process) and against the doveroute daemon's dict socket (and its auth socket when this build
 * has one) on a SQLite store.
 */
import { makeTempDir, runCli, startDaemon, type RunningDaemon, type TempDir } from "@doveroute/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBareServer } from "../src/BareServer.js"
import { bulkMap } from "../src/BulkMap.js"
import { runLoad } from "../src/LoadGen.js"
import { describeTempDir } from "./support.js"

const RUN_MS = 1000
const REPLY = "OK\t1\tuser=someone\tproxy\thost=127.0.0.2\tpass=secret"
const users = Array.from({ length: 200 }, (_, i) => `u${i}`)

describe("load generator against the bare node:net server", () => {
  const tmp = describeTempDir("dvbt-")

  it("counts every reply; correct ones are throughput with latencies", async () => {
    const server = await startBareServer(tmp().join("bare.sock"), REPLY)
    try {
      const r = await runLoad({ mode: "line", socket: server.path, connections: 4, depth: 2, durationMs: RUN_MS, users, lineReply: REPLY })
      expect(r.errors).toBe(0)
      expect(r.ok).toBeGreaterThan(0)
      expect(r.replies).toBe(r.sent)
      expect(r.ok).toBeLessThanOrEqual(r.replies)
      expect(r.latencyUs.count).toBe(r.ok)
      expect(r.latencyUs.p50).toBeGreaterThan(0)
      expect(r.latencyUs.p50).toBeLessThanOrEqual(r.latencyUs.p99)
      expect(r.latencyUs.p99).toBeLessThanOrEqual(r.latencyUs.max)
      expect(r.rps).toBe(Math.round((r.ok / r.windowMs) * 1000))
      expect(r.replyBytesMean).toBe(REPLY.length + 1)
    } finally {
      await server.close()
    }
  })

  it("a wrong reply is an error, not throughput", async () => {
    const server = await startBareServer(tmp().join("wrong.sock"), REPLY.replace("127.0.0.2", "127.0.0.9"))
    try {
      const r = await runLoad({ mode: "line", socket: server.path, connections: 2, durationMs: RUN_MS, users, lineReply: REPLY })
      expect(r.replies).toBeGreaterThan(0)
      expect(r.ok).toBe(0)
      expect(r.rps).toBe(0)
      expect(r.errors).toBe(r.replies)
      expect(r.errorKinds["wrong-reply"]).toBe(r.replies)
      expect(r.errorSamples[0]).toContain("127.0.0.9")
    } finally {
      await server.close()
    }
  })
})

describe("load generator against the doveroute daemon (SQLite)", () => {
  let tmp: TempDir
  let daemon: RunningDaemon | undefined
  let expected: Map<string, string>
  const hosts = new Set(["127.0.0.2", "127.0.0.3"])

  beforeAll(async () => {
    tmp = makeTempDir({ prefix: "dvbt-" })
    const file = tmp.join("routes.db")
    const store = `sqlite:${file}`
    for (const h of hosts) {
      const r = await runCli(["backend", "add", "--store", store, h, "--hostip", h], { timeoutMs: 60_000 })
      expect(r.code, r.stderr + r.stdout).toBe(0)
    }
    expected = await bulkMap({ kind: "sqlite", file }, users)
    // both front-ends the generator speaks; a build without the auth socket fails here (no skip)
    const args = ["--store", store, "--dict-socket", tmp.join("dict.sock"), "--proxy-flag", "proxy", "--extra-field", "nopassword", "--log-level", "warning",
      "--auth-socket", tmp.join("auth.sock")]
    daemon = await startDaemon({ args, waitFor: [tmp.join("dict.sock"), tmp.join("auth.sock")], timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await daemon?.stop()
    await tmp?.cleanup()
  })

  it("dict: every reply names the stored host", async () => {
    const r = await runLoad({ mode: "dict", socket: tmp.join("dict.sock"), connections: 4, durationMs: RUN_MS, users, expected })
    expect(r.errorSamples).toEqual([])
    expect(r.errors).toBe(0)
    expect(r.ok).toBeGreaterThan(0)
    expect(r.replies).toBe(r.sent)
  })

  it("dict: a reply naming another host than expected is an error", async () => {
    const flipped = new Map([...expected].map(([u, h]) => [u, h === "127.0.0.2" ? "127.0.0.3" : "127.0.0.2"]))
    const r = await runLoad({ mode: "dict", socket: tmp.join("dict.sock"), connections: 2, durationMs: RUN_MS, users, expected: flipped })
    expect(r.replies).toBeGreaterThan(0)
    expect(r.ok).toBe(0)
    expect(r.errors).toBe(r.replies)
    expect(r.errorKinds["wrong-host"]).toBe(r.replies)
  })

  it("dict: first-time users get a known host, and the same one when looked up again", async () => {
    const seen = new Map<string, string>()
    const r = await runLoad({ mode: "dict", socket: tmp.join("dict.sock"), connections: 2, durationMs: 500, users: [], newShare: 1, newUserPrefix: "fresh-", hosts, seen })
    expect(r.errors).toBe(0)
    expect(r.newUsers).toBeGreaterThan(0)
    expect(seen.size).toBe(r.newUsers)
    const again = await runLoad({ mode: "dict", socket: tmp.join("dict.sock"), connections: 2, users: [...seen.keys()], sequential: true, expected: seen })
    expect(again.errors).toBe(0)
    expect(again.ok).toBe(seen.size)
  })

  it("auth: checks user and host of every OK", async () => {
    const socket = tmp.join("auth.sock")
    const good = await runLoad({ mode: "auth", socket, connections: 4, depth: 4, durationMs: RUN_MS, users, expected })
    expect(good.errorSamples).toEqual([])
    expect(good.ok).toBeGreaterThan(0)
    const flipped = new Map([...expected].map(([u, h]) => [u, h === "127.0.0.2" ? "127.0.0.3" : "127.0.0.2"]))
    const bad = await runLoad({ mode: "auth", socket, connections: 2, durationMs: 500, users, expected: flipped })
    expect(bad.ok).toBe(0)
    expect(bad.errors).toBe(bad.replies)
  })
})
