// Issue 8 — hostile input on every listener, over real sockets, against the daemon as a child
// process: the dict socket, the standalone auth-client socket, the login relay and the userdb
// relay (each in front of a fake Dovecot that, like the real one, drops connections it cannot
// parse, and that answers some users with hostile reply lines), and the loopback HTTP endpoint.
//
// Named cases pin what the bad connection gets (an error reply or a close); on top, seeded
// fast-check samples (testkit Hostile: mutated and generated lines, NUL and non-UTF-8 bytes,
// escape sequences, lines over the limits) are thrown at each listener, with and without the
// handshake. Throughout, one good client per listener keeps asking and must be served every
// time. At the end the daemon is alive, logged nothing fatal/unhandled/error, leaked no secret,
// and still stops cleanly.
import { freePort, Hostile, makeTempDir, sqlite, type TempDir } from "@doveroute/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DictClient } from "./store-support.js"
import {
  AuthLineClient,
  type Daemon,
  expectHealthy,
  FakeDovecot,
  loop,
  MASTER_PASSWORD,
  MasterLineClient,
  percentile,
  RawConn,
  startDaemon,
  USER_PASSWORDS
} from "./reliability-support.js"

let tmp: TempDir
let daemon: Daemon
let fakeLogin: FakeDovecot
let fakeUserdb: FakeDovecot
let httpPort: number
/** The HTTP endpoint's shared token (a TCP listener needs one). */
const HTTP_TOKEN = "hostile-test-token-41d2"
const S = { dict: "", auth: "", login: "", userdb: "" }

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64")
const HS = "VERSION\t1\t2\nCPID\t4242\n"
const HELLO = "H3\t2\t0\t\tdirector\n"
const GOOD_RESP = b64(`\0alice\0${MASTER_PASSWORD}`)
/** What the relays append: a backend with a host name gets host + hostip, an IP backend host only. */
const RELAY_HOST = "\\t(host=backend1\\.test\\thostip=127\\.0\\.0\\.2|host=127\\.0\\.0\\.3)"

/** Hostile reply lines the fake Dovecot sends for `evil…` users (relays must survive them). */
const EVIL_REPLIES = [
  ...Hostile.sampleLines(Hostile.replyLine, 60, 8),
  "OK\t1\tuser=\xff\xfe\tproxy",
  "OK\t1\tuser=\tproxy",
  "OK\t1\tproxy",
  "OK\t99999999999\tuser=evil\tproxy",
  "OK",
  "PASS\t1\tuser=evil\x01tx\tproxy",
  "PASS\t1\tuser=evil*master\tproxy_maybe\tdestuser=",
  "OK\t1\tuser=" + "e".repeat(70_000) + "\tproxy",
  "X".repeat(1_100_000)
].map((l) => l.replace(/\n/g, ""))

beforeAll(async () => {
  tmp = makeTempDir()
  Object.assign(S, { dict: tmp.join("dict.sock"), auth: tmp.join("auth.sock"), login: tmp.join("lr.sock"), userdb: tmp.join("ur.sock") })
  fakeLogin = await FakeDovecot.listen(tmp.join("fake-login.sock"), "login", EVIL_REPLIES)
  fakeUserdb = await FakeDovecot.listen(tmp.join("fake-userdb.sock"), "userdb", EVIL_REPLIES)
  httpPort = await freePort()
  const db = tmp.join("routes.db")
  daemon = await startDaemon({
    args: [
      "--store", `sqlite:${db}`,
      "--dict-socket", S.dict,
      "--auth-socket", S.auth,
      "--login-relay-socket", S.login, "--dovecot-login-socket", tmp.join("fake-login.sock"),
      "--userdb-relay-socket", S.userdb, "--dovecot-userdb-socket", tmp.join("fake-userdb.sock"),
      "--http-listen", `127.0.0.1:${httpPort}`,
      "--log-level", "debug"
    ],
    // the master password from the environment (never on the command line), short failure delay
    env: { DOVEROUTE_AUTH_PASSWORD: MASTER_PASSWORD, DOVEROUTE_AUTH_FAILURE_DELAY: "100 millis", DOVEROUTE_LINE_TIMEOUT: "5 seconds", DOVEROUTE_HTTP_TOKEN: HTTP_TOKEN },
    waitFor: [S.dict, S.auth, S.login, S.userdb],
    waitForTcp: [{ host: "127.0.0.1", port: httpPort }]
  })
  await sqlite(db, "INSERT INTO backends (hostname, hostip, state) VALUES ('backend1.test', '127.0.0.2', 0), ('127.0.0.3', NULL, 0);")
}, 60_000)

afterAll(async () => {
  await daemon?.stop()
  await fakeLogin?.close()
  await fakeUserdb?.close()
  await tmp?.cleanup()
})

/** One good client per listener, asking in a loop; every answer must be right. */
const startGoodClients = async () => {
  const dict = await DictClient.connect(S.dict)
  const auth = await AuthLineClient.connect(S.auth)
  await auth.ready
  const relay = await AuthLineClient.connect(S.login)
  await relay.ready
  const userdb = await MasterLineClient.connect(S.userdb)
  let i = 0
  const n = () => i++ % 25
  return {
    dict: loop(() => dict.lookup(`good${n()}`).then((r) => r.line, (e: Error) => `X${e.message}`), (l) => /^O\{.*"host":/.test(l)),
    auth: loop(() => auth.login(`good${n()}`, MASTER_PASSWORD), (l) => /^OK\t\d+\tuser=good\d+\tproxy\thost=127\.0\.0\.[23]\tpass=/.test(l)),
    relay: loop(() => relay.login(`relayuser${n()}`, USER_PASSWORDS[2]), (l) => new RegExp(`^OK\\t\\d+\\tuser=relayuser\\d+\\tproxy\\tpass=[^\\t]+${RELAY_HOST}$`).test(l)),
    userdb: loop(() => userdb.pass(`lmtpuser${n()}`), (l) => new RegExp(`^PASS\\t\\d+\\tuser=lmtpuser\\d+\\tproxy=y${RELAY_HOST}$`).test(l)),
    http: loop(
      () => fetch(`http://127.0.0.1:${httpPort}/route?user=web${n()}&protocol=imap`, { headers: { authorization: `Bearer ${HTTP_TOKEN}` } }).then(async (r) => `${r.status} ${await r.text()}`, (e: Error) => `X ${e.message}`),
      (l) => /^200 .*host=/.test(l)
    ),
    close: () => {
      dict.close()
      auth.close()
      relay.close()
      userdb.close()
    }
  }
}

type Expect =
  | { readonly closed: true; readonly first?: RegExp }
  | { readonly reply: RegExp; readonly open?: boolean }
  | { readonly silentOpen: true }

/** Send `bytes` on a fresh connection and check what the daemon does. */
const probe = async (target: string, bytes: string | Buffer, want: Expect, skip = 0): Promise<string> => {
  const c = await RawConn.connect(target)
  try {
    // skip the server's own greeting lines (auth handshake: 7 lines)
    if (skip > 0) await c.until(() => c.lines().length >= skip)
    c.send(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes)
    if ("closed" in want) {
      const closed = await c.waitClosed(4000)
      const got = c.lines().slice(skip)
      if (!closed) return `not closed; got ${JSON.stringify(got)}`
      if (want.first !== undefined && !want.first.test(got[0] ?? "")) return `closed, but first line ${JSON.stringify(got[0])}`
      return "ok"
    }
    if ("reply" in want) {
      await c.until(() => c.lines().length > skip, 4000)
      const line = c.lines()[skip]
      if (line === undefined || !want.reply.test(line)) return `reply ${JSON.stringify(line)} (closed=${c.closed})`
      if (want.open === true) {
        await new Promise((r) => setTimeout(r, 150))
        if (c.closed) return "closed after the reply"
      }
      return "ok"
    }
    await new Promise((r) => setTimeout(r, 400))
    if (c.closed) return "closed"
    if (c.lines().length > skip) return `unexpected reply ${JSON.stringify(c.lines()[skip])}`
    return "ok"
  } finally {
    c.close()
  }
}

const AUTH_CASES: ReadonlyArray<readonly [string, string, Expect]> = [
  ["AUTH before the handshake", `AUTH\t1\tPLAIN\tservice=imap\tresp=${GOOD_RESP}\n`, { closed: true }],
  ["CPID before VERSION", "CPID\t1\n", { closed: true }],
  ["VERSION major 2", "VERSION\t2\t0\nCPID\t1\n", { closed: true }],
  ["CRLF line ends", "VERSION\t1\t2\r\nCPID\t1\r\n", { closed: true }],
  ["empty line", "\n", { closed: true }],
  ["invalid base64 in resp=", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=!!!!\n`, { reply: /^FAIL\t1\tcode=invalid_base64\treason=/, open: true }],
  ["invalid base64 in CONT", `${HS}AUTH\t1\tPLAIN\tservice=imap\nCONT\t1\t%%%%\n`, { reply: /^CONT\t1\t$/ }],
  ["unknown mechanism", `${HS}AUTH\t1\tXOAUTH2\tservice=imap\tresp=AAAA\n`, { closed: true }],
  ["lower-case known mechanism", `${HS}AUTH\t1\tplain\tservice=imap\tresp=${GOOD_RESP}\n`, { reply: /^OK\t1\tuser=alice\tproxy\thost=/ }],
  ["duplicate request id", `${HS}AUTH\t1\tPLAIN\tservice=imap\nAUTH\t1\tPLAIN\tservice=imap\n`, { closed: true, first: /^CONT\t1\t$/ }],
  ["id over 2^32-1", `${HS}AUTH\t4294967296\tPLAIN\tservice=imap\n`, { closed: true }],
  ["id of 30 digits", `${HS}AUTH\t${"9".repeat(30)}\tPLAIN\tservice=imap\n`, { closed: true }],
  ["id 0", `${HS}AUTH\t0\tPLAIN\tservice=imap\n`, { closed: true }],
  ["negative id", `${HS}AUTH\t-1\tPLAIN\tservice=imap\n`, { closed: true }],
  ["id 2^32-1 is valid", `${HS}AUTH\t4294967295\tPLAIN\tservice=imap\n`, { reply: /^CONT\t4294967295\t$/ }],
  ["missing service", `${HS}AUTH\t1\tPLAIN\tresp=${GOOD_RESP}\n`, { closed: true }],
  ["missing mechanism", `${HS}AUTH\t1\n`, { closed: true }],
  ["parameters after resp=", `${HS}AUTH\t1\tPLAIN\tresp=${GOOD_RESP}\tservice=imap\n`, { closed: true }],
  ["tab-escapes in parameters", `${HS}AUTH\t1\tPLAIN\tservice=im\x01tap\tsession=\x01n\x01r\x010\tlip=\x01\tresp=${GOOD_RESP}\n`, { reply: /^FAIL\t1\treason=doveroute: invalid request: service contains a control character$/, open: true }],
  ["tab-escapes in the user name", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(`\0al\x01tice\0${MASTER_PASSWORD}`)}\n`, { reply: /^FAIL\t1\treason=doveroute: invalid request: user contains a control character$/, open: true }],
  ["TAB inside the user name", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(`\0al\tice\0${MASTER_PASSWORD}`)}\n`, { reply: /^FAIL\t1\treason=doveroute: invalid request: user contains a control character$/, open: true }],
  ["raw NUL byte in the line", `${HS}AUTH\t1\tPLAIN\tservice=imap\x00\tresp=${GOOD_RESP}\n`, { reply: /^FAIL\t1\treason=doveroute: invalid request: service contains a control character$/, open: true }],
  ["non-UTF-8 bytes in parameters", `${HS}AUTH\t1\tPLAIN\tservice=imap\tsession=\xff\xfe\xc3\tresp=${GOOD_RESP}\n`, { reply: /^FAIL\t1\treason=doveroute: invalid request: session is not valid UTF-8$/, open: true }],
  ["non-UTF-8 user in PLAIN", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(Buffer.from([0, 0xff, 0x61, 0, 0x70]))}\n`, { reply: /^FAIL\t1\treason=doveroute: malformed authentication data$/ }],
  ["PLAIN with three NULs", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64("\0a\0b\0c")}\n`, { reply: /^FAIL\t1\treason=doveroute: malformed authentication data$/ }],
  ["wrong master password", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(`\0alice\0${USER_PASSWORDS[1]}`)}\n`, { reply: /^FAIL\t1\tuser=alice$/ }],
  ["line over 16 KiB", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${"A".repeat(17_000)}\n`, { closed: true }],
  ["16 KiB without LF", `${HS}${"A".repeat(20_000)}`, { closed: true }],
  ["CANCEL of an unknown id", `${HS}CANCEL\t77\n`, { silentOpen: true }],
  ["CANCEL of an unknown id, then a login", `${HS}CANCEL\t77\nAUTH\t2\tPLAIN\tservice=imap\tresp=${GOOD_RESP}\n`, { reply: /^OK\t2\tuser=alice\t/ }],
  ["CONT of an unknown id", `${HS}CONT\t9\tAAAA\n`, { reply: /^FAIL\t9\treason=Authentication request timed out$/, open: true }],
  ["CONT without a server CONT", `${HS}AUTH\t1\tLOGIN\tservice=imap\tresp=${b64("alice")}\nCONT\t1\tAAAA\nCONT\t1\tAAAA\n`, { reply: /^CONT\t1\tUGFzc3dvcmQ6$/ }],
  ["VERSION again after the handshake", `${HS}VERSION\t1\t2\n`, { closed: true }],
  ["auth-master REQUEST", `${HS}REQUEST\t1\t2\t3\t0123456789abcdef0123456789abcdef\n`, { closed: true }],
  ["auth-master PASS", `${HS}PASS\t1\talice\tservice=imap\n`, { closed: true }],
  ["auth-master CACHE-FLUSH", `${HS}CACHE-FLUSH\t1\n`, { closed: true }],
  ["dict lookup on the auth socket", "Lshared/passdb/alice\talice\n", { closed: true }]
]

const DICT_CASES: ReadonlyArray<readonly [string, string, Expect]> = [
  ["lookup before hello", "Lshared/passdb/alice\talice\n", { closed: true }],
  ["hello with an unknown major", "H9\t0\t0\t\tdirector\nLshared/passdb/alice\talice\n", { closed: true }],
  ["hello without numbers", "H\nLshared/passdb/alice\talice\n", { closed: true }],
  ["iterate (unsupported)", `${HELLO}I1\t0\tshared/\n`, { closed: true }],
  ["transaction (unsupported)", `${HELLO}B1\t1\n`, { closed: true }],
  ["lookup without key", `${HELLO}L\n`, { closed: true }],
  ["empty line", `${HELLO}\n`, { closed: true }],
  ["key doveroute does not serve", `${HELLO}Lshared/other/alice\talice\n`, { reply: /^N$/, open: true }],
  ["non-UTF-8 user", `${HELLO}Lshared/passdb/j\xf6rg\tj\xf6rg\n`, { reply: /^Fdoveroute: invalid request: key is not valid UTF-8$/, open: true }],
  ["NUL byte in the user", `${HELLO}Lshared/passdb/al\x00ice\tx\n`, { reply: /^F/, open: true }],
  ["escaped TAB in the user", `${HELLO}Lshared/passdb/al\x01tice\tx\n`, { reply: /^F/, open: true }],
  ["escaped NUL in the user", `${HELLO}Lshared/passdb/al\x010ice\tx\n`, { reply: /^F/, open: true }],
  ["lone escape at the end", `${HELLO}Lshared/passdb/alice\x01\tx\n`, { reply: /^O\{/, open: true }],
  ["line over 64 KiB", `${HELLO}Lshared/passdb/${"a".repeat(70_000)}\tx\n`, { closed: true }],
  ["huge user under the limit", `${HELLO}Lshared/passdb/${"a".repeat(60_000)}\tx\n`, { reply: /^[OF]/, open: true }],
  ["auth-client VERSION on the dict socket", HS, { closed: true }]
]

const LOGIN_RELAY_CASES: ReadonlyArray<readonly [string, string, Expect]> = [
  ["garbage (Dovecot closes, so does the relay)", `${HS}GARBAGE\t1\n`, { closed: true }],
  ["line over 16 KiB", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${"A".repeat(20_000)}\n`, { closed: true }],
  ["wrong password: FAIL passes unrouted", `${HS}AUTH\t1\tPLAIN\tservice=imap\tresp=${b64(`\0bob\0${USER_PASSWORDS[1]}`)}\n`, { reply: /^FAIL\t1\tuser=bob$/, open: true }],
  ["CANCEL of an unknown id", `${HS}CANCEL\t5\n`, { silentOpen: true }]
]

const USERDB_RELAY_CASES: ReadonlyArray<readonly [string, string, Expect]> = [
  ["REQUEST (auth-master only)", "VERSION\t1\t0\nREQUEST\t1\t2\t3\t0123456789abcdef0123456789abcdef\n", { closed: true }],
  ["CACHE-FLUSH (auth-master only)", "VERSION\t1\t0\nCACHE-FLUSH\t1\n", { closed: true }],
  ["CPID (an auth client)", "CPID\t1\n", { closed: true }],
  ["garbage", "HELLO\tworld\n", { closed: true }],
  ["line over 8 KiB", `VERSION\t1\t0\nPASS\t1\t${"a".repeat(9000)}\tservice=lmtp\n`, { closed: true }],
  ["PASS without service (Dovecot closes)", "VERSION\t1\t0\nPASS\t1\talice\n", { closed: true }],
  ["non-UTF-8 user: temp_fail, not a guessed user", "VERSION\t1\t0\nPASS\t1\tj\xf6rg\tservice=lmtp\n", { reply: /^FAIL\t1\tcode=temp_fail$/, open: true }],
  ["USER passes unchanged", "VERSION\t1\t0\nUSER\t1\talice\tservice=lmtp\n", { reply: /^USER\t1\talice\tuid=5000$/, open: true }]
]

const HTTP_CASES: ReadonlyArray<readonly [string, string, RegExp]> = ([
  ["no token", "GET /route?user=a HTTP/1.1\r\nHost: y\r\n\r\n", /^HTTP\/1\.1 401 /],
  ["wrong token", "GET /route?user=a HTTP/1.1\r\nHost: y\r\nAuthorization: Bearer nope\r\n\r\n", /^HTTP\/1\.1 403 /],
  ["non-UTF-8 user", "GET /route?user=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["raw non-UTF-8 bytes", "GET /route?user=\xff HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["NUL in the user", "GET /route?user=a%00b HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["TAB in the user", "GET /route?user=a%09b HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["missing user", "GET /route HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["bad percent-encoding", "GET /route?user=%zz HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["bad protocol", "GET /route?user=a&protocol=im%0aap HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["POST", "POST /route?user=a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", /^HTTP\/1\.1 404 /],
  ["other path", "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 404 /],
  ["headers over 16 KiB", `GET /route?user=a HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
  ["URL over 16 KiB", `GET /route?user=${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, /^HTTP\/1\.1 431 /],
  ["garbage request line", "\x00\xff\x01 nonsense\r\n\r\n", /^HTTP\/1\.1 400 /],
  ["bare LF request", "GET /route?user=a HTTP/1.1\nHost: x\n\n", /^HTTP\/1\.1 (200|400) /]
] as const).map(([name, bytes, want]) => [name, bytes.replace(/Host: x(\r?\n)/, `Host: x$1Authorization: Bearer ${HTTP_TOKEN}$1`), want] as const)

describe("hostile input on every listener (daemon child, real sockets)", () => {
  it("named hostile cases: each bad connection gets an error or is closed; good clients on every listener are served throughout", async () => {
    const good = await startGoodClients()
    const failures: Array<string> = []
    const run = async (listener: string, target: string, cases: ReadonlyArray<readonly [string, string, Expect]>, skip = 0) => {
      for (const [name, bytes, want] of cases) {
        const got = await probe(target, bytes, want, skip)
        if (got !== "ok") failures.push(`${listener}: ${name}: ${got}`)
      }
    }
    await Promise.all([
      run("auth", S.auth, AUTH_CASES, 7),
      run("dict", S.dict, DICT_CASES),
      run("login relay", S.login, LOGIN_RELAY_CASES, 6),
      run("userdb relay", S.userdb, USERDB_RELAY_CASES, 2),
      (async () => {
        for (const [name, req, want] of HTTP_CASES) {
          const c = await RawConn.connect({ host: "127.0.0.1", port: httpPort })
          c.send(Buffer.from(req, "latin1"))
          await c.until(() => c.text().includes("\r\n"), 4000)
          if (!want.test(c.text())) failures.push(`http: ${name}: ${JSON.stringify(c.text().slice(0, 80))}`)
          c.close()
        }
        // 50 pipelined requests on one connection: 50 answers
        const c = await RawConn.connect({ host: "127.0.0.1", port: httpPort })
        c.send(Array.from({ length: 50 }, (_, i) => `GET /route?user=pipe${i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${HTTP_TOKEN}\r\n\r\n`).join(""))
        await c.until(() => (c.text().match(/HTTP\/1\.1 200/g) ?? []).length >= 50, 8000)
        if ((c.text().match(/HTTP\/1\.1 200/g) ?? []).length !== 50) failures.push("http: 50 pipelined requests")
        c.close()
      })(),
      (async () => {
        // relays with a broken upstream: hostile reply lines for `evil` users, one connection each
        await Promise.all(Array.from({ length: EVIL_REPLIES.length }, async (_, i) => {
          const r = await AuthLineClient.connect(S.login)
          await r.ready
          await Promise.race([r.login(`evil${i}`, USER_PASSWORDS[2]), new Promise((res) => setTimeout(res, 1500))])
          r.close()
          const u = await MasterLineClient.connect(S.userdb)
          await Promise.race([u.pass(`evil${i}`), new Promise((res) => setTimeout(res, 1500))])
          u.close()
        }))
      })()
    ])
    await new Promise((r) => setTimeout(r, 300))
    const summary = await stopGood(good)
    expect(failures).toEqual([])
    expectGoodServed(summary)
    expectHealthy(daemon, "after the named hostile cases")
  }, 120_000)

  it("seeded fast-check lines (mutated, generated, NUL/non-UTF-8, over-long) on every listener, with and without the handshake", async () => {
    const good = await startGoodClients()
    const N = 40 // connections per listener
    const PER = 50 // lines per connection
    const outcomes: Record<string, { closed: number; open: number; replies: number }> = {}
    const blast = async (listener: string, target: string | { host: string; port: number }, arb: Parameters<typeof Hostile.sampleLines>[0], prefix: (i: number) => string, seed: number) => {
      const lines = Hostile.sampleLines(arb, N * PER, seed)
      const o = (outcomes[listener] = { closed: 0, open: 0, replies: 0 })
      for (let batch = 0; batch < N; batch += 8) {
        await Promise.all(
          Array.from({ length: Math.min(8, N - batch) }, async (_, k) => {
            const i = batch + k
            const c = await RawConn.connect(target)
            c.send(Buffer.from(prefix(i) + lines.slice(i * PER, (i + 1) * PER).join("\n") + "\n", "latin1"))
            // until the daemon closes it, or it has been quiet for a while
            let seen = -1
            while (!c.closed && c.bytes().length !== seen) {
              seen = c.bytes().length
              await c.until(() => c.bytes().length !== seen, 600)
            }
            if (c.closed) o.closed++
            else o.open++
            if (c.lines().length > 0) o.replies++
            c.close()
          })
        )
      }
    }
    await Promise.all([
      blast("auth", S.auth, Hostile.authClientLine, (i) => (i % 2 === 0 ? HS : ""), 1),
      blast("dict", S.dict, Hostile.dictLine, (i) => (i % 2 === 0 ? HELLO : ""), 2),
      blast("login relay", S.login, Hostile.authClientLine, (i) => (i % 2 === 0 ? HS : ""), 3),
      blast("userdb relay", S.userdb, Hostile.authMasterLine, (i) => (i % 2 === 0 ? "VERSION\t1\t0\n" : ""), 4),
      blast("http", { host: "127.0.0.1", port: httpPort }, Hostile.dictLine, (i) => (i % 2 === 0 ? "GET /route?user=x HTTP/1.1\r\n" : ""), 5)
    ])
    const summary = await stopGood(good)
    console.log(`hostile fast-check lines: ${JSON.stringify(outcomes)}; good clients: ${JSON.stringify(summary.stats)}`)
    // most hostile batches hold a line the listener must refuse: those connections were closed
    for (const [listener, o] of Object.entries(outcomes)) {
      expect(o.closed + o.open, listener).toBe(N)
      expect(o.closed, `${listener}: connections closed by the daemon`).toBeGreaterThan(N / 4)
    }
    expectGoodServed(summary)
    expectHealthy(daemon, "after the fast-check lines")
  }, 150_000)

  it("the daemon still stops cleanly (exit 0) and removes its sockets", async () => {
    const code = await daemon.stop()
    expect(code).toBe(0)
    expectHealthy({ ...daemon, alive: () => true }, "after stop")
    const fs = await import("node:fs")
    for (const p of Object.values(S)) expect(fs.existsSync(p), p).toBe(false)
  }, 30_000)
})

type Good = Awaited<ReturnType<typeof startGoodClients>>

const stopGood = async (good: Good) => {
  const names = ["dict", "auth", "relay", "userdb", "http"] as const
  await Promise.all(names.map((n) => good[n].stop()))
  good.close()
  const stats = Object.fromEntries(
    names.map((n) => {
      const r = good[n].results
      return [n, { n: r.length, bad: r.filter((x) => !x.ok).length, p99: Math.round(percentile(r.map((x) => x.ms), 99)), max: Math.round(Math.max(0, ...r.map((x) => x.ms))) }]
    })
  )
  const bad = names.flatMap((n) => good[n].results.filter((x) => !x.ok).slice(0, 2).map((x) => `${n}: ${JSON.stringify(x.value).slice(0, 200)}`))
  return { stats, bad }
}

const expectGoodServed = (s: Awaited<ReturnType<typeof stopGood>>) => {
  expect(s.bad, "good clients: every answer right").toEqual([])
  for (const [n, st] of Object.entries(s.stats)) {
    expect(st.n, `${n}: good client made progress`).toBeGreaterThan(10)
    expect(st.max, `${n}: slowest good answer (ms)`).toBeLessThan(5000)
  }
}
