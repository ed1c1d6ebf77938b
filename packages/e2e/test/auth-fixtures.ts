// Shared pieces of the auth-socket end-to-end tests (standalone auth server, login relay, userdb
// relay) on real Dovecot 2.3.19 and 2.4.1.
import { copyFileSync } from "node:fs"
import path from "node:path"
import { imapLogin, lmtpDeliver, mappedBackend, mappingRows, REPO_ROOT, seedSqliteStore, settle, sqlite, v23, v24 } from "@doveroute/testkit"
import type { Backend, RunningDaemon, VersionTempDir } from "@doveroute/testkit"
import { expect } from "vitest"

/** A shipped Dovecot snippet (config/dovecot-<version>/<name>) with `/run/doveroute/auth.sock` replaced. */
export const snippet = (version: "2.3" | "2.4", name: string, authSocket?: string): string => {
  const text = (version === "2.3" ? v23 : v24).shipped(name)
  return authSocket === undefined ? text : text.replaceAll("/run/doveroute/auth.sock", authSocket)
}

/** Backend ids → the address that backend's logins arrive on. */
export const IP_OF: Readonly<Record<number, string>> = { 1: "127.0.0.2", 2: "127.0.0.3" }

/**
 * The store every auth-socket test uses: backend 1 `backend1.test` (hostip 127.0.0.2, so replies
 * carry a host name plus hostip), backend 2 `127.0.0.3` (an IP, no hostip); alice → 1, bob → 2.
 */
export const seedStore = (file: string) =>
  seedSqliteStore(file, {
    backends: [{ hostname: "backend1.test", hostip: "127.0.0.2" }, { hostname: "127.0.0.3" }],
    mappings: { alice: 1, bob: 2 }
  })

/** Environment for the daemon in the tests: no failure delay. */
export const DAEMON_ENV = { DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" } as const

/** Lines of a file that match `re`. */
export const grepLines = (text: string, re: RegExp): Array<string> => text.split("\n").filter((l) => re.test(l))

/** IMAP LOGIN + SELECT through the proxy: alice lands on 127.0.0.2 and bob on 127.0.0.3, their mapped backends. */
export const expectMappedLogins = async (imapPort: number, backend: Backend, password = "secret"): Promise<void> => {
  for (const [user, ip] of [["alice", "127.0.0.2"], ["bob", "127.0.0.3"]] as const) {
    const r = await imapLogin("127.0.0.1", imapPort, user, password, { select: true })
    expect(r.login.status, r.transcript).toBe("OK")
    expect(r.select?.status, r.transcript).toBe("OK")
    await settle(() => backend.servedBy(user, "imap") === ip)
    expect(backend.servedBy(user, "imap")).toBe(ip)
  }
}

/** A user's first IMAP login through the proxy: OK, one row written, and the login landed on that row's backend. */
export const expectFirstLoginMapped = async (
  imapPort: number,
  backend: Backend,
  db: string,
  user: string,
  password = "secret",
  options: { readonly select?: boolean } = {}
): Promise<void> => {
  const r = await imapLogin("127.0.0.1", imapPort, user, password, options)
  expect(r.login.status, r.transcript).toBe("OK")
  const id = await mappedBackend(db, user)
  expect(id).toBeDefined()
  await settle(() => backend.servedBy(user, "imap") === IP_OF[id!])
  expect(backend.servedBy(user, "imap")).toBe(IP_OF[id!])
}

/**
 * Runs `f` while every backend of the store is down (state 1, so no route can be made), then
 * brings them back up, whatever `f` did.
 */
export const withBackendsDown = async (db: string, f: () => Promise<void>): Promise<void> => {
  await sqlite(db, "UPDATE backends SET state = 1;")
  try {
    await f()
  } finally {
    await sqlite(db, "UPDATE backends SET state = 0;")
  }
}

/** The shipped lua/<name> copied into the temp dir; Dovecot's path of the copy. */
export const installLua = (tmp: VersionTempDir, name: string): string => {
  const lua = tmp.join(name)
  copyFileSync(path.join(REPO_ROOT, "lua", name), tmp.hostPath(lua))
  return lua
}

/** One message for `user` over LMTP through the proxy on `lmtpPort`: accepted, delivered, and one more file in the user's maildir. */
export const expectLmtpDelivered = async (lmtpPort: number, backend: Backend, user: string, subject: string): Promise<void> => {
  const before = backend.mailboxFiles(user).length
  const d = await lmtpDeliver({ host: "127.0.0.1", port: lmtpPort }, {
    from: "sender@example.test",
    to: [user],
    message: `Subject: ${subject}\r\n\r\nhello ${user}\r\n`
  })
  expect(d.rcpt, d.transcript).toEqual([250])
  expect(d.delivered, d.transcript).toEqual([250])
  expect(backend.mailboxFiles(user)).toHaveLength(before + 1)
}

/**
 * A chain's first passdb refuses dave's wrong password and the unknown user zed before any
 * routing: NO (a password failure, not a temporary one), no row written, doveroute never asked
 * about them (it did route carol earlier), nothing reached a backend. `more` adds the version's
 * own checks after the wrong password.
 */
export const expectRefusedBeforeRouting = async (
  rig: { readonly imapPort: number; readonly db: string; readonly daemon: RunningDaemon; readonly backend: Backend },
  more: () => Promise<void> = async () => undefined
): Promise<void> => {
  const before = await mappingRows(rig.db)
  const r = await imapLogin("127.0.0.1", rig.imapPort, "dave", "wrong")
  expect(r.login.status, r.transcript).toBe("NO")
  expect(r.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
  await more()
  const unknown = await imapLogin("127.0.0.1", rig.imapPort, "zed", "secret")
  expect(unknown.login.status, unknown.transcript).toBe("NO")
  expect(await mappingRows(rig.db)).toEqual(before)
  expect(await mappedBackend(rig.db, "dave")).toBeUndefined()
  expect(rig.daemon.logs()).toMatch(/user=carol\b/) // routed users do show up in its debug log
  expect(rig.daemon.logs()).not.toMatch(/user=(dave|zed)\b/)
  expect(rig.backend.logins("dave")).toHaveLength(0)
}

/**
 * With every backend down, dave's right password gets a temporary failure, never an unrouted
 * login: NO [UNAVAILABLE], no row, nothing reached a backend. `more` adds the version's own checks.
 */
export const expectTempFailWhileDown = (
  rig: { readonly imapPort: number; readonly db: string; readonly backend: Backend },
  more: () => Promise<void> = async () => undefined
): Promise<void> =>
  withBackendsDown(rig.db, async () => {
    const r = await imapLogin("127.0.0.1", rig.imapPort, "dave", "secret")
    expect(r.login.status, r.transcript).toBe("NO")
    expect(r.login.text).toMatch(/UNAVAILABLE|Temporary/i)
    expect(await mappedBackend(rig.db, "dave")).toBeUndefined()
    expect(rig.backend.logins("dave")).toHaveLength(0)
    await more()
  })
