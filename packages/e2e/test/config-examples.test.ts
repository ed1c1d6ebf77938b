// Every Dovecot snippet shipped in config/ passes `doveconf -n` on the Dovecot version it is for
// (2.3.19 on the host, 2.4.1 in the chroot), included into a minimal proxy config.
import { describe, expect, it } from "vitest"
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import {
  checkConfig23,
  checkConfig24,
  DOVECOT24_ROOT,
  makeChrootTempDir,
  makeTempDir,
  REPO_ROOT,
  requireDovecot24,
  runChecked,
  runCommand
} from "@doveroute/testkit"

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
