// Issue 11 — secrets from files, and the files the daemon creates, against the daemon as a child
// process and real unprivileged users:
// - the SQLite store the daemon creates (file, -wal, -shm, and the directories it makes) is
//   0600/0700 under umask 0022 and 0000 (0640/0750 with store_group); nobody cannot read it; an
//   existing store keeps its mode (and a world-readable one is warned about);
// - every secret from a file or a systemd credential ($CREDENTIALS_DIRECTORY): the MariaDB
//   password only in a credential, the master password in auth.password_file (--password-file),
//   the HTTP token in http.token_file; /proc/<pid>/cmdline shows none; a secret file other users
//   can read stops the start naming the file, never its content;
// - secrets given on argv: warned about, and gone from /proc/<pid>/cmdline once the daemon runs.
import { CLI_BIN, freePort, freshPostgres, makeTempDir, runCli, runCommand, startDaemon, type RunningDaemon, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { AuthLineClient, DB_PASSWORD, expectNoSecrets, MASTER_PASSWORD } from "./reliability-support.js"
import { DictClient } from "./store-support.js"

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
})

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8)

/** `cat FILE` as the real user `user`: "ok" or the error text. */
const readAs = async (user: string, file: string): Promise<string> => {
  const r = await runCommand("runuser", ["-u", user, "--", "cat", file], { timeoutMs: 15_000 })
  return r.code === 0 ? "ok" : r.stderr.trim()
}

/** A temp dir every user can traverse (0755), so only our modes decide who reads the store. */
const openTmp = (): TempDir => {
  const tmp = makeTempDir()
  fs.chmodSync(tmp.path, 0o755)
  cleanups.push(() => tmp.cleanup())
  return tmp
}

/** Start `serve` with the process umask set to `umask` (the child inherits it at spawn). */
const serveWithUmask = async (umask: number, o: Parameters<typeof startDaemon>[0]): Promise<RunningDaemon> => {
  const old = process.umask(umask)
  let p: Promise<RunningDaemon>
  try {
    p = startDaemon(o) // spawns synchronously
  } finally {
    process.umask(old)
  }
  const d = await p
  cleanups.push(() => d.stop())
  return d
}

/** The NUL-separated argv of a running process, as one string. */
const cmdline = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ")

describe("files the daemon creates: the SQLite store is private whatever the umask", () => {
  it.each(["0022", "0000"])("umask %s: new directories 0700, the store, -wal and -shm 0600; nobody reads any of them", async (mask) => {
    const umask = parseInt(mask, 8)
    const tmp = openTmp()
    const db = tmp.join("state", "sub", "routes.db")
    const sock = tmp.join("dict.sock")
    const d = await serveWithUmask(umask, { args: ["--store", `sqlite:${db}`, "--dict-socket", sock], waitFor: [sock] })
    // a lookup writes, so the WAL files exist while it runs
    fs.chmodSync(tmp.path, 0o755)
    const dict = await DictClient.connect(sock)
    await dict.lookup("alice")
    dict.close()
    expect(fs.existsSync(`${db}-wal`)).toBe(true)
    expect(fs.existsSync(`${db}-shm`)).toBe(true)
    expect(mode(tmp.join("state"))).toBe("700")
    expect(mode(tmp.join("state", "sub"))).toBe("700")
    for (const f of [db, `${db}-wal`, `${db}-shm`]) expect(mode(f), f).toBe("600")
    // make the directories traversable to show that the files' own modes keep nobody out too
    fs.chmodSync(tmp.join("state"), 0o755)
    fs.chmodSync(tmp.join("state", "sub"), 0o755)
    for (const f of [db, `${db}-wal`, `${db}-shm`]) expect(await readAs("nobody", f), f).toMatch(/Permission denied/)
    fs.chmodSync(tmp.join("state"), 0o700)
    expect(await readAs("nobody", db)).toMatch(/Permission denied/)
    expect(await d.stop()).toBe(0)
  }, 60_000)

  it("an admin command creating the store under umask 0000 makes it 0600 too", async () => {
    const tmp = openTmp()
    const db = tmp.join("admin", "routes.db")
    const old = process.umask(0)
    let r: Awaited<ReturnType<typeof runCli>>
    try {
      const p = runCli(["backend", "add", "127.0.0.2", "--store", `sqlite:${db}`])
      process.umask(old)
      r = await p
    } finally {
      process.umask(old)
    }
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(mode(tmp.join("admin"))).toBe("700")
    expect(mode(db)).toBe("600")
  }, 60_000)

  it("store_group: 0750 directories and 0640 files in that group; its members read, others do not", async () => {
    const tmp = openTmp()
    const db = tmp.join("grp", "routes.db")
    const sock = tmp.join("dict.sock")
    const gid = Number((await runCommand("getent", ["group", "dovecot"])).stdout.split(":")[2])
    const d = await serveWithUmask(0o000, {
      args: ["--store", `sqlite:${db}`, "--dict-socket", sock],
      env: { DOVEROUTE_STORE_GROUP: "dovecot" },
      waitFor: [sock]
    })
    const dict = await DictClient.connect(sock)
    await dict.lookup("alice")
    dict.close()
    expect(mode(tmp.join("grp"))).toBe("750")
    for (const f of [db, `${db}-wal`, `${db}-shm`]) {
      expect(mode(f), f).toBe("640")
      expect(fs.statSync(f).gid, f).toBe(gid)
    }
    expect(await readAs("dovecot", db)).toBe("ok")
    expect(await readAs("nobody", db)).toMatch(/Permission denied/)
    expect(await d.stop()).toBe(0)
  }, 60_000)

  it("an existing store keeps its mode (never loosened, never changed); a world-readable one is warned about", async () => {
    const tmp = openTmp()
    const tight = tmp.join("tight.db")
    fs.writeFileSync(tight, "")
    fs.chmodSync(tight, 0o640) // the admin's choice: kept, not made 0600
    const loose = tmp.join("loose.db")
    fs.writeFileSync(loose, "")
    fs.chmodSync(loose, 0o644)
    for (const [db, want] of [[tight, "640"], [loose, "644"]] as const) {
      const sock = tmp.join(`${path.basename(db)}.sock`)
      const d = await serveWithUmask(0o000, { args: ["--store", `sqlite:${db}`, "--dict-socket", sock], waitFor: [sock] })
      expect(mode(db)).toBe(want)
      if (want === "644") expect(d.logs()).toMatch(/level=WARN.*readable by every local user/)
      else expect(d.logs()).not.toMatch(/readable by every local user/)
      expect(await d.stop()).toBe(0)
    }
  }, 60_000)
})

describe("secrets from files and systemd credentials; none in /proc/<pid>/cmdline", () => {
  const MYSQL_USER = `dvr_sec_${process.pid}`
  const MYSQL_DB = `dvr_sec_db_${process.pid}`
  const mysql = (sql: string) => runCommand("mariadb", ["-h", "127.0.0.1", "-u", "root", "-e", sql], { timeoutMs: 30_000 })

  beforeAll(async () => {
    // a MariaDB account that only the right password opens
    for (const sql of [
      `DROP USER IF EXISTS '${MYSQL_USER}'@'%'`,
      `DROP DATABASE IF EXISTS ${MYSQL_DB}`,
      `CREATE DATABASE ${MYSQL_DB}`,
      `CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${DB_PASSWORD}'`,
      `GRANT ALL ON ${MYSQL_DB}.* TO '${MYSQL_USER}'@'%'`
    ]) {
      const r = await mysql(sql)
      expect(r.code, sql + r.stderr).toBe(0)
    }
  }, 60_000)

  afterAll(async () => {
    await mysql(`DROP USER IF EXISTS '${MYSQL_USER}'@'%'`)
    await mysql(`DROP DATABASE IF EXISTS ${MYSQL_DB}`)
  })

  it("store password from $CREDENTIALS_DIRECTORY, master password and HTTP token from files: it works and ps shows none", async () => {
    const tmp = openTmp()
    const creds = tmp.join("credentials")
    fs.mkdirSync(creds, { mode: 0o700 })
    fs.writeFileSync(path.join(creds, "store_password"), DB_PASSWORD + "\n", { mode: 0o400 })
    const pwFile = tmp.join("master.pw")
    fs.writeFileSync(pwFile, MASTER_PASSWORD + "\n", { mode: 0o600 })
    const tokenFile = tmp.join("http.token")
    fs.writeFileSync(tokenFile, "tok-Zr41-secret\n", { mode: 0o600 })
    const auth = tmp.join("auth.sock")
    const port = await freePort()
    const d = await startDaemon({
      args: [
        "--store", `mysql://${MYSQL_USER}@127.0.0.1:3306/${MYSQL_DB}`,
        "--auth-socket", auth, "--password-file", pwFile,
        "--http-listen", `127.0.0.1:${port}`, "--http-token-file", tokenFile
      ],
      env: { CREDENTIALS_DIRECTORY: creds, DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" },
      waitFor: [auth],
      waitForTcp: [{ host: "127.0.0.1", port }]
    })
    cleanups.push(() => d.stop())
    await mysql(`INSERT INTO ${MYSQL_DB}.backends (hostname, hostip, state) VALUES ('127.0.0.2', NULL, 0)`)
    // the master password from the file is the one checked
    const a = await AuthLineClient.connect(auth)
    await a.ready
    expect(await a.login("alice", MASTER_PASSWORD)).toMatch(/^OK\t1\tuser=alice\tproxy\thost=127\.0\.0\.2\tpass=/)
    expect(await a.login("alice", "not-it")).toBe("FAIL\t2\tuser=alice")
    a.close()
    // the token from the file is the one required
    const ok = await fetch(`http://127.0.0.1:${port}/route?user=alice`, { headers: { authorization: "Bearer tok-Zr41-secret" } })
    expect(ok.status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${port}/route?user=alice`)).status).toBe(401)
    const argv = cmdline(d.pid)
    expect(argv).toContain("serve")
    for (const s of [DB_PASSWORD, MASTER_PASSWORD, "tok-Zr41-secret"]) expect(argv).not.toContain(s)
    expect(d.logs()).not.toMatch(/secret was given on the command line/)
    expectNoSecrets(d.logs(), "daemon with secrets from files")
    expect(d.logs()).not.toContain("tok-Zr41-secret")
    expect(await d.stop()).toBe(0)
  }, 90_000)

  it("the wrong store password in the credential: the daemon does not start (the credential is what it used)", async () => {
    const tmp = openTmp()
    const creds = tmp.join("credentials")
    fs.mkdirSync(creds, { mode: 0o700 })
    fs.writeFileSync(path.join(creds, "store_password"), "not-the-password\n", { mode: 0o400 })
    const r = await runCli(["lookup", "alice", "--store", `mysql://${MYSQL_USER}@127.0.0.1:3306/${MYSQL_DB}`], {
      env: { CREDENTIALS_DIRECTORY: creds, DOVEROUTE_CONNECT_TIMEOUT: "3 seconds" }
    })
    expect(r.code).not.toBe(0)
    expect(r.stdout + r.stderr).toMatch(/denied|MySQL|connect/i)
    expect(r.stdout + r.stderr).not.toContain("not-the-password")
  }, 60_000)

  it("a secret file other users can read stops the start, naming the file and not its content; group-readable is a warning", async () => {
    const tmp = openTmp()
    const pwFile = tmp.join("master.pw")
    fs.writeFileSync(pwFile, MASTER_PASSWORD)
    fs.chmodSync(pwFile, 0o644)
    const r = await runCli(["serve", "--auth-socket", tmp.join("a.sock"), "--password-file", pwFile, "--store", `sqlite:${tmp.join("r.db")}`])
    expect(r.code).not.toBe(0)
    expect(r.stdout + r.stderr).toContain(pwFile)
    expect(r.stdout + r.stderr).toMatch(/every local user \(mode 0644\)/)
    expectNoSecrets(r.stdout + r.stderr, "serve with a 0644 password file")
    expect(fs.existsSync(tmp.join("a.sock"))).toBe(false)
    // root:dovecot 0640: accepted, with a warning naming the group
    fs.chownSync(pwFile, 0, Number((await runCommand("getent", ["group", "dovecot"])).stdout.split(":")[2]))
    fs.chmodSync(pwFile, 0o640)
    const sock = tmp.join("b.sock")
    const d = await startDaemon({ args: ["--auth-socket", sock, "--password-file", pwFile, "--store", `sqlite:${tmp.join("r.db")}`], waitFor: [sock] })
    cleanups.push(() => d.stop())
    expect(d.logs()).toMatch(/level=WARN.*readable by group dovecot \(mode 0640\)/)
    expectNoSecrets(d.logs(), "serve with a 0640 password file")
    expect(await d.stop()).toBe(0)
  }, 60_000)

  it("secrets on argv: a warning, and /proc/<pid>/cmdline no longer shows them once the daemon runs", async () => {
    const tmp = openTmp()
    const sock = tmp.join("a.sock")
    const d = await startDaemon({
      args: [
        "--store", `mysql://${MYSQL_USER}:${DB_PASSWORD}@127.0.0.1:3306/${MYSQL_DB}`,
        "--auth-socket", sock, "--password", MASTER_PASSWORD
      ],
      waitFor: [sock]
    })
    cleanups.push(() => d.stop())
    const argv = cmdline(d.pid)
    expect(argv).toContain(CLI_BIN)
    expect(argv).toMatch(/--store mysql:\/\/dvr_sec_\d+:xxx@127\.0\.0\.1:3306\//)
    expect(argv).toMatch(/--password xxx/)
    expect(argv).not.toContain(DB_PASSWORD)
    expect(argv).not.toContain(MASTER_PASSWORD)
    expect(d.logs()).toMatch(/level=WARN.*secret was given on the command line.*flags=--password,--store/)
    expectNoSecrets(d.logs(), "serve with secrets on argv")
    expect(await d.stop()).toBe(0)
  }, 60_000)

  it("a store URL with ?password=…: neither the ready line nor /proc/<pid>/cmdline carries it", async () => {
    const tmp = openTmp()
    const pg = await freshPostgres()
    cleanups.push(() => pg.drop())
    const sock = tmp.join("d.sock")
    const d = await startDaemon({ args: ["--store", `${pg.url}?password=QueryPW`, "--dict-socket", sock], waitFor: [sock] })
    cleanups.push(() => d.stop())
    // the socket can appear before the ready line is written
    for (let i = 0; i < 100 && !/doveroute ready/.test(d.logs()); i++) await new Promise((r) => setTimeout(r, 50))
    const argv = cmdline(d.pid)
    expect(argv).toContain(`--store ${pg.url}?password=xxx`)
    expect(argv).not.toContain("QueryPW")
    expect(d.logs()).toMatch(/doveroute ready.*store=.*password=xxx/)
    expect(d.logs()).toMatch(/level=WARN.*secret was given on the command line.*flags=--store/)
    expect(d.logs()).not.toContain("QueryPW")
    expect(await d.stop()).toBe(0)
  }, 60_000)
})
