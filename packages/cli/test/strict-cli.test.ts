// Issue 11, through the real `doveroute` binary (packages/cli/bin/doveroute.mjs; `npm run build`
// makes it fast): settings mistakes stop every command with one line, flag values are usage errors,
// read-only commands never create or migrate a store, and the fail2ban filter matches the auth
// failures a real daemon logs (checked with the real fail2ban-regex).
import { execFile, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const ROOT = path.resolve(__dirname, "../../..")
const BIN = path.join(ROOT, "packages/cli/bin/doveroute.mjs")
const FILTER = path.join(ROOT, "config/fail2ban/doveroute.conf")
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-cli-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** The environment without any DOVEROUTE_* variable of the caller, plus `extra`. */
const cleanEnv = (extra: Record<string, string> = {}) => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("DOVEROUTE_")) env[k] = v
  return { ...env, ...extra }
}

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp, env: cleanEnv(env), timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1
      resolve({ code, stdout, stderr })
    })
  })

const writeJson = (name: string, value: unknown) => {
  const file = path.join(tmp, name)
  fs.writeFileSync(file, JSON.stringify(value))
  return file
}

/** stderr as its non-empty lines. */
const errLines = (r: Run) => r.stderr.split("\n").filter((l) => l.trim().length > 0)

describe("doveroute config check", () => {
  it("the shipped config/doveroute.json: exit 0 and a short summary", async () => {
    const r = await run(["config", "check", "--config", path.join(ROOT, "config/doveroute.json")])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^config OK: .*config\/doveroute\.json\n/)
    expect(r.stdout).toMatch(/store sqlite:\/var\/lib\/doveroute\/doveroute\.db, strategy mapping/)
    expect(r.stdout).toMatch(/listeners: dict \/run\/doveroute\/dict\.sock \(0660\)/)
    const j = await run(["config", "check", "--json", "--config", path.join(ROOT, "config/doveroute.json")])
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, strategy: "mapping", listeners: ["dict /run/doveroute/dict.sock (0660)"] })
  }, 120_000)

  it("misspelled keys (down_polcy, helth, listne) and unknown DOVEROUTE_* variables: exit 1, one line naming the key", async () => {
    const cases: ReadonlyArray<readonly [unknown, RegExp]> = [
      [{ down_polcy: "reassign" }, /unknown key "down_polcy" in \S+; did you mean "down_policy"\?/],
      [{ helth: { enabled: true } }, /unknown key "helth" in \S+; did you mean "health"\?/],
      [{ http: { listne: "127.0.0.1:20180" } }, /unknown key "http.listne" in \S+; did you mean "http.listen"\? \(known keys of http: listen, mode, owner, group, token, token_file\)/],
      [{ dict: { socket: "/tmp/x.sock", mode: "777" } }, /dict\.mode: expected a socket mode \(four octal digits with a leading 0 and no execute bits, such as 0660 or 0666\), got "777"/]
    ]
    for (const [json, re] of cases) {
      const r = await run(["config", "check", "--config", writeJson("bad.json", json)])
      expect(r.code, JSON.stringify(json)).toBe(1)
      expect(errLines(r), JSON.stringify(json)).toHaveLength(1)
      expect(r.stderr, JSON.stringify(json)).toMatch(re)
      expect(r.stdout).toBe("")
    }
    const env = await run(["config", "check"], { DOVEROUTE_DOWN_POLCY: "keep" })
    expect(env.code).toBe(1)
    expect(errLines(env)).toEqual([expect.stringMatching(/unknown environment variable DOVEROUTE_DOWN_POLCY; did you mean DOVEROUTE_DOWN_POLICY\?/)])
  }, 120_000)

  it("an HTTP socket others may connect to, or TCP, without a token: config check says so, as serve would", async () => {
    const cases: ReadonlyArray<readonly [unknown, RegExp]> = [
      [{ http: { listen: path.join(tmp, "h.sock"), mode: "0666" } }, /http\.token: .*mode 0666 lets every local user connect; set a shared token/],
      [{ http: { listen: "127.0.0.1:20180" } }, /http\.token: .*a TCP http\.listen needs a shared token/],
      [{ http: { listen: "10.1.2.3:20180", token: "t0k-x" } }, /http\.listen: refusing to listen on 10\.1\.2\.3/]
    ]
    for (const [json, re] of cases) {
      const file = writeJson("http.json", json)
      fs.chmodSync(file, 0o600) // a token inline is fine in a file only its owner reads
      const r = await run(["config", "check", "--config", file])
      expect(r.code, JSON.stringify(json)).toBe(1)
      expect(errLines(r), JSON.stringify(json)).toHaveLength(1)
      expect(r.stderr, JSON.stringify(json)).toMatch(re)
    }
    const ok = await run(["config", "check", "--config", writeJson("http-ok.json", { http: { listen: path.join(tmp, "h.sock"), mode: "0660" } })])
    expect(ok.stderr).toBe("")
    expect(ok.code).toBe(0)
  }, 120_000)

  it("serve and an admin command stop on a misspelled key before touching anything", async () => {
    const store = path.join(tmp, "serve-store", "r.db")
    const sock = path.join(tmp, "d.sock")
    const cfg = writeJson("serve-bad.json", { store: `sqlite:${store}`, dict: { socket: sock }, down_polcy: "reassign" })
    const s = await run(["serve", "--config", cfg])
    expect(s.code).toBe(1)
    expect(errLines(s)).toEqual([expect.stringMatching(/^doveroute: error: invalid settings: unknown key "down_polcy"/)])
    const b = await run(["backend", "add", "b1", "--config", cfg])
    expect(b.code).toBe(1)
    expect(b.stderr).toMatch(/unknown key "down_polcy"/)
    expect(fs.existsSync(sock)).toBe(false)
    expect(fs.existsSync(path.dirname(store))).toBe(false)
  }, 120_000)
})

describe("flag values are usage errors (exit 2)", () => {
  const store = path.join(tmp, "flags", "r.db")
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, RegExp]> = [
    ["backend add --hostip not-an-ip", ["backend", "add", "b1", "--hostip", "not-an-ip"], /--hostip: expected an IPv4 or IPv6 address such as 10\.0\.0\.11 or fd00::11, got "not-an-ip"/],
    ["backend add --state 7", ["backend", "add", "b1", "--state", "7"], /--state: expected a backend state 0 \(up\), 1 \(down\), 2 \(drain\), 3 \(health-down\), got 7/],
    ["backend add --check-port 70000", ["backend", "add", "b1", "--check-port", "70000"], /--check-port: expected a port 1-65535, got 70000/],
    ["serve --socket-mode 777", ["serve", "--dict-socket", path.join(tmp, "f.sock"), "--socket-mode", "777"], /--socket-mode: expected a socket mode \(four octal digits with a leading 0 and no execute bits, such as 0660 or 0666\), got "777"/]
  ]
  for (const [what, args, re] of cases) {
    it(`${what}: exit 2, the flag and the accepted values named, nothing created`, async () => {
      const r = await run([...args, "--store", `sqlite:${store}`])
      expect(r.code).toBe(2)
      expect(errLines(r)).toEqual([expect.stringMatching(re)])
      expect(fs.existsSync(path.dirname(store))).toBe(false)
      expect(fs.existsSync(path.join(tmp, "f.sock"))).toBe(false)
    }, 120_000)
  }

  it("good values still work: backend add --hostip fd00::11 --state 2", async () => {
    const ok = path.join(tmp, "ok", "r.db")
    const r = await run(["backend", "add", "b1", "--hostip", "fd00::11", "--state", "2", "--json", "--store", `sqlite:${ok}`])
    expect(r.stderr).not.toMatch(/error/)
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ hostname: "b1", hostip: "fd00::11", state: 2 })
  }, 120_000)
})

describe("read-only commands never create or migrate a store", () => {
  it("status, lookup, backend list, user show, user list, shard show, dump on a mistyped store path: exit 1, no file or directory", async () => {
    const missing = path.join(tmp, "typo-dir", "doveroute.db")
    for (const args of [["status"], ["lookup", "alice"], ["backend", "list"], ["user", "show", "alice"], ["user", "list"], ["shard", "show", "alice"], ["dump"]]) {
      const r = await run([...args, "--store", `sqlite:${missing}`])
      expect(r.code, args.join(" ")).toBe(1)
      expect(errLines(r), args.join(" ")).toEqual([`doveroute: error: store unavailable: no SQLite database at ${missing} (check --store / the store setting; \`doveroute migrate\` creates a new one)`])
      expect(fs.existsSync(path.join(tmp, "typo-dir")), args.join(" ")).toBe(false)
    }
    // a mistyped file name in an existing directory: no file either
    const typoFile = path.join(tmp, "doveroute.bd")
    expect((await run(["status", "--store", `sqlite:${typoFile}`])).code).toBe(1)
    expect(fs.existsSync(typoFile)).toBe(false)
  }, 120_000)

  it("a database that needs migration is refused unchanged (\"run doveroute migrate\"); after migrate it is served", async () => {
    const db = path.join(tmp, "lua.db")
    const { default: Database } = await import("better-sqlite3")
    const d = new Database(db)
    d.exec("CREATE TABLE backends (id INT PRIMARY KEY, hostname TEXT, hostip TEXT, state INT); CREATE TABLE user_backend (backend_id INT, user TEXT);")
    d.exec("INSERT INTO backends VALUES (1, 'b1', '10.0.0.1', 0); INSERT INTO user_backend VALUES (1, 'alice')")
    d.close()
    const hash = () => crypto.createHash("sha256").update(fs.readFileSync(db)).digest("hex")
    const before = hash()
    for (const args of [["status"], ["lookup", "alice"], ["user", "show", "alice"]]) {
      const r = await run([...args, "--store", `sqlite:${db}`])
      expect(r.code, args.join(" ")).toBe(1)
      expect(errLines(r), args.join(" ")).toEqual(["doveroute: error: the database has no doveroute schema yet (no doveroute_migrations table); run doveroute migrate"])
    }
    expect(hash()).toBe(before)
    expect((await run(["migrate", "--store", `sqlite:${db}`])).code).toBe(0)
    const st = await run(["status", "--json", "--store", `sqlite:${db}`])
    expect(st.code).toBe(0)
    expect(JSON.parse(st.stdout)).toMatchObject({ totalUsers: 1 })
    const look = await run(["lookup", "alice", "--json", "--store", `sqlite:${db}`])
    expect(JSON.parse(look.stdout)).toMatchObject({ mapped: true, backend: { hostname: "b1" } })
  }, 120_000)
})

describe("fail2ban: config/fail2ban/doveroute.conf on a real daemon's log", () => {
  it("fail2ban-regex finds exactly the clients' rip of the auth failures; a rip typed into a user name is never taken", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-f2b-"))
    const store = `sqlite:${path.join(dir, "r.db")}`
    const sock = path.join(dir, "auth.sock")
    const log = path.join(dir, "doveroute.log")
    expect((await run(["backend", "add", "b1", "--hostip", "127.0.0.2", "--store", store])).code).toBe(0)
    const out = fs.openSync(log, "w")
    const daemon = spawn(process.execPath, [BIN, "serve", "--store", store, "--auth-socket", sock], {
      cwd: dir,
      env: cleanEnv({ DOVEROUTE_AUTH_PASSWORD: "master-secret", DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" }),
      stdio: ["ignore", "ignore", out]
    })
    try {
      const deadline = Date.now() + 30_000
      while (!fs.existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect(fs.existsSync(sock)).toBe(true)
      const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")
      const requests = [
        `AUTH\t1\tPLAIN\tservice=imap\tlip=192.0.2.1\trip=198.51.100.7\tresp=${b64("\0alice\0wrong")}`,
        `AUTH\t2\tPLAIN\tservice=imap\tlip=192.0.2.1\trip=198.51.100.7\tresp=${b64("\0alice\0wrong2")}`,
        `AUTH\t3\tPLAIN\tservice=pop3\tlip=192.0.2.1\trip=2001:db8::7\tresp=${b64("\0bob\0a\tb")}`,
        // the user name carries a fake rip; the real one is 198.51.100.8
        `AUTH\t4\tPLAIN\tservice=imap\tlip=192.0.2.1\trip=198.51.100.8\tresp=${b64("\0x rip=203.0.113.66 y\0wrong")}`,
        // no rip at all (doveadm auth test): nothing to ban, and the typed one is not taken
        `AUTH\t5\tPLAIN\tservice=imap\tresp=${b64("\0z rip=203.0.113.77 \0wrong")}`,
        // a user name with a control character: refused and logged with the client's rip
        `AUTH\t6\tPLAIN\tservice=imap\trip=198.51.100.9\tresp=${b64("\0ev\x1bil\0pw")}`,
        // a success is not a failure
        `AUTH\t7\tPLAIN\tservice=imap\tlip=192.0.2.1\trip=198.51.100.10\tresp=${b64("\0carol\0master-secret")}`
      ]
      const replies = await new Promise<Array<string>>((resolve, reject) => {
        const c = net.connect(sock)
        let buf = ""
        c.on("data", (d) => {
          buf += d.toString("utf8")
          const done = buf.split("\n").filter((l) => /^(OK|FAIL)\t/.test(l))
          if (done.length === requests.length) {
            c.end()
            resolve(done)
          }
        })
        c.on("error", reject)
        c.write("VERSION\t1\t2\nCPID\t4242\n" + requests.map((r) => r + "\n").join(""))
      })
      expect(replies.filter((l) => l.startsWith("FAIL"))).toHaveLength(6)
      expect(replies.some((l) => l.startsWith("OK\t7\tuser=carol\tproxy\thost=127.0.0.2"))).toBe(true)
      // wait until the six failures are in the log
      const until = Date.now() + 10_000
      while ((fs.readFileSync(log, "utf8").match(/message="auth failed"/g) ?? []).length < 6 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      daemon.kill("SIGTERM")
      await new Promise((r) => daemon.once("exit", r))
      fs.closeSync(out)
    }
    const text = fs.readFileSync(log, "utf8")
    expect(text.match(/message="auth failed"/g)).toHaveLength(6)
    expect(text).not.toContain("master-secret")
    const f2b = (args: ReadonlyArray<string>) =>
      new Promise<Run>((resolve) =>
        execFile("fail2ban-regex", [...args, log, FILTER], { timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), stdout, stderr })))
    const ips = await f2b(["-o", "ip"])
    expect(ips.stderr).toBe("")
    expect(ips.code).toBe(0)
    // one address per matched line (the daemon logs in completion order)
    expect(ips.stdout.split("\n").filter((l) => l.length > 0).sort()).toEqual(["198.51.100.7", "198.51.100.7", "198.51.100.8", "198.51.100.9", "2001:db8::7"])
    const summary = await f2b([])
    expect(summary.stdout).toMatch(/Lines: \d+ lines, 0 ignored, 5 matched, \d+ missed/)
    fs.rmSync(dir, { recursive: true, force: true })
  }, 90_000)
})
