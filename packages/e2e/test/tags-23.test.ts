// Tags (pools, like the 2.3 Director's director_tag), end to end on real Dovecot 2.3.19: a proxy
// whose first passdb (passwd-file, standing in for the site's user database) gives some users a
// `director_tag`, then `passdb dict` → doveroute with `key = tag/%{passdb:director_tag}/%u`; the
// daemon's `tags.domains` rule tags a domain. One real backend Dovecot listens on four addresses,
// one per backend row: pool a (127.0.0.2, 127.0.0.3), pool b (127.0.0.4), untagged (127.0.0.5).
// Real IMAP logins (four at a time through several auth workers) reach only backends of their
// pool, read from the backend's own log (real_lip); no up backend in the pool is a temporary
// failure with no row written.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"
import path from "node:path"
import {
  freePort, imapLogin, makeTempDir, mappedBackend, proxyConfig23, REPO_ROOT, runCli, settle, startBackend23, startDaemon,
  startDovecot23, teardown
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, TempDir } from "@doveroute/testkit"

const shipped = (name: string) => readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.3", name), "utf8")

/** Users by how their pool is decided: the passdb's director_tag, the domain rule, or nothing. */
const TAGGED_A = Array.from({ length: 8 }, (_, i) => `ann${i}`) // director_tag=a
const TAGGED_B = Array.from({ length: 4 }, (_, i) => `ben${i}`) // director_tag=b
const DOMAIN_B = Array.from({ length: 4 }, (_, i) => `dora${i}@b.example`) // no director_tag, tags.domains b.example=b
const OVERRIDE = "otto@b.example" // director_tag=a beats the domain rule b
const UNTAGGED = Array.from({ length: 4 }, (_, i) => `una${i}`)
const NOPOOL = "nora" // director_tag=c: no backend has tag c
const FRESH_B = "dora9@b.example" // logs in first while pool b is drained
const ALL = [...TAGGED_A, ...TAGGED_B, ...DOMAIN_B, OVERRIDE, ...UNTAGGED, NOPOOL, FRESH_B]
const TAG_OF: Record<string, string> = {
  ...Object.fromEntries(TAGGED_A.map((u) => [u, "a"])),
  ...Object.fromEntries(TAGGED_B.map((u) => [u, "b"])),
  [OVERRIDE]: "a",
  [NOPOOL]: "c"
}

/** The address (backend row) of each pool. */
const POOL_IPS: Record<string, ReadonlyArray<string>> = { a: ["127.0.0.2", "127.0.0.3"], b: ["127.0.0.4"], none: ["127.0.0.5"] }

describe("2.3.19: director_tag from the passdb and the tags.domains rule decide the pool", () => {
  /** What the tests use, set by beforeAll (parts may be missing when it failed). */
  const env: { tmp?: TempDir; backend?: Backend; proxy?: Dovecot; daemon?: RunningDaemon } = {}
  let imapPort = 0
  let db = ""
  let store = ""
  const backend = () => env.backend!
  const daemon = () => env.daemon!

  beforeAll(async () => {
    const tmp = env.tmp = makeTempDir()
    db = tmp.join("routes.db")
    store = `sqlite:${db}`
    imapPort = await freePort()
    const pop3Port = await freePort()
    const backend = env.backend = await startBackend23(tmp.path, {
      users: Object.fromEntries(ALL.map((u) => [u, "secret"])),
      listen: ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    })
    for (const [host, tag] of [["127.0.0.2", "a"], ["127.0.0.3", "a"], ["127.0.0.4", "b"], ["127.0.0.5", undefined]] as const) {
      const r = await runCli(["backend", "add", host, ...(tag !== undefined ? ["--tag", tag] : []), "--store", store, "--json"])
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout).tag).toBe(tag ?? null)
    }
    const sock = tmp.join("dict.sock")
    env.daemon = await startDaemon({
      args: ["--store", store, "--dict-socket", sock, "--socket-mode", "0666", "--extra-field", `port=${backend.imapPort}`, "--log-level", "debug"],
      env: { DOVEROUTE_TAGS_DOMAINS: "b.example=b" },
      waitFor: [sock]
    })
    const users = tmp.join("proxy-users")
    const dictConf = tmp.join("dict.conf.ext")
    // the shipped chain, with passwd-file (director_tag as an extra field) standing in for PAM
    const chain = shipped("95-doveroute-dict-chain.conf")
      .replace("driver = pam", `driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${users}`)
      .replace("/etc/dovecot/doveroute-dict.conf.ext", dictConf)
    const dictText = shipped("doveroute-dict.conf.ext")
      .replace("/run/doveroute/dict.sock", sock)
      .replace("key = passdb/%u", "key = tag/%{passdb:director_tag}/%u")
    expect(dictText).toContain("key = tag/%{passdb:director_tag}/%u")
    const dir = tmp.join("proxy")
    env.proxy = await startDovecot23({
      dir,
      // dict passdb lookups run in auth-worker processes: several, so that logins overlap at the daemon
      config: proxyConfig23({ dir, imapPort, pop3Port, authWorkerLimit: 8 }, chain),
      files: {
        [users]: ALL.map((u) => `${u}:{PLAIN}secret::::::${TAG_OF[u] !== undefined ? `director_tag=${TAG_OF[u]}` : ""}\n`).join(""),
        [dictConf]: dictText
      },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  }, 120_000)

  afterAll(async () => {
    expect(await teardown([env.daemon], [env.proxy, env.backend?.dovecot], env.tmp)).toEqual([0])
  })

  const poolOf = (user: string): string => TAG_OF[user] ?? (user.endsWith("@b.example") ? "b" : "none")

  it("first logins (four at a time): each user lands only on a backend of its pool (director_tag, else the domain rule, else untagged)", async () => {
    const users = ALL.filter((u) => u !== NOPOOL && u !== FRESH_B)
    // four logins at a time, each batch at once
    const results: Array<Awaited<ReturnType<typeof imapLogin>>> = []
    for (let i = 0; i < users.length; i += 4) {
      results.push(...await Promise.all(users.slice(i, i + 4).map((u) => imapLogin("127.0.0.1", imapPort, u, "secret", { select: true }))))
    }
    results.forEach((r, i) => {
      expect(r.login.status, `${users[i]}: ${r.transcript}`).toBe("OK")
      expect(r.select?.status, `${users[i]}: ${r.transcript}`).toBe("OK")
    })
    for (const u of users) {
      await settle(() => backend().servedBy(u, "imap") !== undefined)
      const ip = backend().servedBy(u, "imap")
      expect(POOL_IPS[poolOf(u)], `${u} (pool ${poolOf(u)}) served by ${ip}`).toContain(ip)
      // the stored row names the backend that served it (ids 1-4 in the order added)
      const id = await mappedBackend(db, u)
      expect(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"][id! - 1]).toBe(ip)
    }
    // the override: director_tag a beats the domain rule b
    expect(POOL_IPS["a"]).toContain(backend().servedBy(OVERRIDE, "imap"))
    // the daemon was asked with the tag in the key (Dovecot expanded %{passdb:director_tag})
    expect(daemon().logs()).toMatch(/routed.*user=ann0/)
  })

  it("a mapped user logs in again on the same backend", async () => {
    const before = backend().logins(TAGGED_A[0]!, "imap").length
    const r = await imapLogin("127.0.0.1", imapPort, TAGGED_A[0]!, "secret")
    expect(r.login.status, r.transcript).toBe("OK")
    await settle(() => backend().logins(TAGGED_A[0]!, "imap").length > before)
    const logins = backend().logins(TAGGED_A[0]!, "imap")
    expect(new Set(logins.map((l) => l.backendIp)).size).toBe(1)
  })

  it("no backend in the pool: a temporary failure over IMAP, never a backend of another pool, no row", async () => {
    const r = await imapLogin("127.0.0.1", imapPort, NOPOOL, "secret")
    expect(r.login.status, r.transcript).not.toBe("OK")
    expect(r.transcript).toMatch(/UNAVAILABLE|Temporary/i)
    expect(await mappedBackend(db, NOPOOL)).toBeUndefined()
    expect(backend().servedBy(NOPOOL, "imap")).toBeUndefined()
    expect(daemon().logs()).toMatch(/no backend with state=0 and weight>0 in tag c/)
  })

  it("pool b drained: its new users get temp_fail while pool a and untagged users still log in", async () => {
    const r0 = await runCli(["backend", "drain", "127.0.0.4", "--store", store])
    expect(r0.code, r0.stderr).toBe(0)
    // placement reads the store's backends: the drain counts at once
    const fresh = FRESH_B
    const r = await imapLogin("127.0.0.1", imapPort, fresh, "secret")
    expect(r.login.status, r.transcript).not.toBe("OK")
    expect(await mappedBackend(db, fresh)).toBeUndefined()
    // a mapped user of pool b keeps logging in to its (drained) backend
    const mapped = await imapLogin("127.0.0.1", imapPort, DOMAIN_B[0]!, "secret")
    expect(mapped.login.status, mapped.transcript).toBe("OK")
    const up = await runCli(["backend", "up", "127.0.0.4", "--store", store])
    expect(up.code, up.stderr).toBe(0)
  })
})
