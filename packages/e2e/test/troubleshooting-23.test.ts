// docs/troubleshooting.md, symptom by symptom, on real Dovecot 2.3.19: each case is produced for
// real (dict route and standalone auth socket in front of a real backend) and the lines the page
// quotes — what the IMAP client sees, Dovecot's log, doveroute's log, the metric — must appear.
import {
  dictConfExt23,
  dictRoute23,
  freePort,
  imapLogin,
  makeTempDir,
  proxyConfig23,
  runCli,
  runCommand,
  startBackend23,
  startDaemon,
  startDovecot23,
  stopDovecots,
  waitForLog,
  waitUntil,
  type Backend,
  type Dovecot,
  type RunningDaemon,
  type TempDir
} from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { seedStore, snippet } from "./auth-fixtures.js"

const DOC = fs.readFileSync(new URL("../../../docs/troubleshooting.md", import.meta.url), "utf8")

/** The page quotes `text` (code spans and blocks may wrap it; compared without line breaks). */
const quoted = (text: string) => expect(DOC.replace(/\s*\n\s*/g, " ")).toContain(text)

let tmp: TempDir
let backend: Backend

beforeAll(async () => {
  tmp = makeTempDir({ prefix: "dvr-ts-" })
  backend = await startBackend23(tmp.path)
}, 60_000)

afterAll(async () => {
  await stopDovecots([(backend as Backend | undefined)?.dovecot])
  await tmp?.cleanup()
}, 60_000)

describe("dict route (2.3 passdb dict)", { timeout: 120_000 }, () => {
  let proxy: Dovecot
  let daemon: RunningDaemon | undefined
  let imapPort: number
  let metricsPort: number
  let store: string
  let sock: string
  const startDoveroute = async () => {
    daemon = await startDaemon({
      args: ["--store", store, "--dict-socket", sock, "--proxy-flag", "proxy", "--extra-field", "nopassword", "--extra-field", `port=${backend.imapPort}`],
      env: { DOVEROUTE_METRICS_LISTEN: `127.0.0.1:${metricsPort}`, DOVEROUTE_CACHE_REFRESH: "300 millis" },
      waitFor: [sock]
    })
  }
  const proxyLog = () => proxy.log()
  /** A real login of `user` through the proxy; resolves with the backend address its new `Login:` line names. */
  const loginLanded = async (user: string) => {
    const before = backend.logins(user).length
    const r = await imapLogin("127.0.0.1", imapPort, user, "secret")
    expect(r.login.status, r.transcript).toBe("OK")
    await waitUntil(`the backend's Login: line of ${user}`, () => backend.logins(user).length > before)
    return backend.servedBy(user)
  }

  beforeAll(async () => {
    store = `sqlite:${tmp.join("routes.db")}`
    expect((await runCli(["migrate", "--store", store])).code).toBe(0)
    sock = tmp.join("dict.sock")
    metricsPort = await freePort()
    await startDoveroute()
    const dir = tmp.join("proxy")
    imapPort = await freePort()
    const ext = tmp.join("dict.conf.ext")
    // Dovecot's own auth cache on, as many sites have it: the "admin change not seen" case
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort, extra: "auth_cache_size = 1M\nauth_cache_ttl = 1 hour" }, dictRoute23({ dictConfPath: ext })),
      files: { [ext]: dictConfExt23({ socketPath: sock }) },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })
  afterAll(async () => {
    await daemon?.stop()
    await stopDovecots([proxy])
  })

  it("all logins temp_fail: no backend up", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, "alice", "secret")
    expect(r.login.tagged).toContain("NO [UNAVAILABLE] Temporary authentication failure.")
    quoted("NO [UNAVAILABLE] Temporary authentication failure.")
    await waitForLog(proxyLog, /Failed to lookup key shared\/passdb\/alice: dict-server returned failure: doveroute: NoBackend/)
    quoted("Failed to lookup key shared/passdb/alice: dict-server returned failure: doveroute: NoBackend")
    await waitForLog(proxyLog, /Aborted login by logging out \(auth service reported temporary failure\)/)
    quoted("Aborted login by logging out (auth service reported temporary failure)")
    await waitForLog(() => daemon!.logs(), /message="routing failed, answering temp_fail" reason=NoBackend frontend=dict detail="no backend with state=0 and weight>0 for new user alice" user=alice/)
    quoted(`message="routing failed, answering temp_fail" reason=NoBackend frontend=dict detail="no backend with state=0 and weight>0 for new user alice" user=alice`)
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    await waitUntil("the no_backend lookup counted", async () => /^doveroute_lookups_total\{frontend="dict",result="no_backend"\} 1$/m.test(await scrape()))
    quoted(`doveroute_lookups_total{frontend="dict",result="no_backend"}`)
  })

  it("wrong password: the backend says so, through the proxy", async () => {
    for (const [h, ip] of [["127.0.0.2", "127.0.0.2"], ["127.0.0.3", "127.0.0.3"]] as const) {
      expect((await runCli(["backend", "add", h, "--hostip", ip, "--store", store])).code).toBe(0)
    }
    expect((await runCli(["user", "move", "alice", "127.0.0.2", "--store", store])).code).toBe(0)
    const r = await imapLogin("127.0.0.1", imapPort, "alice", "wrong")
    expect(r.login.tagged).toContain("NO [AUTHENTICATIONFAILED] Authentication failed.")
    quoted("NO [AUTHENTICATIONFAILED] Authentication failed.")
    await waitForLog(proxyLog, new RegExp(`proxy\\(alice,127\\.0\\.0\\.2:${backend.imapPort}\\): Login failed: \\[AUTHENTICATIONFAILED\\] Authentication failed\\.`))
    quoted("proxy(alice,10.0.0.11:143): Login failed: [AUTHENTICATIONFAILED] Authentication failed.")
    await waitForLog(() => backend.log(), /passwd-file\(alice,127\.0\.0\.1,<[^>]+>\): Password mismatch/)
    quoted("passwd-file(alice,10.0.0.1,<…>): Password mismatch")
  })

  it("admin change not seen: Dovecot's auth cache keeps the old host until it is flushed", async () => {
    const first = await loginLanded("alice")
    expect(first).toBe("127.0.0.2")
    const move = await runCli(["user", "move", "alice", "127.0.0.3", "--store", store, "--json"])
    expect(move.code, move.stderr).toBe(0)
    const look = JSON.parse((await runCli(["lookup", "alice", "--store", store, "--json"])).stdout)
    expect(look.backend.hostip).toBe("127.0.0.3")
    // doveroute answers 127.0.0.3 now, but Dovecot answers from its own cache
    expect(await loginLanded("alice")).toBe("127.0.0.2")
    const flush = await proxy.doveadm(["auth", "cache", "flush", "alice"])
    expect(flush.code, flush.stderr).toBe(0)
    quoted("doveadm auth cache flush alice@example.org")
    expect(await loginLanded("alice")).toBe("127.0.0.3")
  })

  it("doveroute not running: Dovecot cannot reach the dict socket", async () => {
    expect(await daemon!.stop()).toBe(0)
    daemon = undefined
    const r = await imapLogin("127.0.0.1", imapPort, "bob", "secret")
    expect(r.login.tagged).toContain("NO [UNAVAILABLE] Temporary authentication failure.")
    const line = await waitForLog(proxyLog, /Failed to lookup key shared\/passdb\/bob/)
    expect(line).toMatch(/dict\(bob,127\.0\.0\.1,<[^>]+>\): Failed to lookup key shared\/passdb\/bob: net_connect_unix\(\/.*\/dict\.sock\) failed: No such file or directory/)
    quoted("Failed to lookup key shared/passdb/bob: net_connect_unix(/run/doveroute/dict.sock) failed: No such file or directory")
  })
})

describe("standalone auth socket", { timeout: 120_000 }, () => {
  it("socket permission denied: the login process (dovenull) cannot open a 0660 root:root socket", async () => {
    const db = tmp.join("auth.db")
    await seedStore(db)
    const sock = tmp.join("auth.sock")
    const daemon = await startDaemon({ args: ["--store", `sqlite:${db}`, "--auth-socket", sock, "--port", String(backend.imapPort)], waitFor: [sock] })
    const dir = tmp.join("auth-proxy")
    const imapPort = await freePort()
    const proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort }, snippet("2.3", "95-doveroute-auth.conf", sock), "passdb {\n  driver = static\n  args = password=unused\n}"),
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
    try {
      await imapLogin("127.0.0.1", imapPort, "alice", "secret", { timeoutMs: 3000 }).catch(() => undefined)
      const line = await waitForLog(() => proxy.log(), /Permission denied/)
      expect(line).toMatch(new RegExp(`imap-login: Error: auth-client: conn unix:${sock}: connect\\(${sock}\\) failed: Permission denied \\(euid=\\d+\\(dovenull\\) egid=\\d+\\(dovenull\\) missing \\+r perm: ${sock}, we're not in group 0\\(root\\)`))
      quoted("imap-login: Error: auth-client: conn unix:/run/doveroute/auth.sock: connect(/run/doveroute/auth.sock) failed: Permission denied (euid=110(dovenull) egid=114(dovenull) missing +r perm: /run/doveroute/auth.sock, we're not in group 0(root)")
      const check = await runCommand("runuser", ["-u", "dovenull", "--", "test", "-w", sock])
      expect(check.code).not.toBe(0)
      quoted("runuser -u dovenull -- test -w /run/doveroute/auth.sock")
    } finally {
      await daemon.stop()
      await stopDovecots([proxy])
    }
  })
})
