// Issue 8 — permissions, against the daemon as a child process:
// - every socket (dict, auth, login relay, userdb relay, HTTP on a UNIX socket) is created 0660
//   root:root by default — not world-writable: another user (nobody) cannot even connect;
// - each listener gets the mode, owner and group configured for it (config file sections);
// - an unknown owner stops the start with a clear message and leaves no socket behind;
// - the HTTP endpoint binds to loopback or a UNIX socket only: 0.0.0.0, [::], the machine's own
//   address and host names are refused at start; on 127.0.0.1 it is not reachable from outside;
// - which commands each auth-protocol socket answers: hostile-input and limits tests
//   (REQUEST/CACHE-FLUSH/PASS on the auth-client socket and REQUEST/CACHE-FLUSH/CPID on the
//   userdb relay close the connection; nothing of them reaches Dovecot).
import { freePort, makeTempDir, runCli, runCommand, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import { afterEach, describe, expect, it } from "vitest"
import { type Daemon, expectHealthy, expectNoSecrets, FakeDovecot, MASTER_PASSWORD, startDaemon } from "./reliability-support.js"

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined)
})

const idOf = async (kind: "-u" | "-g", name: string) => Number((await runCommand("id", [kind, name])).stdout.trim())
const gidOf = async (group: string) => Number((await runCommand("getent", ["group", group])).stdout.split(":")[2])

/** Try to connect to a UNIX socket as another user: "ok" or the error code. */
const connectAs = async (user: string, path: string): Promise<string> => {
  const script = `const c=require("net").connect(${JSON.stringify(path)});c.on("connect",()=>{console.log("ok");process.exit(0)});c.on("error",(e)=>{console.log(e.code);process.exit(0)})`
  const [uid, gid] = [await idOf("-u", user), await idOf("-g", user)]
  const r = await runCommand("setpriv", ["--reuid", String(uid), "--regid", String(gid), "--clear-groups", process.execPath, "-e", script], { timeoutMs: 15_000 })
  return (r.stdout.trim() || r.stderr.trim()).split("\n")[0]!
}

const mode = (p: string) => fs.statSync(p).mode & 0o777

async function fakes(tmp: TempDir) {
  const login = await FakeDovecot.listen(tmp.join("fake-login.sock"), "login")
  const userdb = await FakeDovecot.listen(tmp.join("fake-userdb.sock"), "userdb")
  cleanups.push(() => login.close(), () => userdb.close())
}

const serve = async (o: Parameters<typeof startDaemon>[0]): Promise<Daemon> => {
  const d = await startDaemon(o)
  cleanups.push(() => d.stop())
  return d
}

describe("socket permissions (daemon child)", () => {
  it("defaults: every socket 0660 root:root, not world-writable; another user cannot connect", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    await fakes(tmp)
    const socks = {
      dict: tmp.join("dict.sock"),
      auth: tmp.join("auth.sock"),
      login: tmp.join("lr.sock"),
      userdb: tmp.join("ur.sock"),
      http: tmp.join("http.sock")
    }
    const d = await serve({
      args: [
        "--store", `sqlite:${tmp.join("r.db")}`,
        "--dict-socket", socks.dict,
        "--auth-socket", socks.auth,
        "--login-relay-socket", socks.login, "--dovecot-login-socket", tmp.join("fake-login.sock"),
        "--userdb-relay-socket", socks.userdb, "--dovecot-userdb-socket", tmp.join("fake-userdb.sock"),
        "--http-listen", socks.http
      ],
      env: { DOVEROUTE_AUTH_PASSWORD: MASTER_PASSWORD },
      waitFor: Object.values(socks)
    })
    for (const [name, p] of Object.entries(socks)) {
      const st = fs.statSync(p)
      expect(st.isSocket(), name).toBe(true)
      expect(mode(p).toString(8), `${name} mode`).toBe("660")
      expect(mode(p) & 0o002, `${name} world-writable`).toBe(0)
      expect([st.uid, st.gid], `${name} owner`).toEqual([0, 0])
      expect(await connectAs("nobody", p), `nobody connecting to ${name}`).toBe("EACCES")
    }
    expectHealthy(d, "default permissions")
  }, 60_000)

  it("each listener gets its configured mode, owner and group (config file)", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    await fakes(tmp)
    const cfg = {
      store: `sqlite:${tmp.join("r.db")}`,
      dict: { socket: tmp.join("dict.sock"), mode: "0640", owner: "nobody", group: "nogroup" },
      auth: { socket: tmp.join("auth.sock"), mode: "0666", group: "dovecot", password: MASTER_PASSWORD },
      login_relay: { socket: tmp.join("lr.sock"), mode: "0666", owner: "dovenull", upstream: tmp.join("fake-login.sock") },
      userdb_relay: { socket: tmp.join("ur.sock"), mode: "0600", owner: "dovecot", upstream: tmp.join("fake-userdb.sock") },
      http: { listen: tmp.join("http.sock"), mode: "0660", group: "dovecot" }
    }
    const file = tmp.join("doveroute.json")
    fs.writeFileSync(file, JSON.stringify(cfg), { mode: 0o600 })
    const d = await serve({ args: ["--config", file], waitFor: [cfg.dict.socket, cfg.auth.socket, cfg.login_relay.socket, cfg.userdb_relay.socket, cfg.http.listen] })
    const want: Record<string, [string, string, number, number]> = {
      [cfg.dict.socket]: ["dict", "640", await idOf("-u", "nobody"), await gidOf("nogroup")],
      [cfg.auth.socket]: ["auth", "666", 0, await gidOf("dovecot")],
      [cfg.login_relay.socket]: ["login relay", "666", await idOf("-u", "dovenull"), 0],
      [cfg.userdb_relay.socket]: ["userdb relay", "600", await idOf("-u", "dovecot"), 0],
      [cfg.http.listen]: ["http", "660", 0, await gidOf("dovecot")]
    }
    for (const [p, [name, m, uid, gid]] of Object.entries(want)) {
      const st = fs.statSync(p)
      expect([mode(p).toString(8), st.uid, st.gid], name).toEqual([m, uid, gid])
    }
    // what the modes mean: nobody may use the 0666 auth socket, not the 0600 userdb relay
    expect(await connectAs("nobody", cfg.auth.socket)).toBe("ok")
    expect(await connectAs("nobody", cfg.userdb_relay.socket)).toBe("EACCES")
    expect(await connectAs("dovecot", cfg.userdb_relay.socket)).toBe("ok")
    expectHealthy(d, "configured permissions")
    expectNoSecrets(fs.readFileSync(file, "utf8").replace(MASTER_PASSWORD, ""), "config file (sanity)")
  }, 60_000)

  it("an unknown owner stops the start with a clear message and leaves no socket", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    const file = tmp.join("doveroute.json")
    fs.writeFileSync(file, JSON.stringify({ store: `sqlite:${tmp.join("r.db")}`, dict: { socket: tmp.join("dict.sock"), owner: "no-such-user-xyz" } }))
    const r = await runCli(["serve", "--config", file])
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toMatch(/unknown user no-such-user-xyz/)
    expect(fs.existsSync(tmp.join("dict.sock"))).toBe(false)
  }, 60_000)
})

describe("HTTP endpoint on a UNIX socket others may connect to", () => {
  it("--socket-mode 0666 without a token is refused at start; with one, nobody without the token gets 401", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    const sock = tmp.join("h.sock")
    const db = tmp.join("r.db")
    const r = await runCli(["serve", "--store", `sqlite:${db}`, "--http-listen", sock, "--socket-mode", "0666"])
    expect(r.code, r.stdout + r.stderr).not.toBe(0)
    expect(r.stdout + r.stderr).toMatch(/mode 0666 lets every local user connect; set a shared token/)
    expect(fs.existsSync(sock)).toBe(false)
    const d = await serve({
      args: ["--store", `sqlite:${db}`, "--http-listen", sock, "--socket-mode", "0666"],
      env: { DOVEROUTE_HTTP_TOKEN: "tok-Hq73-e2e" },
      waitFor: [sock]
    })
    const curlAs = async (...extra: Array<string>) =>
      (await runCommand("runuser", ["-u", "nobody", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", ...extra,
        "--unix-socket", sock, "http://localhost/route?user=x"], { timeoutMs: 15_000 })).stdout.trim()
    expect(await curlAs()).toBe("401")
    // with the token the request passes the check and reaches routing (503: the store has no backend)
    expect(await curlAs("-H", "Authorization: Bearer tok-Hq73-e2e")).toBe("503")
    expect(d.logs()).not.toContain("tok-Hq73-e2e")
  }, 60_000)
})

describe.concurrent("HTTP endpoint: refused addresses", () => {
  it.each(["0.0.0.0", "[::]", "192.0.2.2", "localhost", "[fd00::2]"])("--http-listen %s:PORT is refused at start", async (host) => {
    const tmp = makeTempDir()
    try {
      const r = await runCli(["serve", "--store", `sqlite:${tmp.join("r.db")}`, "--http-listen", `${host}:${await freePort()}`])
      expect(r.code, r.stdout + r.stderr).not.toBe(0)
      expect(r.stdout + r.stderr).toMatch(/loopback|not an IP address/)
    } finally {
      await tmp.cleanup()
    }
  }, 60_000)
})

describe.concurrent("metrics endpoint: refused addresses", () => {
  it.each(["0.0.0.0", "[::]", "192.0.2.2", "[fd00::2]"])("metrics.listen %s:PORT is refused at start", async (host) => {
    const tmp = makeTempDir()
    try {
      const r = await runCli(["serve", "--store", `sqlite:${tmp.join("r.db")}`, "--dict-socket", tmp.join("d.sock")], {
        env: { DOVEROUTE_METRICS_LISTEN: `${host}:${await freePort()}` }
      })
      expect(r.code, r.stdout + r.stderr).not.toBe(0)
      expect(r.stdout + r.stderr).toMatch(/loopback/)
      expect(fs.existsSync(tmp.join("d.sock"))).toBe(false)
    } finally {
      await tmp.cleanup()
    }
  }, 60_000)
})

/** ECONNREFUSED from every non-loopback IPv4 address of this machine on `port`. */
const expectNotReachableFromOutside = async (port: number) => {
  const others = Object.values(os.networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === "IPv4")
  for (const a of others) {
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect({ host: a!.address, port })
      c.once("connect", () => {
        c.destroy()
        resolve("connected")
      })
      c.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"))
    })
    expect(refused, `${a!.address}:${port}`).toBe("ECONNREFUSED")
  }
}

describe("HTTP and metrics endpoints: loopback or a UNIX socket only", () => {

  it("on 127.0.0.1 it answers there and is not reachable on the machine's other addresses", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    const port = await freePort()
    const d = await serve({
      args: ["--store", `sqlite:${tmp.join("r.db")}`, "--http-listen", `127.0.0.1:${port}`],
      env: { DOVEROUTE_HTTP_TOKEN: "perm-test-token" },
      waitForTcp: [{ host: "127.0.0.1", port }]
    })
    const auth = { headers: { authorization: "Bearer perm-test-token" } }
    expect((await fetch(`http://127.0.0.1:${port}/route?user=a`, auth)).status).toBe(503) // no backend yet: temp failure
    expect((await fetch(`http://127.0.0.1:${port}/route?user=a`)).status).toBe(401) // no token
    await expectNotReachableFromOutside(port)
    expectHealthy(d, "http on loopback")
  }, 60_000)

  it("metrics on 127.0.0.1 answer there and are not reachable on the machine's other addresses", async () => {
    const tmp = makeTempDir()
    cleanups.push(() => tmp.cleanup())
    const port = await freePort()
    const d = await serve({
      args: ["--store", `sqlite:${tmp.join("r.db")}`, "--dict-socket", tmp.join("d.sock")],
      env: { DOVEROUTE_METRICS_LISTEN: `127.0.0.1:${port}` },
      waitFor: [tmp.join("d.sock")],
      waitForTcp: [{ host: "127.0.0.1", port }]
    })
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200)
    await expectNotReachableFromOutside(port)
    expectHealthy(d, "metrics on loopback")
  }, 60_000)
})
