// Testkit pieces that need no Dovecot: protocol clients against scripted fake servers, log
// parsing, ports, temp dirs, databases, the CLI runner.
import { describe, it, expect } from "vitest"
import { existsSync, statSync } from "node:fs"
import net from "node:net"
import {
  ImapClient,
  Pop3Client,
  SmtpClient,
  checkSocketPath,
  freePort,
  freshMysql,
  freshPostgres,
  freshSqlite,
  lmtpDeliver,
  makeTempDir,
  parseLogins,
  runCli,
  runCommand,
  servedBy,
  tcpAccepts,
  waitForPath,
  waitForTcp
} from "../src/index.js"

/** A one-connection fake server: `script(line)` returns the reply text for each client line. */
async function fakeServer(greeting: string, script: (line: string) => string | undefined): Promise<{ port: number; lines: Array<string>; close: () => void }> {
  const lines: Array<string> = []
  const server = net.createServer((sock) => {
    sock.setEncoding("latin1")
    sock.write(greeting)
    let buf = ""
    sock.on("data", (d: string) => {
      buf += d
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 2)
        lines.push(line)
        const reply = script(line)
        if (reply !== undefined) sock.write(reply)
      }
    })
    sock.on("error", () => {})
  })
  const port = await freePort()
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r))
  return { port, lines, close: () => server.close() }
}

describe("protocol clients", () => {
  it("IMAP: greeting, LOGIN quoting, literals, SASL-IR and continuation", async () => {
    const s = await fakeServer("* OK fake ready\r\n", (l) => {
      const [tag, cmd] = l.split(" ")
      if (cmd === "LOGIN") return `${tag} OK Logged in\r\n`
      if (cmd === "AUTHENTICATE" && l.split(" ").length === 4) return `${tag} OK sasl-ir\r\n`
      if (cmd === "AUTHENTICATE") return "+ \r\n"
      if (/^[A-Za-z0-9+/=]+$/.test(l)) return "a3 OK continued\r\n"
      if (cmd === "FETCH") return `* 1 FETCH (BODY[] {8}\r\nab\r\ncd\r\n)\r\n${tag} OK done\r\n`
      if (cmd === "LOGOUT") return `* BYE\r\n${tag} OK bye\r\n`
      return `${tag} BAD what\r\n`
    })
    const c = await ImapClient.connect("127.0.0.1", s.port)
    expect(c.greeting).toBe("* OK fake ready")
    expect((await c.login('al"ice', "p\\w")).status).toBe("OK")
    expect(s.lines[0]).toBe('a1 LOGIN "al\\"ice" "p\\\\w"')
    expect((await c.authenticatePlain("alice", "secret")).text).toBe("sasl-ir")
    expect(s.lines[1]).toBe(`a2 AUTHENTICATE PLAIN ${Buffer.from("\0alice\0secret").toString("base64")}`)
    expect((await c.authenticatePlain("alice", "secret", { saslIr: false })).text).toBe("continued")
    const f = await c.command("FETCH 1 BODY[]")
    expect(f.status).toBe("OK")
    expect(f.untagged[0]).toBe("* 1 FETCH (BODY[] {8}\r\nab\r\ncd\r\n)")
    expect((await c.command("NOOP")).status).toBe("BAD")
    expect((await c.logout()).status).toBe("OK")
    s.close()
  })

  it("IMAP: a missing reply times out with the transcript", async () => {
    const s = await fakeServer("* OK x\r\n", () => undefined)
    const c = await ImapClient.connect("127.0.0.1", s.port, 200)
    await expect(c.login("a", "b")).rejects.toThrow(/no line within 200 ms[\s\S]*C: a1 LOGIN/)
    c.close()
    s.close()
  })

  it("POP3: USER/PASS, STAT, QUIT", async () => {
    const s = await fakeServer("+OK ready\r\n", (l) => {
      if (l.startsWith("USER")) return "+OK\r\n"
      if (l === "PASS secret") return "+OK Logged in.\r\n"
      if (l.startsWith("PASS")) return "-ERR [AUTH] Authentication failed.\r\n"
      if (l === "STAT") return "+OK 2 320\r\n"
      if (l === "QUIT") return "+OK bye\r\n"
      return "-ERR\r\n"
    })
    const c = await Pop3Client.connect("127.0.0.1", s.port)
    expect((await c.login("alice", "wrong")).ok).toBe(false)
    expect((await c.login("alice", "secret")).ok).toBe(true)
    const st = await c.stat()
    expect([st.count, st.size]).toEqual([2, 320])
    expect((await c.quit()).ok).toBe(true)
    s.close()
  })

  it("LMTP: LHLO multi-line, RCPT codes, DATA dot-stuffing and per-recipient replies", async () => {
    let inData = false
    const body: Array<string> = []
    const s = await fakeServer("220 fake LMTP\r\n", (l) => {
      if (inData) {
        if (l === ".") { inData = false; return "250 2.0.0 <a> Saved\r\n450 4.2.0 <b> later\r\n" }
        body.push(l)
        return undefined
      }
      if (l.startsWith("LHLO")) return "250-fake\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
      if (l.startsWith("MAIL")) return "250 2.1.0 OK\r\n"
      if (l === "RCPT TO:<nobody>") return "550 5.1.1 unknown\r\n"
      if (l.startsWith("RCPT")) return "250 2.1.5 OK\r\n"
      if (l === "DATA") { inData = true; return "354 go\r\n" }
      if (l === "QUIT") return "221 bye\r\n"
      return "500 what\r\n"
    })
    const d = await lmtpDeliver({ host: "127.0.0.1", port: s.port }, { from: "x@y", to: ["a", "nobody", "b"], message: "Subject: t\n\n.leading dot\n" })
    expect(d.lhlo).toBe(250)
    expect(d.rcpt).toEqual([250, 550, 250])
    expect(d.data).toBe(354)
    expect(d.delivered).toEqual([250, 450])
    expect(body).toContain("..leading dot")
    s.close()
  })

  it("SMTP: EHLO and AUTH PLAIN with and without initial response", async () => {
    const ir = Buffer.from("\0alice\0secret").toString("base64")
    const s = await fakeServer("220 fake ESMTP\r\n", (l) => {
      if (l.startsWith("EHLO")) return "250-fake\r\n250 AUTH PLAIN LOGIN\r\n"
      if (l === `AUTH PLAIN ${ir}`) return "235 2.7.0 Authentication successful\r\n"
      if (l === "AUTH PLAIN") return "334 \r\n"
      if (l === ir) return "235 2.7.0 ok\r\n"
      if (l.startsWith("AUTH")) return "535 5.7.8 failed\r\n"
      if (l === "QUIT") return "221 bye\r\n"
      return "500\r\n"
    })
    const c = await SmtpClient.connect("127.0.0.1", s.port)
    expect((await c.ehlo()).lines).toContain("AUTH PLAIN LOGIN")
    expect((await c.authPlain("alice", "secret")).code).toBe(235)
    expect((await c.authPlain("alice", "secret", { initialResponse: false })).code).toBe(235)
    expect((await c.authPlain("alice", "wrong")).code).toBe(535)
    expect((await c.quit()).code).toBe(221)
    s.close()
  })
})

describe("backend log parsing", () => {
  const log23 = [
    "15:36:39.449676 imap-login: Info: Login: user=<carol>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, real_lip=127.0.0.2, mpid=24295, secured, session=<T2fyDmxhbsd/AAAB>",
    "15:36:40.000000 pop3-login: Info: Login: user=<carol>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.3, mpid=1, session=<x>",
    "15:36:41.000000 imap-login: Info: Disconnected: Connection closed (auth failed): user=<bob>, rip=127.0.0.1, lip=127.0.0.2"
  ].join("\n")
  const log24 = "Nov 29 15:37:51 imap-login: Info: Logged in: user=<dave>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, real_lip=127.0.0.3, mpid=26240, secured, session=<7u5>"

  it("reads Login (2.3) and Logged in (2.4) lines, preferring real_lip", () => {
    const r = parseLogins(log23)
    expect(r.map((x) => [x.service, x.user, x.backendIp])).toEqual([["imap", "carol", "127.0.0.2"], ["pop3", "carol", "127.0.0.3"]])
    expect(r[0]?.fields["session"]).toBe("T2fyDmxhbsd/AAAB")
    expect(servedBy(log23, "carol")).toBe("127.0.0.3")
    expect(servedBy(log23, "carol", "imap")).toBe("127.0.0.2")
    expect(servedBy(log23, "bob")).toBeUndefined()
    expect(servedBy(log24, "dave")).toBe("127.0.0.3")
  })
})

describe("ports, temp dirs, processes", () => {
  it("freePort never repeats and is free on every asked address", async () => {
    const a = await freePort("127.0.0.2", ["127.0.0.3"])
    const b = await freePort("127.0.0.2", ["127.0.0.3"])
    expect(a).not.toBe(b)
    expect(await tcpAccepts("127.0.0.2", a)).toBe(false)
    await expect(waitForTcp("127.0.0.1", a, { timeoutMs: 100 })).rejects.toThrow(/timed out after 100 ms/)
    const server = net.createServer().listen(a, "127.0.0.1")
    await waitForTcp("127.0.0.1", a, { timeoutMs: 2000 })
    server.close()
  })

  it("makeTempDir is short, 0755, and cleans up", async () => {
    const t = makeTempDir()
    expect(t.path).toMatch(/^\/tmp\/dvr-[A-Za-z0-9]{6}$/)
    expect(statSync(t.path).mode & 0o777).toBe(0o755)
    await expect(waitForPath(t.join("nope"), { timeoutMs: 50 })).rejects.toThrow(/timed out/)
    await t.cleanup()
    expect(existsSync(t.path)).toBe(false)
    expect(() => checkSocketPath("/" + "x".repeat(107))).toThrow(/108 bytes/)
  })

  it("runCommand reports exit codes and output", async () => {
    const r = await runCommand("sh", ["-c", "echo out; echo err >&2; exit 3"])
    expect(r).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" })
    await expect(runCommand("sleep", ["5"], { timeoutMs: 100 })).rejects.toThrow(/timed out/)
  })
})

describe("databases", () => {
  it("freshPostgres creates and drops a database", async () => {
    const db = await freshPostgres()
    expect(db.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:5432\/dvr_[0-9a-f]{10}$/)
    const q = `select count(*) from pg_database where datname = '${db.name}'`
    const has = async () => (await runCommand("psql", ["-X", "-tA", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", q])).stdout.trim()
    expect(await has()).toBe("1")
    await db.drop()
    expect(await has()).toBe("0")
  })

  it("freshMysql creates and drops a database", async () => {
    const db = await freshMysql()
    expect(db.url).toMatch(/^mysql:\/\/root@127\.0\.0\.1:3306\/dvr_[0-9a-f]{10}$/)
    const has = async () => (await runCommand("mariadb", ["--protocol=tcp", "-h127.0.0.1", "-uroot", "-N", "-e", `show databases like '${db.name}'`])).stdout.trim()
    expect(await has()).toBe(db.name)
    await db.drop()
    expect(await has()).toBe("")
  })

  it("freshSqlite names a file in the directory", async () => {
    const t = makeTempDir()
    const db = await freshSqlite(t.path)
    expect(db.url).toBe(`sqlite:${t.path}/${db.name}.db`)
    await db.drop()
    await t.cleanup()
  })
})

describe("doveroute CLI runner", () => {
  it("runs the CLI from the repository", async () => {
    const r = await runCli(["--help"], { timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/doveroute/)
  }, 60_000)
})
