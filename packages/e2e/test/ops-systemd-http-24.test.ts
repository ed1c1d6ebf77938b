// Issue 11 — doveroute-http.service behind real Dovecot 2.4.1 (chroot), in its shipped form: the
// daemon started as the unit starts it (systemd-support.ts: user doveroute, group dovecot, no
// capability, UMask, RuntimeDirectory /run/doveroute 0750, ProtectSystem=strict with only its
// RuntimeDirectory and StateDirectory writable) with config/modes/http.json: the endpoint on the
// UNIX socket /run/doveroute/http.sock, mode 0660, group dovecot. The unit's /run/doveroute is a
// directory inside the chroot, and "dovecot" is the chroot's group (its own /etc/group: another id
// than the host's), as on a Debian 13 host where the unit and Dovecot share one group database.
// The shipped 2.4 chain (95-doveroute-http-chain.conf, passwd-file standing in for PAM) asks it
// through lua/http-route.lua's socket_path from Dovecot's own auth process (user dovecot). Right
// password: routed to the mapped backend; wrong: refused before routing; nobody: EACCES.
import {
  DOVECOT24_ROOT, freePort, imapLogin, makeChrootTempDir, makeTempDir, proxyConfig24, REPO_ROOT,
  requireDovecot24, startBackend24, startDovecot24, stopDovecots, usersFileContent
} from "@doveroute/testkit"
import type { Backend, ChrootTempDir, Dovecot, TempDir } from "@doveroute/testkit"
import { copyFileSync, chownSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { seedStore } from "./auth-fixtures.js"
import type { FakeDovecot } from "./reliability-support.js"
import { startAsUnit, talkAs, talkAsIds, Unit, waitListening, type UnitRun } from "./systemd-support.js"

const USERS = { alice: "secret", bob: "secret" }

/** `name`'s numeric fields in the chroot's /etc/passwd or /etc/group. */
const chrootIds = (file: "passwd" | "group", name: string): [number, number] => {
  const line = readFileSync(path.join(DOVECOT24_ROOT, "etc", file), "utf8").split("\n").find((l) => l.startsWith(`${name}:`))
  if (line === undefined) throw new Error(`no ${name} in the 2.4.1 chroot's /etc/${file}`)
  const [a, b] = line.split(":").slice(2, 4).map(Number)
  return [a!, b!]
}

/** GET /route for alice on the UNIX socket, as http-route.lua sends it. */
const PROBE = "GET /route?user=alice&protocol=imap HTTP/1.1\r\nHost: localhost\r\n\r\n"

describe("doveroute-http.service behind real Dovecot 2.4.1", () => {
  let tmp: ChrootTempDir
  let unitRoot: TempDir
  let backend: Backend
  let proxy: Dovecot
  let run: UnitRun
  let imapPort: number
  let runDir: string
  const [dovecotUid, dovecotGid] = chrootIds("passwd", "dovecot")
  const fakes: Array<FakeDovecot> = []

  beforeAll(async () => {
    requireDovecot24()
    tmp = makeChrootTempDir()
    unitRoot = makeTempDir({ prefix: "dvh-" })
    imapPort = await freePort()
    backend = await startBackend24(tmp, { users: USERS })
    // the unit's /run/doveroute: a directory inside the chroot (Dovecot sees it there)
    runDir = tmp.join("run-doveroute")
    run = await startAsUnit(Unit.read("doveroute-http.service"), unitRoot, fakes, {
      at: { "/run/doveroute": tmp.hostPath(runDir) },
      groups: { dovecot: dovecotGid },
      prepare: async (config, ids) => {
        // the daemon resolves group names in the host's /etc/group: the chroot's dovecot by its id
        expect(config.http.group).toBe("dovecot")
        config.http.group = String(dovecotGid)
        config.extra_fields = [...(config.extra_fields ?? []), `port=${backend.imapPort}`]
        const store = String(config.store).replace(/^sqlite:/, "")
        await seedStore(store)
        chownSync(store, ids.uid, ids.gid)
      }
    })
    expect(await waitListening(run), run.proc.output()).toBe(true)
    expect(run.config.http.listen).toBe(tmp.hostPath(path.join(runDir, "http.sock")))
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const lua = tmp.join("http-route.lua")
    copyFileSync(path.join(REPO_ROOT, "lua", "http-route.lua"), tmp.hostPath(lua))
    const chain = readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-http-chain.conf"), "utf8")
      .replace("passdb pam {", `passdb passwd-file {\n  passwd_file_path = ${users}`)
      .replaceAll("/etc/dovecot/http-route.lua", lua)
      .replaceAll("socket_path = /run/doveroute/http.sock", `socket_path = ${runDir}/http.sock`)
    expect(chain).toContain(`socket_path = ${runDir}/http.sock`)
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

  it("the socket is 0660 doveroute:dovecot in /run/doveroute (0750): Dovecot's auth user (the chroot's dovecot) gets a route, nobody gets EACCES", async () => {
    const sock = run.config.http.listen as string
    const st = statSync(sock)
    expect([st.isSocket(), (st.mode & 0o777).toString(8), st.uid, st.gid]).toEqual([true, "660", run.uid, dovecotGid])
    const dir = statSync(path.dirname(sock))
    expect([(dir.mode & 0o777).toString(8), dir.uid, dir.gid]).toEqual(["750", run.uid, dovecotGid])
    expect(await talkAsIds({ uid: dovecotUid, gid: dovecotGid }, sock, PROBE)).toMatch(/^HTTP\/1\.1 200 /)
    expect(await talkAs("nobody", sock, PROBE)).toBe("EACCES")
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
