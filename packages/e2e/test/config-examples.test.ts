// Every Dovecot snippet shipped in config/ passes `doveconf -n` on the Dovecot version it is for
// (2.3.19 on the host, 2.4.1 in the chroot), included into a minimal proxy config.
import { describe, expect, it } from "vitest"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import { checkConfig23, checkConfig24, makeChrootTempDir, makeTempDir, REPO_ROOT, requireDovecot24, runCommand } from "@doveroute/testkit"

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
})
