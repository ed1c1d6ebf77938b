// Issue 11 — doveroute-http.service behind real Dovecot 2.4.1 (chroot): the daemon started as the
// unit starts it (systemd-support.ts: user doveroute, group doveroute, no capability, UMask,
// ProtectSystem=strict with only its StateDirectory writable) with config/modes/http.json (paths
// moved under a fake root, the port replaced by a free one); the shipped 2.4 chain
// (95-doveroute-http-chain.conf, passwd-file standing in for PAM) asks it through lua/http-route.lua
// from Dovecot's auth process. Right password: routed to the mapped backend; wrong: refused before
// routing.
import {
  freePort,
  imapLogin,
  makeChrootTempDir,
  makeTempDir,
  proxyConfig24,
  REPO_ROOT,
  requireDovecot24,
  startBackend24,
  startDovecot24,
  stopDovecots,
  usersFileContent,
  type Backend,
  type ChrootTempDir,
  type Dovecot,
  type TempDir
} from "@doveroute/testkit"
import { copyFileSync, chownSync, readFileSync } from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { seedStore } from "./auth-fixtures.js"
import type { FakeDovecot } from "./reliability-support.js"
import { startAsUnit, talkAs, Unit, waitListening, type UnitRun } from "./systemd-support.js"

const USERS = { alice: "secret", bob: "secret" }

describe("doveroute-http.service behind real Dovecot 2.4.1", () => {
  let tmp: ChrootTempDir
  let unitRoot: TempDir
  let backend: Backend
  let proxy: Dovecot
  let run: UnitRun
  let imapPort: number
  const fakes: Array<FakeDovecot> = []

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    unitRoot = makeTempDir({ prefix: "dvh-" })
    imapPort = await freePort()
    backend = await startBackend24(tmp, { users: USERS })
    run = await startAsUnit(Unit.read("doveroute-http.service"), unitRoot, fakes, {
      prepare: async (config, ids) => {
        config.extra_fields = [...(config.extra_fields ?? []), `port=${backend.imapPort}`]
        const store = String(config.store).replace(/^sqlite:/, "")
        await seedStore(store)
        chownSync(store, ids.uid, ids.gid)
      }
    })
    expect(await waitListening(run), run.proc.output()).toBe(true)
    const listen = run.config.http.listen as string
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const lua = tmp.join("http-route.lua")
    copyFileSync(path.join(REPO_ROOT, "lua", "http-route.lua"), tmp.hostPath(lua))
    const chain = readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-http-chain.conf"), "utf8")
      .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
      .replaceAll("/etc/dovecot/http-route.lua", lua)
      .replaceAll("http://127.0.0.1:20180/route", `http://${listen}/route`)
    expect(chain).toContain(`http://${listen}/route`)
    proxy = await startDovecot24({
      dir,
      config: proxyConfig24({ dir, imapPort }, chain),
      files: { [users]: usersFileContent(USERS) },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  }, 120_000)

  afterAll(async () => {
    await stopDovecots([proxy, backend?.dovecot])
    const code = await run?.proc.stop()
    await tmp?.cleanup()
    await unitRoot?.cleanup()
    expect(code?.code).toBe(0)
  })

  it("the endpoint listens on loopback only and answers Dovecot's auth user", async () => {
    expect(run.config.http.listen).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(await talkAs("dovecot", run.config.http.listen, undefined)).toBe("HTTP 200")
  })

  it("IMAP through the 2.4 chain: alice lands on 127.0.0.2, bob on 127.0.0.3; a wrong password is refused", async () => {
    for (const [user, ip] of [["alice", "127.0.0.2"], ["bob", "127.0.0.3"]] as const) {
      const r = await imapLogin("127.0.0.1", imapPort, user, "secret", { select: true })
      expect(r.login.status, r.transcript + proxy.log().slice(-2000)).toBe("OK")
      expect(backend.servedBy(user, "imap")).toBe(ip)
    }
    const bad = await imapLogin("127.0.0.1", imapPort, "alice", "wrong")
    expect(bad.login.status, bad.transcript).toBe("NO")
  })
})
