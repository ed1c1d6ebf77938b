// Issue 2, end to end: a real Dovecot 2.3.19 proxy with `passdb driver=dict` pointing at the
// doveroute daemon (a real child process on a real SQLite file), two real Dovecot backends on
// 127.0.0.2 and 127.0.0.3, and real IMAP logins. Which backend served a login is read from the
// backend's own log (real_lip).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import Database from "better-sqlite3"
import { existsSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import {
  dictConfExt23, dictRoute23, freePort, imapLogin, makeTempDir, proxyConfig23, REPO_ROOT, runCli,
  startBackend23, startDaemon, startDovecot23, stopDovecots
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, TempDir } from "@doveroute/testkit"

const USERS = {
  alice: "secret", bob: "secret", carol: "secret", dave: "secret",
  ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`new${i}`, "pw" + i]))
}

describe("doveroute dict front-end behind a real Dovecot 2.3.19 proxy", () => {
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let imapPort: number
  let store: string
  let dbFile: string
  let sock: string

  // backend ids as created below
  const IP_OF: Record<number, string> = { 1: "127.0.0.2", 2: "127.0.0.3" }

  const rowOf = (user: string): Array<number> => {
    const db = new Database(dbFile, { readonly: true })
    try {
      return db.prepare(`SELECT backend_id FROM user_backend WHERE "user" = ?`).all(user).map((r) => (r as { backend_id: number }).backend_id)
    } finally {
      db.close()
    }
  }
  const exec = (sql: string) => {
    const db = new Database(dbFile)
    try {
      db.exec(sql)
    } finally {
      db.close()
    }
  }
  const login = async (user: string, pass = USERS[user as keyof typeof USERS] ?? "secret") => {
    const r = await imapLogin("127.0.0.1", imapPort, user, pass, { select: true })
    return r
  }

  beforeAll(async () => {
    tmp = makeTempDir()
    backend = await startBackend23(tmp.path, { users: USERS })
    dbFile = tmp.join("routes.db")
    store = `sqlite:${dbFile}`
    for (const args of [["backend1.test", "--hostip", "127.0.0.2"], ["127.0.0.3"]]) {
      const r = await runCli(["backend", "add", ...args, "--store", store, "--json"])
      expect(r.code, r.stderr).toBe(0)
    }
    sock = tmp.join("dict.sock")
    daemon = await startDaemon({
      // nopassword: the backend checks the password, so every login is proxied (proxy, never proxy_maybe)
      args: ["--store", store, "--dict-socket", sock, "--proxy-flag", "proxy", "--extra-field", "nopassword", "--extra-field", `port=${backend.imapPort}`],
      waitFor: [sock]
    })
    imapPort = await freePort()
    const dir = tmp.join("proxy")
    const dictConf = tmp.join("proxy-dict.conf.ext")
    proxy = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort }, dictRoute23({ dictConfPath: dictConf })),
      // the shipped example file, with only its socket path changed
      files: { [dictConf]: readFileSync(path.join(REPO_ROOT, "config/dovecot-2.3/doveroute-dict.conf.ext"), "utf8").replace("/run/doveroute/dict.sock", sock) },
      tcp: [{ host: "127.0.0.1", port: imapPort }]
    })
  })

  afterAll(async () => {
    const exits = await stopDovecots([proxy as Dovecot | undefined, (backend as Backend | undefined)?.dovecot])
    const code = daemon ? await daemon.stop() : 0
    await tmp?.cleanup()
    for (const e of exits) if (e !== undefined) expect(e.code).toBe(0)
    expect(code).toBe(0)
  })

  it("the dict socket is not world-writable", () => {
    expect(statSync(sock).mode & 0o777).toBe(0o660)
  })

  it("a new user gets exactly one row and lands on the backend the row names; a second login lands there again", async () => {
    expect(rowOf("alice")).toEqual([])
    const first = await login("alice")
    expect(first.login.status, first.transcript).toBe("OK")
    expect(first.select?.status, first.transcript).toBe("OK")
    const rows = rowOf("alice")
    expect(rows).toHaveLength(1)
    expect(backend.servedBy("alice", "imap")).toBe(IP_OF[rows[0]!])
    const second = await login("alice")
    expect(second.login.status, second.transcript).toBe("OK")
    expect(rowOf("alice")).toEqual(rows)
    expect(backend.logins("alice", "imap").map((l) => l.backendIp)).toEqual([IP_OF[rows[0]!], IP_OF[rows[0]!]])
  })

  it("a wrong password is refused by the backend (doveroute says nopassword; the backend checks)", async () => {
    const r = await login("bob", "wrong")
    expect(r.login.status, r.transcript).toBe("NO")
  })

  it("users on a backend with hostip and on one without are never mixed up (no hostip leak)", async () => {
    exec(`DELETE FROM user_backend WHERE "user" IN ('carol','dave');
          INSERT INTO user_backend (backend_id, "user") VALUES (1, 'carol'), (2, 'dave')`)
    // one auth-worker: the published script leaked backend 1's hostip into dave's reply here
    for (const user of ["carol", "dave", "carol", "dave", "dave"]) {
      const r = await login(user)
      expect(r.login.status, r.transcript).toBe("OK")
    }
    expect(backend.logins("carol", "imap").map((l) => l.backendIp)).toEqual(["127.0.0.2", "127.0.0.2"])
    expect(backend.logins("dave", "imap").map((l) => l.backendIp)).toEqual(["127.0.0.3", "127.0.0.3", "127.0.0.3"])
    const look = await runCli(["lookup", "dave", "--json", "--store", store])
    expect(JSON.parse(look.stdout).fields).toEqual({ proxy_maybe: "y", host: "127.0.0.3" })
  })

  it("after state=1 on a backend no new user lands there; users already on it keep it", async () => {
    exec(`UPDATE backends SET state = 1 WHERE id = 2`)
    try {
      for (let i = 0; i < 6; i++) {
        const user = `new${i}`
        const r = await login(user)
        expect(r.login.status, r.transcript).toBe("OK")
        expect(rowOf(user)).toEqual([1])
        expect(backend.servedBy(user, "imap")).toBe("127.0.0.2")
      }
      const kept = await login("dave")
      expect(kept.login.status, kept.transcript).toBe("OK")
      expect(backend.logins("dave", "imap").at(-1)?.backendIp).toBe("127.0.0.3")
    } finally {
      exec(`UPDATE backends SET state = 0 WHERE id = 2`)
    }
  })

  it("no backend with state=0: a new user gets a temporary failure and no row; old users still log in", async () => {
    exec(`UPDATE backends SET state = 1`)
    try {
      const r = await login("new7")
      expect(r.login.status, r.transcript).toBe("NO")
      expect(r.login.tagged).toMatch(/UNAVAILABLE|Temporary/i)
      expect(rowOf("new7")).toEqual([])
      const old = await login("carol")
      expect(old.login.status, old.transcript).toBe("OK")
    } finally {
      exec(`UPDATE backends SET state = 0`)
    }
    const later = await login("new7")
    expect(later.login.status, later.transcript).toBe("OK")
    expect(rowOf("new7")).toHaveLength(1)
  })

  it("store trouble: a first login gets temp_fail, a known user is routed from the routing table; served again once fixed", async () => {
    const aliceIp = IP_OF[rowOf("alice")[0]!]
    exec(`ALTER TABLE backends RENAME TO backends_away`)
    try {
      const r = await login("new8")
      expect(r.login.status, r.transcript).toBe("NO")
      expect(r.login.tagged).toMatch(/UNAVAILABLE|Temporary/i)
      // alice was mapped before the trouble: the table answers without the store, to her backend
      const known = await login("alice")
      expect(known.login.status, known.transcript).toBe("OK")
      expect(backend.logins("alice", "imap").at(-1)?.backendIp).toBe(aliceIp)
    } finally {
      exec(`ALTER TABLE backends_away RENAME TO backends`)
    }
    const ok = await login("new8")
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(rowOf("new8")).toHaveLength(1)
    expect(daemon.exited()).toBe(false)
    expect(daemon.logs()).toMatch(/temp_fail/)
  })

  it("one dict connection per lookup (no idle_msecs) works too", async () => {
    const port = await freePort()
    const dir = tmp.join("proxy-noidle")
    const conf = tmp.join("noidle-dict.conf.ext")
    const p2 = await startDovecot23({
      dir,
      config: proxyConfig23({ dir, imapPort: port, instanceName: "dvr-proxy2" }, dictRoute23({ dictConfPath: conf })),
      files: { [conf]: dictConfExt23({ socketPath: sock }) },
      tcp: [{ host: "127.0.0.1", port }]
    })
    try {
      for (let i = 0; i < 3; i++) {
        const r = await imapLogin("127.0.0.1", port, "alice", "secret")
        expect(r.login.status, r.transcript).toBe("OK")
      }
      const ip = IP_OF[rowOf("alice")[0]!]
      expect(backend.logins("alice", "imap").every((l) => l.backendIp === ip)).toBe(true)
    } finally {
      await stopDovecots([p2])
    }
  })

  it("doveadm auth test and auth lookup show the routing fields", async () => {
    const t = await proxy.doveadm(["auth", "test", "bob", "anything"])
    expect(t.code, t.stdout + t.stderr).toBe(0)
    const row = rowOf("bob")
    expect(row).toHaveLength(1)
    expect(t.stdout).toMatch(row[0] === 1 ? /host=backend1\.test/ : /host=127\.0\.0\.3/)
    const l = await proxy.doveadm(["auth", "lookup", "bob"])
    expect(l.code, l.stdout + l.stderr).toBe(0)
    expect(l.stdout).toMatch(/proxy/)
  })

  it("SIGTERM stops the daemon with exit code 0 and removes its socket", async () => {
    const extraSock = tmp.join("dict2.sock")
    const d = await startDaemon({ args: ["--store", store, "--dict-socket", extraSock], waitFor: [extraSock] })
    expect(await d.stop()).toBe(0)
    expect(existsSync(extraSock)).toBe(false)
  })
})
