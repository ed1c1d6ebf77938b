// How `doveroute import` reads a 2.3 Director ring's output and `director_mail_servers` (the real
// ring's output is imported in packages/e2e/test/director-import-23.test.ts), `--dry-run` on a CSV
// import, `--from-director-config` with a host name, and host tags (HOST@TAG) kept as backend tags,
// through the real bundle (`npm run build`).
import { makeTempDir, runCli, type TempDir } from "@doveroute/testkit"
import * as dns from "node:dns"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseDirectorLine, parseMailServers } from "../src/commands/DirectorFormat.js"

describe("director output lines", () => {
  it("dump: add with vhosts and tag, with -a, remove; tab form", () => {
    expect(parseDirectorLine("doveadm director add 10.0.0.1 100", 1)).toEqual({ kind: "host", ip: "10.0.0.1", tag: "", vhosts: 100 })
    expect(parseDirectorLine("doveadm director add -a /run/dovecot/director-admin 10.0.0.2@big 7", 2)).toEqual({ kind: "host", ip: "10.0.0.2", tag: "big", vhosts: 7 })
    expect(parseDirectorLine("doveadm director add 2001:db8::5 0", 3)).toEqual({ kind: "host", ip: "2001:db8::5", tag: "", vhosts: 0 })
    expect(parseDirectorLine("doveadm director remove 10.0.0.3 ", 4)).toEqual({ kind: "removed", ip: "10.0.0.3" })
    expect(parseDirectorLine("command\tsocket-path\thost\tvhost_count", 1)).toBeUndefined()
    expect(parseDirectorLine("add\t/run/dovecot/director-admin\t10.0.0.2@big\t7", 2)).toEqual({ kind: "host", ip: "10.0.0.2", tag: "big", vhosts: 7 })
    expect(parseDirectorLine("remove\t/run/dovecot/director-admin\t10.0.0.3\t", 3)).toEqual({ kind: "removed", ip: "10.0.0.3" })
  })

  it("status: table (tag column empty or not) and tab form carry the up/down state", () => {
    expect(parseDirectorLine("mail server ip tag  vhosts state state changed       users           ", 1)).toBeUndefined()
    expect(parseDirectorLine("127.0.0.2           50     up    -                   1               ", 2)).toEqual({ kind: "status", ip: "127.0.0.2", tag: "", vhosts: 50, down: false })
    expect(parseDirectorLine("127.0.0.4      tagx 100    down  2026-12-06 06:12:50 0", 3)).toEqual({ kind: "status", ip: "127.0.0.4", tag: "tagx", vhosts: 100, down: true })
    expect(parseDirectorLine("mail server ip\ttag\tvhosts\tstate\tstate changed\tusers", 1)).toBeUndefined()
    expect(parseDirectorLine("127.0.0.10\t\t100\tdown\t2026-12-06 06:12:50\t0", 2)).toEqual({ kind: "status", ip: "127.0.0.10", tag: "", vhosts: 100, down: true })
  })

  it("map: table and tab rows, <unknown> hashes, a user name with a space", () => {
    expect(parseDirectorLine("user                  hash       mail server ip expire time        ", 1)).toBeUndefined()
    expect(parseDirectorLine("alice@example.org     1669653170 10.0.0.3      2026-12-06 06:27:50", 2)).toEqual({ kind: "user", user: "alice@example.org", hash: "1669653170", ip: "10.0.0.3" })
    expect(parseDirectorLine("<unknown>             2845841792 10.0.0.2       2026-12-06 06:27:50", 3)).toEqual({ kind: "unknown", hash: "2845841792", ip: "10.0.0.2" })
    expect(parseDirectorLine("john smith 12 10.0.0.2 2026-12-06 06:27:50", 4)).toEqual({ kind: "user", user: "john smith", hash: "12", ip: "10.0.0.2" })
    expect(parseDirectorLine("user\thash\tmail server ip\texpire time", 1)).toBeUndefined()
    expect(parseDirectorLine("bob\t2677887420\t10.0.0.4\t2026-12-06 06:27:50", 2)).toEqual({ kind: "user", user: "bob", hash: "2677887420", ip: "10.0.0.4" })
  })

  it("anything else is an error naming the line", () => {
    expect(() => parseDirectorLine("Error: user listing failed", 7)).toThrow(/line 7: not a line of "doveadm director dump", "status" or "map"/)
    expect(() => parseDirectorLine("doveadm director add imap1.example.org 100", 2)).toThrow(/line 2: "imap1.example.org" is not an IP address/)
    expect(() => parseDirectorLine("doveadm director add 10.0.0.1", 3)).toThrow(/without a vhost count/)
    expect(() => parseDirectorLine("bob 12 not-an-ip 2026-12-06 06:27:50", 4)).toThrow(/line 4: "not-an-ip" is not an IP address/)
  })
})

describe("director_mail_servers", () => {
  it("a value, a setting line, ranges (last octet) and tags", () => {
    expect(parseMailServers("10.0.0.1 10.0.0.5-10.0.0.7@big imap1.example.org\n")).toEqual([
      { host: "10.0.0.1", tag: "" }, { host: "10.0.0.5", tag: "big" }, { host: "10.0.0.6", tag: "big" }, { host: "10.0.0.7", tag: "big" },
      { host: "imap1.example.org", tag: "" }
    ])
    expect(parseMailServers("protocols = imap\ndirector_mail_servers = 10.0.0.1 10.0.0.2\nlisten = *\n")).toEqual([{ host: "10.0.0.1", tag: "" }, { host: "10.0.0.2", tag: "" }])
  })

  it("refuses what the Director refuses, and an empty list", () => {
    expect(() => parseMailServers("10.0.0.5-10.0.1.7")).toThrow(/too large/)
    expect(() => parseMailServers("10.0.0.9-10.0.0.7")).toThrow(/reversed/)
    expect(() => parseMailServers("bad_host!")).toThrow(/neither an IP, an IP range nor a host name/)
    expect(() => parseMailServers("\n")).toThrow(/empty/)
    expect(() => parseMailServers("protocols = imap\n")).toThrow(/no director_mail_servers setting/)
  })
})

describe("import --dry-run and --from-director-config through the CLI (SQLite)", () => {
  let tmp: TempDir
  let store: string
  beforeAll(async () => {
    tmp = makeTempDir({ prefix: "dvr-dimp-" })
    store = `sqlite:${tmp.join("s.db")}`
    const m = await runCli(["migrate", "--store", store])
    expect(m.code, m.stderr).toBe(0)
  })
  afterAll(async () => {
    await tmp?.cleanup()
  })

  it("--from-director-config: a host name with one address keeps its name, a host's @TAG becomes its backend's tag; --dry-run writes nothing", async () => {
    const addresses = [...new Set((await dns.promises.lookup("localhost", { all: true, verbatim: true })).map((a) => a.address))]
    const file = tmp.join("servers.txt")
    fs.writeFileSync(file, "director_mail_servers = 10.1.0.1-10.1.0.2 localhost@big\n")
    const dry = await runCli(["import", "--from-director-config", file, "--dry-run", "--store", store])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toContain("backend 10.1.0.1: would be added (hostip 10.1.0.1, up, weight 100)")
    expect(dry.stdout).toMatch(/backend \S+: would be added \(hostip [^,]+, up, weight 100, tag big\)/)
    expect(dry.stderr).not.toContain("not carried over")
    const none = await runCli(["backend", "list", "--json", "--store", store])
    expect(JSON.parse(none.stdout)).toEqual([])
    const r = await runCli(["import", "--from-director-config", file, "--json", "--store", store])
    expect(r.code, r.stderr).toBe(0)
    const names = JSON.parse(r.stdout).backends.map((b: { hostname: string; hostip: string }) => `${b.hostname}=${b.hostip}`)
    const local = addresses.length === 1 ? [`localhost=${addresses[0]}`] : addresses.map((a) => `${a}=${a}`)
    expect(names).toEqual(["10.1.0.1=10.1.0.1", "10.1.0.2=10.1.0.2", ...local])
    const list = JSON.parse((await runCli(["backend", "list", "--json", "--store", store])).stdout) as Array<{ hostname: string; hostip: string; tag: string | null }>
    expect(list.map((b) => `${b.hostname}=${b.hostip}:${b.tag}`)).toEqual(["10.1.0.1=10.1.0.1:null", "10.1.0.2=10.1.0.2:null", ...local.map((l) => `${l}:big`)])
    const again = await runCli(["import", "--from-director-config", file, "--json", "--store", store])
    expect(JSON.parse(again.stdout).backends.every((b: { action: string }) => b.action === "unchanged")).toBe(true)
  })

  it("--from-director: HOST@TAG of the dump and the status tag column become backend tags; a changed tag is an update (dry run first)", async () => {
    const ring = tmp.join("tagged-ring.txt")
    fs.writeFileSync(ring, [
      "mail server ip tag   vhosts state state changed       users",
      "10.6.0.1       pool1 100    up    -                   0",
      "10.6.0.2             50     up    -                   0",
      "doveadm director add 10.6.0.1@pool1 100",
      "doveadm director add 10.6.0.2 50",
      "doveadm director add 10.6.0.3@pool.2 20",
      ""
    ].join("\n"))
    const r = await runCli(["import", "--from-director", ring, "--json", "--store", store])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).backends.map((b: { hostname: string; tag: string | null }) => [b.hostname, b.tag])).toEqual([
      ["10.6.0.1", "pool1"], ["10.6.0.2", null], ["10.6.0.3", "pool.2"]
    ])
    const tagOf = async (h: string) =>
      (JSON.parse((await runCli(["backend", "list", "--json", "--store", store])).stdout) as Array<{ hostname: string; tag: string | null }>).find((b) => b.hostname === h)?.tag
    expect(await tagOf("10.6.0.1")).toBe("pool1")
    expect(await tagOf("10.6.0.3")).toBe("pool.2")
    // the host re-added to the ring under another tag (the Director cannot re-tag a host in place)
    fs.writeFileSync(ring, "doveadm director add 10.6.0.1@pool9 100\ndoveadm director add 10.6.0.3 20\n")
    const dry = await runCli(["import", "--from-director", ring, "--dry-run", "--store", store])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toMatch(/backend 10\.6\.0\.1 \(id \d+\): tag pool1 -> pool9 \(would be set\)/)
    expect(dry.stdout).toMatch(/backend 10\.6\.0\.3 \(id \d+\): tag pool\.2 -> none \(would be set\)/)
    expect(await tagOf("10.6.0.1")).toBe("pool1")
    const real = await runCli(["import", "--from-director", ring, "--store", store])
    expect(real.code, real.stderr).toBe(0)
    expect(await tagOf("10.6.0.1")).toBe("pool9")
    expect(await tagOf("10.6.0.3")).toBe(null)
  })

  it("a Director tag doveroute cannot store is refused before anything is written", async () => {
    const file = tmp.join("bad-tag.txt")
    fs.writeFileSync(file, "10.7.0.1 10.7.0.2@-dash\n")
    const r = await runCli(["import", "--from-director-config", file, "--store", store])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`tag "-dash" of host 10.7.0.2: a doveroute tag is 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit (nothing was written)`)
    const list = JSON.parse((await runCli(["backend", "list", "--json", "--store", store])).stdout) as Array<{ hostname: string }>
    expect(list.some((b) => b.hostname.startsWith("10.7."))).toBe(false)
  })

  it("a CSV import with --dry-run counts what it would insert, names a backend by hostip, and writes nothing", async () => {
    const add = await runCli(["backend", "add", "named.example", "--hostip", "10.3.0.9", "--store", store])
    expect(add.code, add.stderr).toBe(0)
    const csv = tmp.join("u.csv")
    fs.writeFileSync(csv, "user,backend\nu1,10.1.0.1\nu2,10.3.0.9\nu3,nowhere\n")
    const dry = await runCli(["import", csv, "--dry-run", "--store", store])
    expect(dry.code).toBe(3)
    expect(dry.stdout).toContain("3 rows: 2 would be inserted, 0 unchanged, 0 conflicts, 1 errors (dry run: nothing written)")
    const rows = await runCli(["user", "list", "--json", "--store", store])
    expect(JSON.parse(rows.stdout)).toHaveLength(0)
    const real = await runCli(["import", csv, "--json", "--store", store])
    expect(JSON.parse(real.stdout)).toMatchObject({ total: 3, inserted: 2, errorCount: 1, dryRun: false })
    const u2 = await runCli(["user", "show", "u2", "--json", "--store", store])
    expect(JSON.parse(u2.stdout).backend.hostname).toBe("named.example")
  })

  it("--from-director on a file without director output is an error", async () => {
    const file = tmp.join("empty.txt")
    fs.writeFileSync(file, "\n# nothing\n")
    const r = await runCli(["import", "--from-director", file, "--store", store])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`${file} holds no "doveadm director status", "dump" or "map" output`)
  })

  it("an unknown host name is an error, nothing added", async () => {
    const file = tmp.join("bad-servers.txt")
    fs.writeFileSync(file, "10.2.0.1 no-such-host.invalid\n")
    const r = await runCli(["import", "--from-director-config", file, "--store", store])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain("director_mail_servers: cannot resolve no-such-host.invalid")
    const list = await runCli(["backend", "list", "--json", "--store", store])
    expect(JSON.parse(list.stdout).some((b: { hostname: string }) => b.hostname === "10.2.0.1")).toBe(false)
  })
})
