// Issue 8 — secrets never reach a log line or an error message. Every reliability test
// (hostile, load, faults, permissions) already ends with expectNoSecrets on the daemon's whole
// output (known user passwords, the master password, the store URL password, and the base64
// SASL responses that carry them). Here, on top:
// - a daemon at log level debug (master password, PostgreSQL store URL with a password, a master
//   password extra field on the dict, both relays) goes through every password-bearing path:
//   right/wrong/illegal passwords, master-user logins, LOGIN with the password in CONT, invalid
//   base64, over-long lines holding the password, CANCEL during the failure delay, relayed OK
//   lines with `pass=`, a shutdown with requests in flight;
// - every CLI error path that is handed a secret (bad settings, unreachable or unknown stores,
//   malformed extra fields) prints an error without it.
import { freshPostgres, makeTempDir, runCli, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DictClient, query } from "./store-support.js"
import {
  AuthLineClient,
  DB_PASSWORD,
  type Daemon,
  expectHealthy,
  expectNoSecrets,
  FakeDovecot,
  MASTER_PASSWORD,
  MasterLineClient,
  RawConn,
  startDaemon,
  USER_PASSWORDS
} from "./reliability-support.js"

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")
let tmp: TempDir
let dropDb: (() => Promise<void>) | undefined
let storeUrl: string

beforeAll(async () => {
  tmp = makeTempDir()
  const db = await freshPostgres()
  dropDb = () => db.drop()
  storeUrl = db.url.replace("postgres@", `postgres:${DB_PASSWORD}@`)
}, 60_000)

afterAll(async () => {
  await dropDb?.()
  await tmp?.cleanup()
})

describe("no secret in any log line (daemon at log level debug)", () => {
  it("every password-bearing path, then a shutdown with requests in flight", async () => {
    const login = await FakeDovecot.listen(tmp.join("fake-login.sock"), "login")
    const userdb = await FakeDovecot.listen(tmp.join("fake-userdb.sock"), "userdb")
    const S = { dict: tmp.join("dict.sock"), auth: tmp.join("auth.sock"), lr: tmp.join("lr.sock"), ur: tmp.join("ur.sock") }
    let d: Daemon | undefined
    try {
      d = await startDaemon({
        args: [
          "--store", storeUrl,
          "--dict-socket", S.dict, "--extra-field", `password=${MASTER_PASSWORD}`,
          "--auth-socket", S.auth, "--password", MASTER_PASSWORD,
          "--login-relay-socket", S.lr, "--dovecot-login-socket", tmp.join("fake-login.sock"),
          "--userdb-relay-socket", S.ur, "--dovecot-userdb-socket", tmp.join("fake-userdb.sock"),
          "--log-level", "debug"
        ],
        env: { DOVEROUTE_AUTH_FAILURE_DELAY: "300 millis" },
        waitFor: Object.values(S)
      })
      await query(storeUrl, "INSERT INTO backends (hostname, hostip, state) VALUES ('127.0.0.2', NULL, 0), ('backend3.test', '127.0.0.3', 0)")

      // dict: the master password is in the reply (by design: Dovecot checks it), never in a log
      const dict = await DictClient.connect(S.dict)
      const reply = (await dict.lookup("alice")).line
      expect(reply).toContain(JSON.stringify(MASTER_PASSWORD))
      dict.close()

      // auth: right, wrong, illegal, master-user, LOGIN, bad base64, over-long, cancelled
      const a = await AuthLineClient.connect(S.auth)
      await a.ready
      expect(await a.login("alice", MASTER_PASSWORD)).toMatch(new RegExp(`^OK\\t1\\tuser=alice\\tproxy\\thost=127\\.0\\.0\\.[23]\\tpass=${MASTER_PASSWORD}$`))
      expect(await a.login("alice", USER_PASSWORDS[0])).toBe("FAIL\t2\tuser=alice")
      expect(await a.login("alice", `${USER_PASSWORDS[1]}\tx`)).toBe("FAIL\t3\tuser=alice")
      a.close()
      const raw = await RawConn.connect(S.auth)
      await raw.until(() => raw.lines().length >= 7)
      raw.send(
        "VERSION\t1\t4\nCPID\t1\n" +
          `AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(`alice\0masteruser\0${MASTER_PASSWORD}`)}\n` +
          `AUTH\t2\tLOGIN\tservice=imap\tresp=${b64("bob")}\n` +
          `CONT\t2\t${b64(USER_PASSWORDS[0])}\n` +
          `AUTH\t3\tPLAIN\tservice=imap\tresp=${b64(`\0carol\0${USER_PASSWORDS[1]}`)}\n` +
          "CANCEL\t3\n" +
          `AUTH\t4\tPLAIN\tservice=imap\tresp=${USER_PASSWORDS[0]}!\n`
      )
      // CONT 2 (Password:), OK 1, CANCELLED 3, FAIL 4 at once; FAIL 2 after the failure delay
      await raw.until(() => raw.lines().length >= 7 + 5, 5000)
      const lines = raw.lines().slice(7)
      expect(lines).toContainEqual(expect.stringMatching(/^OK\t1\tuser=alice\tproxy\thost=[^\t]+\tpass=.*\tmaster=masteruser$/))
      expect(lines).toContain("FAIL\t2\tuser=bob")
      expect(lines).toContain("CANCELLED\t3")
      expect(lines).toContainEqual(expect.stringMatching(/^FAIL\t4\tcode=invalid_base64/))
      raw.send(`AUTH\t5\tPLAIN\tservice=imap\tresp=${b64(`\0alice\0${MASTER_PASSWORD}`)}${"A".repeat(17_000)}\n`)
      expect(await raw.waitClosed()).toBe(true)

      // relays: Dovecot's OK carries pass= (the typed password) through the login relay
      const r = await AuthLineClient.connect(S.lr)
      await r.ready
      expect(await r.login("dave", USER_PASSWORDS[2])).toMatch(new RegExp(`^OK\\t1\\tuser=dave\\tproxy\\tpass=${USER_PASSWORDS[2]}\\thost=`))
      expect(await r.login("dave", USER_PASSWORDS[3])).toBe("FAIL\t2\tuser=dave")
      r.close()
      const u = await MasterLineClient.connect(S.ur)
      expect(await u.pass("erin")).toMatch(/^PASS\t1\tuser=erin\tproxy=y\thost=/)
      u.close()

      // shutdown with a wrong-password request still in its failure delay
      const late = await AuthLineClient.connect(S.auth)
      await late.ready
      const pending = late.login("frank", USER_PASSWORDS[1])
      await new Promise((res) => setTimeout(res, 50))
      expect(await d.stop()).toBe(0)
      await pending
      late.close()
      expectHealthy({ ...d, alive: () => true }, "debug-level daemon")
      expect(d.logs()).toMatch(/level=DEBUG/) // it really logged at debug level
    } finally {
      await d?.stop()
      await login.close()
      await userdb.close()
    }
  }, 120_000)
})

describe.concurrent("no secret in any CLI error message", () => {
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, Record<string, string>]> = [
    ["password with auth_mode=nopassword", ["serve", "--auth-socket", "/tmp/dvr-never.sock", "--auth-mode", "nopassword", "--password", MASTER_PASSWORD], {}],
    ["password from the environment with auth_mode=pam", ["serve", "--auth-socket", "/tmp/dvr-never.sock", "--auth-mode", "pam"], { DOVEROUTE_AUTH_PASSWORD: MASTER_PASSWORD }],
    ["unknown store scheme next to a password", ["serve", "--auth-socket", "/tmp/dvr-never.sock", "--password", MASTER_PASSWORD, "--store", `bogus://u:${DB_PASSWORD}@h/x`], {}],
    ["malformed store URL with a password", ["serve", "--dict-socket", "/tmp/dvr-never.sock", "--store", `postgres://u:${DB_PASSWORD}@[::1/x`], {}],
    ["unreachable PostgreSQL (serve)", ["serve", "--dict-socket", "/tmp/dvr-never.sock", "--store", `postgres://postgres:${DB_PASSWORD}@127.0.0.1:1/x`], {}],
    ["unreachable PostgreSQL (lookup)", ["lookup", "alice", "--store", `postgres://postgres:${DB_PASSWORD}@127.0.0.1:1/x`], {}],
    ["unreachable MariaDB (backend list)", ["backend", "list", "--store", `mysql://root:${DB_PASSWORD}@127.0.0.1:1/x`], {}],
    ["PostgreSQL database that does not exist", ["lookup", "alice", "--store", `postgres://postgres:${DB_PASSWORD}@127.0.0.1:5432/dvr_no_such_db`], {}],
    ["malformed extra field holding a secret", ["serve", "--dict-socket", "/tmp/dvr-never.sock", "--extra-field", `pass word=${MASTER_PASSWORD}`], {}],
    ["extra field password with a TAB", ["serve", "--dict-socket", "/tmp/dvr-never.sock", "--extra-field", `password=${MASTER_PASSWORD}\tx`], {}],
    ["empty master password", ["serve", "--auth-socket", "/tmp/dvr-never.sock"], { DOVEROUTE_AUTH_PASSWORD: "" }]
  ]

  it.each(cases)("%s", async (_name, args, env) => {
    const r = await runCli(args, { env: { DOVEROUTE_CONNECT_TIMEOUT: "1 second", DOVEROUTE_QUERY_TIMEOUT: "1 second", ...env }, timeoutMs: 60_000 })
    expect(r.code, r.stdout + r.stderr).not.toBe(0)
    expect((r.stdout + r.stderr).length, "an error message is printed").toBeGreaterThan(0)
    expectNoSecrets(r.stdout + r.stderr, `doveroute ${args.join(" ")}`)
  }, 60_000)

  it("a config file holding the master password: an error elsewhere in it does not print the password", async () => {
    const file = tmp.join("bad.json")
    fs.writeFileSync(file, JSON.stringify({ auth: { socket: tmp.join("a.sock"), password: MASTER_PASSWORD, auth_mode: "bogus" } }), { mode: 0o600 })
    const r = await runCli(["serve", "--config", file])
    expect(r.code).not.toBe(0)
    expectNoSecrets(r.stdout + r.stderr, "serve --config (bad auth_mode)")
  }, 60_000)

  it("doveroute lookup hides a password extra field", async () => {
    const r = await runCli(["lookup", "alice", "--store", storeUrl], { env: { DOVEROUTE_PROXY_FLAG: "proxy", DOVEROUTE_EXTRA_FIELDS: `nopassword,password=${MASTER_PASSWORD}` } })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain("password=<hidden>")
    expectNoSecrets(r.stdout + r.stderr, "doveroute lookup")
  }, 60_000)
})
