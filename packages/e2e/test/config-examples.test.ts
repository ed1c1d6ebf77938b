// Every Dovecot snippet shipped in config/ passes `doveconf -n` on the Dovecot version it is for
// (2.3.19 on the host, 2.4.1 in the chroot), included into a minimal proxy config.
// Every doveroute config shipped in config/ (and the README's config fragments) starts the daemon:
// a shipped config that the daemon's rules refuse (a TCP endpoint without a token, nopassword
// without proxy, a secret its unit names under another credential) fails here.
import { describe, expect, it } from "vitest"
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  checkConfig23,
  checkConfig24,
  CLI_BIN,
  DOVECOT24_ROOT,
  freePort,
  makeChrootTempDir,
  makeTempDir,
  REPO_ROOT,
  requireDovecot24,
  runChecked,
  runCommand,
  spawnManaged
} from "@doveroute/testkit"
import { CONFIG_PREFIX, credentialNames, listenersOf, rebase, Unit, UNIT_DIR } from "./systemd-support.js"

const snippets = (dir: string) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".conf")).map((f) => path.join(dir, f)) : []

/** `key = value` settings of a snippet (comments and section lines left out), spaces normalised. */
const settingsOf = (file: string): Array<string> =>
  readFileSync(file, "utf8").split("\n").map((l) => l.replace(/#.*$/, "").trim())
    .filter((l) => /^[A-Za-z0-9_]+\s*=/.test(l))
    .map((l) => l.replace(/\s*=\s*/, " = ").trim())

/** Every setting of the snippet is in doveconf's output: the snippet really was parsed and used. */
const expectSettingsIn = (file: string, out: string) => {
  const lines = new Set(out.split("\n").map((l) => l.trim()))
  for (const s of settingsOf(file)) expect(lines, `${path.basename(file)}: ${s}`).toContain(s)
}

describe("config/ examples pass doveconf -n", () => {
  const dir23 = path.join(REPO_ROOT, "config", "dovecot-2.3")
  const dir24 = path.join(REPO_ROOT, "config", "dovecot-2.4")

  it("there are 2.3 snippets", () => {
    expect(snippets(dir23).length).toBeGreaterThan(0)
  })

  for (const file of snippets(dir23)) {
    it(`2.3: ${path.basename(file)}`, async () => {
      const tmp = makeTempDir()
      try {
        const conf = tmp.join("dovecot.conf")
        writeFileSync(conf, `base_dir = ${tmp.join("run")}\nstate_dir = ${tmp.join("state")}\nlisten = 127.0.0.1\nssl = no\n!include ${file}\n`)
        const out = await checkConfig23(conf)
        expect(settingsOf(file).length).toBeGreaterThan(0)
        expectSettingsIn(file, out)
      } finally {
        await tmp.cleanup()
      }
    })
  }

  for (const file of snippets(dir24)) {
    it(`2.4: ${path.basename(file)}`, async () => {
      requireDovecot24()
      const tmp = makeChrootTempDir()
      try {
        const inner = tmp.join("etc")
        mkdirSync(tmp.hostPath(inner), { recursive: true })
        const snippet = tmp.join("etc", path.basename(file))
        writeFileSync(tmp.hostPath(snippet), readFileSync(file, "utf8"))
        const conf = tmp.join("etc", "dovecot.conf")
        writeFileSync(
          tmp.hostPath(conf),
          `dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\nbase_dir = ${tmp.join("run")}\nstate_dir = ${tmp.join("state")}\nlisten = 127.0.0.1\nssl = no\n!include ${snippet}\n`
        )
        const out = await checkConfig24(conf)
        expect(settingsOf(file).length).toBeGreaterThan(0)
        expectSettingsIn(file, out)
      } finally {
        await tmp.cleanup()
      }
    })
  }

  it("postfix: main.cf.doveroute passes postconf", async () => {
    const file = path.join(REPO_ROOT, "config", "postfix", "main.cf.doveroute")
    const tmp = makeTempDir()
    try {
      writeFileSync(tmp.join("main.cf"), readFileSync(file, "utf8"))
      writeFileSync(tmp.join("master.cf"), "")
      const r = await runCommand("postconf", ["-c", tmp.path, "-n"])
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe("") // no "unknown parameter" warnings
      expectSettingsIn(file, r.stdout)
    } finally {
      await tmp.cleanup()
    }
  })

  describe("the README's install steps on Debian's own /etc/dovecot (copied; the package's files as installed)", () => {
    const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8")
    /** The README's command that disables Debian's PAM passdb block: `sed -i '<script>' …/auth-system.conf.ext`. */
    const sedScript = (): string => {
      const m = /^sed -i '([^']+)' \/etc\/dovecot\/conf\.d\/auth-system\.conf\.ext$/m.exec(readme)
      expect(m, "README quick start: the sed line for auth-system.conf.ext").not.toBeNull()
      return m![1]!
    }
    /** Top-level `passdb`/`userdb` sections of `doveconf -n` output: kind, name, their `key = value` lines. */
    const authDbs = (out: string) =>
      [...out.matchAll(/^(passdb|userdb)( [^ {]+)? \{\n([\s\S]*?)^\}/gm)].map((m) => ({
        kind: m[1]!,
        name: (m[2] ?? "").trim(),
        settings: m[3]!.split("\n").map((l) => l.trim()).filter((l) => /^[a-z_]+ = /.test(l))
      }))
    const debian23 = () => {
      expect(existsSync("/etc/dovecot/conf.d/auth-system.conf.ext"), "Debian's dovecot-core files (scripts/install-deps.sh)").toBe(true)
      const tmp = makeTempDir()
      cpSync("/etc/dovecot", tmp.join("dovecot"), { recursive: true })
      return tmp
    }
    const install23 = async (etc: string, names: ReadonlyArray<string>) => {
      for (const n of names) {
        const target = n.endsWith(".ext") ? path.join(etc, n) : path.join(etc, "conf.d", n)
        writeFileSync(target, readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.3", n), "utf8").replaceAll("/etc/dovecot/", etc + "/"))
      }
      await runChecked("sed", ["-i", sedScript(), path.join(etc, "conf.d", "auth-system.conf.ext")])
      return authDbs(await checkConfig23(path.join(etc, "dovecot.conf")))
    }

    it("the Debian layout as shipped has PAM passdb + passwd userdb (what the steps start from)", async () => {
      const tmp = debian23()
      try {
        const dbs = authDbs(await checkConfig23(tmp.join("dovecot", "dovecot.conf")))
        expect(dbs.map((d) => `${d.kind}:${d.settings.find((s) => s.startsWith("driver"))}`)).toEqual(["passdb:driver = pam", "userdb:driver = passwd"])
      } finally {
        await tmp.cleanup()
      }
    })

    it("2.3, 95-doveroute-dict.conf: one passdb (dict), userdb passwd kept", async () => {
      const tmp = debian23()
      try {
        const etc = tmp.join("dovecot")
        const dbs = await install23(etc, ["95-doveroute-dict.conf", "doveroute-dict.conf.ext"])
        expect(dbs.filter((d) => d.kind === "passdb").map((d) => d.settings)).toEqual([[`args = ${etc}/doveroute-dict.conf.ext`, "driver = dict"]])
        expect(dbs.filter((d) => d.kind === "userdb").map((d) => d.settings)).toEqual([["driver = passwd"]])
      } finally {
        await tmp.cleanup()
      }
    })

    it("2.3, 95-doveroute-dict-chain.conf: pam (continue-ok) then dict (skip = unauthenticated, return-fail), userdb passwd kept", async () => {
      const tmp = debian23()
      try {
        const etc = tmp.join("dovecot")
        const dbs = await install23(etc, ["95-doveroute-dict-chain.conf", "doveroute-dict.conf.ext"])
        expect(dbs.filter((d) => d.kind === "passdb").map((d) => d.settings)).toEqual([
          ["driver = pam", "result_failure = return-fail", "result_success = continue-ok"],
          [`args = ${etc}/doveroute-dict.conf.ext`, "driver = dict", "result_failure = return-fail", "result_internalfail = return-fail", "skip = unauthenticated"]
        ])
        expect(dbs.filter((d) => d.kind === "userdb").map((d) => d.settings)).toEqual([["driver = passwd"]])
      } finally {
        await tmp.cleanup()
      }
    })

    it("2.4, 95-doveroute-http-chain.conf in conf.d: it extends Debian's passdb pam (continue-ok), then route; userdb passwd kept; nothing disabled", async () => {
      requireDovecot24()
      expect(existsSync(path.join(DOVECOT24_ROOT, "etc/dovecot/conf.d/auth-system.conf.ext"))).toBe(true)
      const tmp = makeChrootTempDir()
      try {
        const etc = tmp.join("dovecot")
        cpSync(path.join(DOVECOT24_ROOT, "etc/dovecot"), tmp.hostPath(etc), { recursive: true })
        writeFileSync(tmp.hostPath(path.join(etc, "conf.d", "95-doveroute-http-chain.conf")),
          readFileSync(path.join(REPO_ROOT, "config", "dovecot-2.4", "95-doveroute-http-chain.conf"), "utf8"))
        const dbs = authDbs(await checkConfig24(path.join(etc, "dovecot.conf")))
        expect(dbs.filter((d) => d.kind === "passdb").map((d) => d.name)).toEqual(["pam", "route"])
        expect(dbs.find((d) => d.name === "pam")?.settings).toEqual(["result_failure = return-fail", "result_success = continue-ok"])
        expect(dbs.find((d) => d.name === "route")?.settings).toEqual(expect.arrayContaining(["driver = lua", "skip = unauthenticated", "result_failure = return-fail", "result_internalfail = return-fail"]))
        expect(dbs.filter((d) => d.kind === "userdb").map((d) => d.name)).toEqual(["passwd"])
      } finally {
        await tmp.cleanup()
      }
    })
  })
})

/** Credentials a test supplies stand in for the admin's files; never a real secret. */
const CREDENTIAL_VALUE = "Cred-5b7e1d9c-test"

/**
 * `doveroute serve --config <config>` with every path of `config` moved under a temp root and the
 * given systemd credentials ($CREDENTIALS_DIRECTORY, files 0400 as systemd writes them): "ready"
 * once it logged `doveroute ready` (then SIGTERM, exit 0 checked), else its exit code and output.
 */
const startShipped = async (config: Record<string, unknown>, credentials: ReadonlyArray<string>): Promise<{ ready: boolean; output: string }> => {
  const tmp = makeTempDir({ prefix: "dvc-" })
  try {
    const root = tmp.join("root")
    const moved = rebase(config, root, await freePort()) as Record<string, any>
    // the directories the package and systemd make: each socket's, the store's
    for (const l of listenersOf(moved)) if (l.at.startsWith("/")) mkdirSync(path.dirname(l.at), { recursive: true })
    for (const s of [moved.login_relay?.upstream, moved.userdb_relay?.upstream]) if (typeof s === "string") mkdirSync(path.dirname(s), { recursive: true })
    if (typeof moved.store === "string" && moved.store.startsWith("sqlite:")) mkdirSync(path.dirname(moved.store.slice("sqlite:".length)), { recursive: true })
    const file = tmp.join("config.json")
    writeFileSync(file, JSON.stringify(moved), { mode: 0o600 })
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" }
    if (credentials.length > 0) {
      const dir = tmp.join("credentials")
      mkdirSync(dir)
      for (const c of credentials) writeFileSync(path.join(dir, c), CREDENTIAL_VALUE, { mode: 0o400 })
      chmodSync(dir, 0o500)
      env.CREDENTIALS_DIRECTORY = dir
    }
    const proc = await spawnManaged(process.execPath, [CLI_BIN, "serve", "--config", file], { env, cwd: REPO_ROOT })
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline && proc.exitInfo() === undefined && !/doveroute ready/.test(proc.output())) {
      await new Promise((r) => setTimeout(r, 100))
    }
    const ready = proc.exitInfo() === undefined && /doveroute ready/.test(proc.output())
    const exit = await proc.stop()
    if (ready) expect(exit.code, proc.output()).toBe(0)
    expect(proc.output(), "no credential value in the output").not.toContain(CREDENTIAL_VALUE)
    return { ready, output: proc.output() }
  } finally {
    await tmp.cleanup()
  }
}

describe("every shipped doveroute config starts the daemon (paths moved to a temp root)", () => {
  const configDir = path.join(REPO_ROOT, "config")
  const shipped = [
    ...readdirSync(configDir).filter((f) => f.endsWith(".json")).map((f) => path.join(configDir, f)),
    ...readdirSync(path.join(configDir, "modes")).filter((f) => f.endsWith(".json")).map((f) => path.join(configDir, "modes", f))
  ]
  /** The unit whose ExecStart runs `file` as /etc/doveroute/<name>.json. */
  const unitOf = (file: string): Unit | undefined =>
    readdirSync(UNIT_DIR).filter((f) => f.endsWith(".service")).map((f) => Unit.read(f))
      .find((u) => u.get("ExecStart")?.endsWith(` --config ${CONFIG_PREFIX}${path.basename(file)}`))

  it("config/doveroute.json and one config per mode, each run by a unit (doveroute.service: doveroute.json)", () => {
    expect(shipped.map((f) => path.relative(configDir, f)).sort()).toEqual(expect.arrayContaining(["doveroute.json", "modes/dict.json", "modes/http.json"]))
    for (const f of shipped) expect(unitOf(f), `a unit runs ${f}`).toBeDefined()
    expect(unitOf(path.join(configDir, "doveroute.json"))?.name).toBe("doveroute.service")
  })

  /**
   * Shipped configs that cannot start until the admin supplies a secret (there is no safe default):
   * the credentials their unit's LoadCredential= lines name. Every other config starts as shipped.
   */
  const NEEDS_SECRET: Readonly<Record<string, ReadonlyArray<string>>> = { "modes/sasl.json": ["auth_password"] }

  for (const file of shipped) {
    const name = path.relative(configDir, file)
    const secrets = NEEDS_SECRET[name] ?? []
    it(secrets.length === 0
      ? `config/${name}: starts as shipped`
      : `config/${name}: refused without ${secrets.join(", ")}, starts with the credential its unit names`, async () => {
      const config = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>
      const first = await startShipped(config, [])
      if (secrets.length === 0) {
        expect(first.ready, `config/${name}:\n${first.output}`).toBe(true)
        return
      }
      expect(first.ready, first.output).toBe(false)
      for (const c of secrets) expect(first.output, "the refusal names the credential").toContain(c)
      for (const c of secrets) expect(credentialNames(unitOf(file)!), `the unit running config/${name} names LoadCredential=${c}`).toContain(c)
      const second = await startShipped(config, secrets)
      expect(second.ready, `config/${name} with the credentials ${secrets.join(", ")}:\n${second.output}`).toBe(true)
    }, 90_000)
  }

  it("the README's config fragments (`\"key\": …`) merged into config/doveroute.json start too", async () => {
    const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8")
    const fragments = [...readme.matchAll(/`("[a-z_]+": [\[{][^`]*)`/g)].map((m) => m[1]!.replace(/\s+/g, " "))
    expect(fragments.length, "README fragments").toBeGreaterThanOrEqual(3)
    const base = JSON.parse(readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8")) as Record<string, unknown>
    for (const f of fragments) {
      const fragment = JSON.parse(`{${f}}`) as Record<string, unknown>
      const r = await startShipped({ ...base, ...fragment }, [])
      expect(r.ready, `${f}:\n${r.output}`).toBe(true)
    }
  }, 120_000)
})
