// Issue 11, the parts of self-backend-23/-24.test.ts that are the same on Dovecot 2.3.19 and 2.4.1:
// a proxy whose OWN address is a backend never lets a login in without a password check. The proxy
// listens on 127.0.0.1:P and a real backend on 127.0.0.2:P (the same port, as in a cluster where
// every node serves IMAP on 143); the store knows `127.0.0.1` (the proxy, by IP), `self.test` with
// hostip 127.0.0.1 (the proxy, by name) and `127.0.0.2`.
// - the shipped chain (passwd-file standing in for PAM, then doveroute with the default
//   proxy_maybe and no nopassword; how the chain reaches doveroute is the version's): a wrong
//   password never reaches doveroute; the right one logs a user whose backend is the proxy in
//   locally, with a working userdb;
// - the standalone auth socket in nopassword mode: a user whose backend is the proxy gets temp_fail;
// - on Dovecot alone, why the daemon refuses nopassword with proxy_maybe: any password logs in.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  freePort, imapLogin, mappedBackend, seedSqliteStore, startDaemon, stopDovecots, teardown
} from "@doveroute/testkit"
import type { Backend, Dovecot, DovecotVersion, RunningDaemon, VersionTempDir } from "@doveroute/testkit"

export const USERS = { alice: "secret", bob: "secret", carol: "secret", dave: "secret" }
export const WRONG = "NOT-THE-PASSWORD"

/** The store of every setup: alice on the proxy by IP, carol on the proxy by name, bob on 127.0.0.2. */
export const seed = (file: string) =>
  seedSqliteStore(file, {
    backends: [{ hostname: "127.0.0.1" }, { hostname: "self.test", hostip: "127.0.0.1" }, { hostname: "127.0.0.2" }],
    mappings: { alice: 1, carol: 2, bob: 3 }
  })

/**
 * bob's backend is 127.0.0.2, not the proxy: a wrong password gets NO and reaches no mailbox, the
 * right one lands on 127.0.0.2 with a working mailbox.
 */
export const expectBackendServesBob = async (port: number, backend: Backend): Promise<void> => {
  const bad = await imapLogin("127.0.0.1", port, "bob", WRONG)
  expect(bad.login.status, bad.transcript).toBe("NO")
  expect(backend.logins("bob")).toHaveLength(0)
  const ok = await imapLogin("127.0.0.1", port, "bob", "secret", { select: true })
  expect(ok.login.status, ok.transcript).toBe("OK")
  expect(ok.select?.status, ok.transcript).toBe("OK")
  expect(backend.servedBy("bob", "imap")).toBe("127.0.0.2")
}

/** One setup's temp dir, port (the proxy's on 127.0.0.1, the backend's on 127.0.0.2), store and backend. */
export interface SelfBackendBase {
  readonly tmp: VersionTempDir
  readonly port: number
  /** Host path of the SQLite store. */
  readonly db: string
  readonly backend: Backend
}

/** A temp dir, the shared port, the seeded store and the backend on 127.0.0.2. */
export const startBase = async (v: DovecotVersion): Promise<SelfBackendBase> => {
  const tmp = v.makeTmp()
  const port = await freePort("127.0.0.1", ["127.0.0.2"])
  const db = tmp.hostPath(tmp.join("routes.db"))
  const [backend] = await Promise.all([v.startBackend(tmp, { users: USERS, listen: ["127.0.0.2"], imapPort: port }), seed(db)])
  return { tmp, port, db, backend }
}

/** How a version runs the shipped chain: doveroute (proxy_maybe, no nopassword) and the proxy. */
export interface ChainSetup {
  /** What the chain's second passdb is, for the test name. */
  readonly title: string
  /** `local` lets the proxy serve logins itself ({@link DovecotVersion.localMail}). */
  start(base: SelfBackendBase, local: string): Promise<{ readonly daemon: RunningDaemon; readonly proxy: Dovecot }>
}

/** The suites every version runs, with its own way to run the shipped chain. */
export const selfBackendSuites = (v: DovecotVersion, chain: ChainSetup): void => {
  const localLogins = v.localLogins

  describe(`${v.release}, shipped chain (passwd-file first, then ${chain.title}, proxy_maybe): the proxy's own address is a backend`, () => {
    let base: SelfBackendBase
    let proxy: Dovecot
    let daemon: RunningDaemon

    beforeAll(async () => {
      base = await startBase(v)
      ;({ daemon, proxy } = await chain.start(base, v.localMail(base.tmp, base.tmp.join("proxy"))))
    })

    afterAll(async () => {
      expect(await teardown([daemon], [proxy, base?.backend.dovecot], base?.tmp)).toEqual([0])
    })

    it("backend = the proxy: a wrong password gets NO and never reaches doveroute", async () => {
      for (const user of ["alice", "carol"]) {
        const r = await imapLogin("127.0.0.1", base.port, user, WRONG)
        expect(r.login.status, r.transcript).toBe("NO")
        expect(r.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
        expect(localLogins(proxy.log(), user)).toEqual([])
      }
      expect(daemon.logs()).not.toMatch(/user=(alice|carol)\b/)
    })

    it("backend = the proxy by IP or by name: the right password logs in locally (proxy_maybe), userdb and mailbox work", async () => {
      for (const user of ["alice", "carol"]) {
        const r = await imapLogin("127.0.0.1", base.port, user, "secret", { select: true })
        expect(r.login.status, r.transcript).toBe("OK")
        expect(r.select?.status, r.transcript).toBe("OK")
        expect(localLogins(proxy.log(), user)).toHaveLength(1)
        expect(base.backend.logins(user)).toHaveLength(0)
      }
    })

    it("a user on another backend is proxied after the proxy checked the password; an unknown user gets NO", async () => {
      await expectBackendServesBob(base.port, base.backend)
      expect(localLogins(proxy.log(), "bob")).toEqual([])
      const zed = await imapLogin("127.0.0.1", base.port, "zed", "secret")
      expect(zed.login.status, zed.transcript).toBe("NO")
      expect(await mappedBackend(base.db, "zed")).toBeUndefined()
    })
  })

  describe(`${v.release}, standalone auth socket (shipped 95-doveroute-auth.conf, auth_mode nopassword, proxy_maybe): the proxy's own address is a backend`, () => {
    let base: SelfBackendBase
    let proxy: Dovecot
    let daemon: RunningDaemon

    beforeAll(async () => {
      base = await startBase(v)
      const { tmp, port, db } = base
      const sock = tmp.join("auth.sock")
      daemon = await startDaemon({
        args: ["--store", `sqlite:${db}`, "--auth-socket", tmp.hostPath(sock), "--socket-mode", "0666", "--port", String(port)],
        env: { DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" },
        waitFor: [tmp.hostPath(sock)]
      })
      const dir = tmp.join("proxy")
      proxy = await v.startDovecot({
        dir,
        config: v.proxyConfig({ dir, imapPort: port },
          v.shipped("95-doveroute-auth.conf").replaceAll("/run/doveroute/auth.sock", sock),
          v.staticPassdb("internal-auth-should-never-be-used")),
        tcp: [{ host: "127.0.0.1", port }]
      })
    })

    afterAll(async () => {
      expect(await teardown([daemon], [proxy, base?.backend.dovecot], base?.tmp)).toEqual([0])
    })

    it("backend = the proxy by IP or by name: a temporary failure for any password, never a login", async () => {
      for (const user of ["alice", "carol"]) {
        for (const pass of [WRONG, "secret"]) {
          const r = await imapLogin("127.0.0.1", base.port, user, pass)
          expect(r.login.status, r.transcript).toBe("NO")
          expect(r.login.text).toMatch(/UNAVAILABLE|Temporary/i)
        }
        expect(localLogins(proxy.log(), user)).toEqual([])
        expect(base.backend.logins(user)).toHaveLength(0)
      }
      expect(daemon.logs()).toMatch(/standalone auth socket cannot serve local logins/)
    })

    it("a user on another backend is proxied and the backend checks the password", async () => {
      await expectBackendServesBob(base.port, base.backend)
    })
  })
}

/**
 * On Dovecot alone: a proxy whose static passdb answers `fields` (proxy_maybe to its own address)
 * logs ANY password in locally (asserted: the login is OK and the proxy served it itself).
 */
export const localLoginWithAnyPassword = async (
  v: DovecotVersion,
  fields: (port: number) => Readonly<Record<string, string>>
): Promise<void> => {
  const tmp = v.makeTmp()
  let proxy: Dovecot | undefined
  try {
    const port = await freePort()
    const dir = tmp.join("proxy")
    proxy = await v.startDovecot({
      dir,
      config: v.proxyConfig({ dir, imapPort: port, extra: v.localMail(tmp, dir) }, v.staticPassdb(undefined, fields(port))),
      tcp: [{ host: "127.0.0.1", port }]
    })
    const r = await imapLogin("127.0.0.1", port, "alice", WRONG, { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(v.localLogins(proxy.log(), "alice")).toHaveLength(1)
  } finally {
    await stopDovecots([proxy])
    await tmp.cleanup()
  }
}

/** The version's "why doveroute refuses nopassword with proxy_maybe" test (2.3 adds one of its own). */
export const proxyMaybeLoopSuite = (v: DovecotVersion, more: () => void = () => undefined): void => {
  describe(`${v.release} itself: why doveroute refuses nopassword with proxy_maybe`, () => {
    more()
    it("a passdb answering nopassword + proxy_maybe with the proxy's own address logs ANY password in locally (the operator's report)", async () => {
      // what a router's reply with nopassword and proxy_maybe amounts to, without doveroute
      await localLoginWithAnyPassword(v, (port) => ({ nopassword: "y", proxy_maybe: "y", host: "127.0.0.1", port: String(port) }))
    })
  })
}
