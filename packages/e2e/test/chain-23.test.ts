// Issue 5, the PAM-style chain on real Dovecot 2.3.19 through the dict front-end, as shipped in
// config/dovecot-2.3/95-doveroute-dict-chain.conf (passwd-file stands in for PAM): the
// authenticating passdb with `result_success = continue-ok`, then `passdb dict` → doveroute with
// `skip = unauthenticated` and `return-fail`, WITHOUT noauthenticate. A second protocol runs the
// documented chain with `noauthenticate` in the routing passdb's reply, to show the 2.3.19
// limitation ("Last passdb had noauthenticate field"; fixed in Dovecot 2.4.0, see chain-24).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"
import path from "node:path"
import {
  doveadmFields, freePort, makeTempDir, proxyConfig23, REPO_ROOT,
  startBackend23, startDaemon, startDovecot23, teardown, usersFileContent
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, TempDir } from "@doveroute/testkit"
import { expectFirstLoginMapped, expectMappedLogins, seedStore, expectRefusedBeforeRouting, expectTempFailWhileDown } from "./auth-fixtures.js"

const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }

const shipped = (name: string) => readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.3", name), "utf8")

describe("2.3.19 chain: passwd-file (continue-ok) → passdb dict → doveroute", () => {
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let daemonNoauth: RunningDaemon
  let imapPort: number
  let db: string

  beforeAll(async () => {
    tmp = makeTempDir()
    db = tmp.join("routes.db")
    imapPort = await freePort()
    const pop3Port = await freePort()
    const [be] = await Promise.all([startBackend23(tmp.path, { users: USERS }), seedStore(db)])
    backend = be
    const sock = tmp.join("dict.sock")
    const sockNoauth = tmp.join("dict-noauth.sock")
    const common = ["--store", `sqlite:${db}`, "--socket-mode", "0666", "--extra-field", `port=${backend.imapPort}`, "--log-level", "debug"]
    ;[daemon, daemonNoauth] = await Promise.all([
      startDaemon({ args: [...common, "--dict-socket", sock], waitFor: [sock] }),
      startDaemon({ args: [...common, "--dict-socket", sockNoauth, "--extra-field", "noauthenticate"], waitFor: [sockNoauth] })
    ])
    const dir = tmp.join("proxy")
    const users = tmp.join("proxy-users")
    const dictConf = (s: string) => shipped("doveroute-dict.conf.ext").replace("/run/doveroute/dict.sock", s)
    // the shipped chain with passwd-file standing in for PAM
    const chain = (dictConfPath: string) =>
      shipped("95-doveroute-dict-chain.conf")
        .replace("driver = pam", `driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${users}`)
        .replace("/etc/dovecot/doveroute-dict.conf.ext", dictConfPath)
    const indent = (s: string) => s.split("\n").map((l) => "  " + l).join("\n")
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23(
        { dir, imapPort, pop3Port },
        `protocol imap {\n${indent(chain(tmp.join("dict.conf.ext")))}\n}`,
        // the documented chain A: the routing passdb returns noauthenticate (fails on 2.3.19)
        `protocol pop3 {\n${indent(chain(tmp.join("dict-noauth.conf.ext")))}\n}`,
        // both versions need a global passdb; this one never runs
        "passdb {\n  driver = static\n  args = nopassword=y\n  username_filter = never-a-user@invalid\n}"
      ),
      files: {
        [users]: usersFileContent(USERS),
        [tmp.join("dict.conf.ext")]: dictConf(sock),
        [tmp.join("dict-noauth.conf.ext")]: dictConf(sockNoauth)
      },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })

  afterAll(async () => {
    expect(await teardown([daemon, daemonNoauth], [proxy, backend?.dovecot], tmp)).toEqual([0, 0])
  })

  it("the right password: mapped users land on their backends, a new user gets one row and lands on it", async () => {
    await expectMappedLogins(imapPort, backend)
    await expectFirstLoginMapped(imapPort, backend, db, "carol")
    const t = await proxy.doveadm(["auth", "test", "-x", "service=imap", "alice", "secret"])
    expect(t.code, t.stdout + t.stderr).toBe(0)
    expect(doveadmFields(t.stdout).sort()).toEqual(
      ["user=alice", "proxy_maybe=y", "host=backend1.test", "hostip=127.0.0.2", `port=${backend.imapPort}`].sort()
    )
  })

  it("a wrong password or an unknown user fails in the first passdb: no temp_fail, doveroute not asked, no row", async () => {
    await expectRefusedBeforeRouting({ imapPort, db, daemon, backend })
  })

  it("a routing failure after the right password is a temporary failure, not an unrouted login (return-fail)", async () => {
    await expectTempFailWhileDown({ imapPort, db, backend })
  })

  it("2.3.19 limitation: noauthenticate in the last passdb fails the right password (fixed in Dovecot 2.4.0)", async () => {
    const t = await proxy.doveadm(["auth", "test", "-x", "service=pop3", "alice", "secret"])
    expect(t.code, t.stdout + t.stderr).toBe(77)
    expect(doveadmFields(t.stdout)).toContain("code=temp_fail")
    expect(proxy.log()).toContain("Last passdb had noauthenticate field, cannot authenticate user")
    // the router did answer (with noauthenticate): it is Dovecot's chain end that refuses
    expect(daemonNoauth.logs()).toMatch(/user=alice/)
  })
})
