// Issue 3: a real Postfix smtpd (a private instance on a free loopback port, never the system
// Postfix) with smtpd_sasl_type = dovecot pointed at doveroute's standalone auth socket in master-
// password mode. Postfix speaks auth-client 1.0 with service=smtp and nologin: doveroute only
// authenticates (no routing, no pass=). A second doveroute in nopassword mode refuses Postfix.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  freePort, makeTempDir, mappingRows, postfixAvailable, SmtpClient, startDaemon, startPostfix, stopAll
} from "@doveroute/testkit"
import type { Postfix, RunningDaemon, TempDir } from "@doveroute/testkit"
import { DAEMON_ENV, seedStore } from "./auth-fixtures.js"

const MASTER = "smtp-master-pw"

describe("Postfix smtpd SASL through doveroute's standalone auth socket", () => {
  let tmp: TempDir
  let daemon: RunningDaemon
  let openDaemon: RunningDaemon
  let postfix: Postfix
  let postfixOpen: Postfix
  let db: string

  beforeAll(async () => {
    if (!postfixAvailable()) throw new Error("Postfix is not installed: run scripts/install-deps.sh (installs postfix, 'No configuration')")
    tmp = makeTempDir()
    db = tmp.join("routes.db")
    await seedStore(db)
    const sock = tmp.join("auth.sock")
    const openSock = tmp.join("auth-nopassword.sock")
    ;[daemon, openDaemon] = await Promise.all([
      startDaemon({
        args: ["--store", `sqlite:${db}`, "--auth-socket", sock, "--socket-mode", "0666"],
        env: { ...DAEMON_ENV, DOVEROUTE_AUTH_PASSWORD: MASTER },
        waitFor: [sock]
      }),
      startDaemon({
        args: ["--store", `sqlite:${db}`, "--auth-socket", openSock, "--socket-mode", "0666", "--auth-mode", "nopassword"],
        env: { ...DAEMON_ENV },
        waitFor: [openSock]
      })
    ])
    ;[postfix, postfixOpen] = await Promise.all([
      startPostfix({ dir: tmp.join("pf"), port: await freePort(), saslPath: sock }),
      startPostfix({ dir: tmp.join("pf-open"), port: await freePort(), saslPath: openSock })
    ])
  })

  afterAll(async () => {
    await stopAll([postfix, postfixOpen])
    const codes = await Promise.all([daemon?.stop(), openDaemon?.stop()])
    await tmp?.cleanup()
    expect(codes).toEqual([0, 0])
  })

  const auth = async (port: number, user: string, pass: string, initialResponse = true) => {
    const c = await SmtpClient.connect("127.0.0.1", port)
    try {
      const ehlo = await c.ehlo()
      expect(ehlo.lines.join("\n")).toMatch(/AUTH PLAIN LOGIN/) // the mechanisms doveroute announced
      return await c.authPlain(user, pass, { initialResponse })
    } finally {
      await c.quit().catch(() => undefined)
      c.close()
    }
  }

  it("AUTH PLAIN with the right credentials is accepted (235), with and without initial response", async () => {
    expect((await auth(postfix.port, "alice", MASTER)).code).toBe(235)
    expect((await auth(postfix.port, "carol", MASTER, false)).code).toBe(235)
    // smtpd's own session summary: one successful AUTH in each session (logged asynchronously)
    const sessions = () => postfix.log().match(/disconnect from \S+ ehlo=1 auth=1 quit=1/g) ?? []
    for (let i = 0; i < 100 && sessions().length < 2; i++) await new Promise((r) => setTimeout(r, 50))
    expect(sessions()).toHaveLength(2)
  })

  it("a wrong password is refused (535) and never routed", async () => {
    expect((await auth(postfix.port, "alice", "wrong")).code).toBe(535)
    // Postfix writes its log through postlogd, asynchronously: wait for the line
    for (let i = 0; i < 100 && !/SASL PLAIN authentication failed/.test(postfix.log()); i++) await new Promise((r) => setTimeout(r, 50))
    expect(postfix.log()).toMatch(/SASL PLAIN authentication failed/)
    // SASL-only clients are never routed: no row for carol, who only used SMTP
    expect((await mappingRows(db)).map((r) => r.user)).not.toContain("carol")
  })

  it("a nopassword doveroute refuses Postfix: nothing would check the password", async () => {
    expect((await auth(postfixOpen.port, "alice", "anything")).code).toBe(535)
    expect(openDaemon.logs()).toMatch(/refusing an auth-only client/)
  })
})
