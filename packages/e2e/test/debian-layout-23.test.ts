// Issue 11, the README's install steps done on Debian's own /etc/dovecot (Dovecot 2.3.19, copied
// to a temp dir) and run for real: the README's sed disables only the PAM passdb block of
// conf.d/auth-system.conf.ext, a shipped snippet goes into conf.d, Debian's `userdb passwd` stays.
// A last conf.d file moves only what a test must not share with the machine: base_dir, log,
// listener port, no TLS (its certificate lines commented out), maildir under the users' homes.
// Two system users (created here, removed afterwards); the proxy's own address is a backend.
// - the quick start (95-doveroute-dict.conf, config/doveroute.json: proxy + nopassword): the
//   backend checks every password; a user whose backend is the proxy never logs in (loop refused);
// - the chain (95-doveroute-dict-chain.conf, real PAM through Debian's /etc/pam.d/dovecot): the
//   right password logs a user whose backend is the proxy in locally through userdb passwd ("User
//   is missing UID" was the failure with the whole auth-system.conf.ext dropped); a wrong one never.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { randomBytes } from "node:crypto"
import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  freePort, imapLogin, instancePaths, makeTempDir, REPO_ROOT, runChecked, runCommand, seedSqliteStore,
  startBackend23, startDaemon, startDovecot23, teardown
} from "@doveroute/testkit"
import type { Backend, Dovecot, RunningDaemon, TempDir } from "@doveroute/testkit"

const tag = randomBytes(3).toString("hex")
/** `self`'s backend is the proxy itself; `away`'s is the backend on 127.0.0.2. */
const self = { name: `dvrdeb${tag}a`, password: `Deb-${tag}-pass 1` }
const away = { name: `dvrdeb${tag}b`, password: `Deb-${tag}-pass 2` }
const WRONG = "NOT-THE-PASSWORD"

const removeUsers = async () => {
  for (const u of [self, away]) await runCommand("userdel", [u.name]).catch(() => undefined)
}

const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8")

/** Debian's /etc/dovecot copied to `<tmp>/dovecot`, the README's steps applied with `snippet`, started. */
async function startDebianProxy(tmp: TempDir, port: number, snippet: string, sock: string): Promise<Dovecot> {
  expect(existsSync("/etc/dovecot/conf.d/auth-system.conf.ext"), "Debian's dovecot-core (scripts/install-deps.sh)").toBe(true)
  const etc = tmp.join("dovecot")
  cpSync("/etc/dovecot", etc, { recursive: true })
  const sed = /^sed -i '([^']+)' \/etc\/dovecot\/conf\.d\/auth-system\.conf\.ext$/m.exec(readme)
  expect(sed, "README quick start: the sed line").not.toBeNull()
  await runChecked("sed", ["-i", sed![1]!, path.join(etc, "conf.d", "auth-system.conf.ext")])
  const shipped = (name: string) => readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.3", name), "utf8")
  const p = instancePaths(etc)
  // only this run's paths and port (as every test instance): not part of the steps
  const conf = shipped(snippet).replace("/etc/dovecot/doveroute-dict.conf.ext", path.join(etc, "doveroute-dict.conf.ext"))
  const ext = shipped("doveroute-dict.conf.ext").replace("/run/doveroute/dict.sock", sock)
  // no TLS in tests: Debian's snakeoil certificate may not exist (10-ssl.conf reads it at parse time)
  const ssl = readFileSync(path.join(etc, "conf.d", "10-ssl.conf"), "utf8").replace(/^(ssl_(cert|key) = <.*)$/gm, "#$1")
  const local = `# test isolation only
instance_name = dvr-debian
base_dir = ${p.baseDir}
state_dir = ${p.stateDir}
log_path = ${p.logPath}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_verbose = yes
auth_debug = yes
auth_cache_size = 0
auth_failure_delay = 0
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`
  return startDovecot23({
    dir: etc,
    // Debian's dovecot.conf itself, unchanged
    config: readFileSync(path.join(etc, "dovecot.conf"), "utf8"),
    files: {
      [path.join(etc, "conf.d", snippet)]: conf,
      [path.join(etc, "doveroute-dict.conf.ext")]: ext,
      [path.join(etc, "conf.d", "10-ssl.conf")]: ssl,
      [path.join(etc, "conf.d", "99-test-isolation.conf")]: local
    },
    tcp: [{ host: "127.0.0.1", port }]
  })
}

/** A temp dir, a port, two system users with homes under it, a backend on 127.0.0.2:port knowing them, the store. */
async function setup(): Promise<{ tmp: TempDir; port: number; backend: Backend; db: string }> {
  if (process.getuid?.() !== 0) throw new Error("this test needs root (useradd, PAM reads /etc/shadow)")
  expect(existsSync("/etc/pam.d/dovecot"), "Debian's /etc/pam.d/dovecot").toBe(true)
  const tmp = makeTempDir()
  const port = await freePort("127.0.0.1", ["127.0.0.2"])
  await removeUsers()
  for (const u of [self, away]) {
    const home = tmp.join("home", u.name)
    await runChecked("useradd", ["--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", u.name])
    await runChecked("chpasswd", [], { input: `${u.name}:${u.password}\n` })
    mkdirSync(home, { recursive: true })
    chownSync(home, Number((await runChecked("id", ["-u", u.name])).stdout.trim()), Number((await runChecked("id", ["-g", u.name])).stdout.trim()))
  }
  const db = tmp.join("routes.db")
  const [backend] = await Promise.all([
    // the backend knows the same users and passwords (it checks them when proxied to)
    startBackend23(tmp.path, { users: { [self.name]: self.password, [away.name]: away.password }, listen: ["127.0.0.2"], imapPort: port }),
    seedSqliteStore(db, { backends: [{ hostname: "127.0.0.1" }, { hostname: "127.0.0.2" }], mappings: { [self.name]: 1, [away.name]: 2 } })
  ])
  return { tmp, port, backend, db }
}

/** Stops what a describe started, removes the system users and the temp dir; resolves with the daemon's exit code. */
const stopDebian = async (daemon: RunningDaemon | undefined, proxy: Dovecot | undefined, s: Awaited<ReturnType<typeof setup>> | undefined) => {
  const codes = await teardown([daemon], [proxy, s?.backend.dovecot])
  await removeUsers()
  await s?.tmp.cleanup()
  return codes
}

describe("README quick start on Debian's /etc/dovecot (2.3.19): 95-doveroute-dict.conf + config/doveroute.json; the proxy's own address is a backend", () => {
  let s: Awaited<ReturnType<typeof setup>>
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number

  beforeAll(async () => {
    s = await setup()
    ;({ tmp, port, backend } = s)
    const sock = tmp.join("dict.sock")
    // the shipped daemon config with this run's store, socket and backend port
    const shipped = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8")) as Record<string, unknown>
    const configFile = tmp.join("doveroute.json")
    writeFileSync(configFile, JSON.stringify({
      ...shipped, store: `sqlite:${s.db}`, dict: { ...(shipped["dict"] as object), socket: sock },
      extra_fields: [...(shipped["extra_fields"] as Array<string>), `port=${port}`]
    }))
    daemon = await startDaemon({ args: ["--config", configFile], waitFor: [sock] })
    proxy = await startDebianProxy(tmp, port, "95-doveroute-dict.conf", sock)
  }, 120_000)

  afterAll(async () => {
    expect(await stopDebian(daemon, proxy, s)).toEqual([0])
  })

  it("doveconf -n: one passdb (dict) and Debian's userdb passwd", async () => {
    const conf = (await runChecked("doveconf", ["-c", instancePaths(tmp.join("dovecot")).configPath, "-n", "passdb", "userdb"])).stdout
    expect(conf).toMatch(/^passdb \{\n  args = \S+doveroute-dict\.conf\.ext\n  driver = dict\n\}\nuserdb \{\n  driver = passwd\n\}\n$/)
  })

  it("backend = the proxy: NO for a wrong and for the right (system) password, no local login", async () => {
    for (const pass of [WRONG, self.password]) {
      const r = await imapLogin("127.0.0.1", port, self.name, pass)
      expect(r.login.status, r.transcript).toBe("NO")
    }
    expect(proxy.log()).toMatch(/Proxying loops to itself/)
    expect(proxy.log()).not.toMatch(new RegExp(`Login: user=<${self.name}>`))
  })

  it("a user on another backend: the backend refuses a wrong password and accepts the right one", async () => {
    const bad = await imapLogin("127.0.0.1", port, away.name, WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    const ok = await imapLogin("127.0.0.1", port, away.name, away.password, { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy(away.name, "imap")).toBe("127.0.0.2")
  })
})

describe("README steps on Debian's /etc/dovecot (2.3.19), 95-doveroute-dict-chain.conf with real PAM; the proxy's own address is a backend", () => {
  let s: Awaited<ReturnType<typeof setup>>
  let tmp: TempDir
  let backend: Backend
  let proxy: Dovecot
  let daemon: RunningDaemon
  let port: number

  beforeAll(async () => {
    s = await setup()
    ;({ tmp, port, backend } = s)
    const sock = tmp.join("dict.sock")
    // the chain's doveroute: default proxy_maybe, no nopassword
    daemon = await startDaemon({ args: ["--store", `sqlite:${s.db}`, "--dict-socket", sock, "--extra-field", `port=${port}`], waitFor: [sock] })
    proxy = await startDebianProxy(tmp, port, "95-doveroute-dict-chain.conf", sock)
  }, 120_000)

  afterAll(async () => {
    expect(await stopDebian(daemon, proxy, s)).toEqual([0])
  })

  it("doveconf -n: passdb pam (continue-ok) then dict, and Debian's userdb passwd", async () => {
    const conf = (await runChecked("doveconf", ["-c", instancePaths(tmp.join("dovecot")).configPath, "-n", "passdb", "userdb"])).stdout
    expect(conf).toMatch(/passdb \{\n  driver = pam\n  result_failure = return-fail\n  result_success = continue-ok\n\}\npassdb \{\n  args = \S+doveroute-dict\.conf\.ext\n  driver = dict\n/)
    expect(conf).toMatch(/userdb \{\n  driver = passwd\n\}/)
  })

  it("backend = the proxy: a wrong password gets NO; the right one logs in locally (passwd userdb: uid and home) and SELECT works", async () => {
    const bad = await imapLogin("127.0.0.1", port, self.name, WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    expect(bad.login.text).not.toMatch(/UNAVAILABLE|Temporary/i)
    const ok = await imapLogin("127.0.0.1", port, self.name, self.password, { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(ok.select?.status, ok.transcript).toBe("OK")
    expect(proxy.log()).toMatch(new RegExp(`Login: user=<${self.name}>`))
    expect(proxy.log()).not.toMatch(/User is missing UID/)
    // the mailbox was created in the user's passwd home, owned by the user
    const maildir = tmp.join("home", self.name, "Maildir")
    expect(existsSync(maildir)).toBe(true)
    expect(statSync(maildir).uid).toBe(statSync(tmp.join("home", self.name)).uid)
    expect(backend.logins(self.name)).toHaveLength(0)
  })

  it("a user on another backend: a wrong password never reaches it; the right one is proxied there", async () => {
    const bad = await imapLogin("127.0.0.1", port, away.name, WRONG)
    expect(bad.login.status, bad.transcript).toBe("NO")
    expect(backend.logins(away.name)).toHaveLength(0)
    const ok = await imapLogin("127.0.0.1", port, away.name, away.password, { select: true })
    expect(ok.login.status, ok.transcript).toBe("OK")
    expect(backend.servedBy(away.name, "imap")).toBe("127.0.0.2")
    expect(proxy.log()).not.toMatch(new RegExp(`Login: user=<${away.name}>`))
  })
})
