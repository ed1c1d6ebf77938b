// The Debian package (npm run package → dist/doveroute_<version>_amd64.deb) on a bare Debian 12 and
// a bare Debian 13 (debootstrap minbase, nothing added): `apt install ./doveroute_….deb` with no
// network and no other package. Every installed unit's ExecStart reads a config file the package
// ships in /etc/doveroute as a conffile (the default doveroute.service: doveroute.json). The daemon
// is started as the installed doveroute.service starts it (its ExecStart command line and
// Environment=, as its User/Group/SupplementaryGroups with its UMask and RuntimeDirectory, inside
// the root) and serves a dict lookup on the shipped conffile; root's `backend add` before the unit
// ever ran leaves a store the unit can open. The conffile edited (an auth socket added), the same
// start serves auth logins too; an upgrade to a higher version keeps the edited conffile and the
// store (the user keeps their backend, the auth socket comes back); remove keeps config and store;
// purge removes the conffiles and keeps the store unless /var/lib/doveroute/.remove-on-purge
// exists. The package is built once per run.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeBareRoot, REPO_ROOT, runCommand, type BareRoot, type BareSuite, type ManagedProcess } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { waitUntil } from "./ops-support.js"
import { AuthLineClient } from "./reliability-support.js"
import { DictClient } from "./store-support.js"
import { exampleConfig, Unit } from "./systemd-support.js"

const CONF = "/etc/doveroute/doveroute.json"
const pkgVersion = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version

interface Debs { readonly first: string; readonly firstVersion: string; readonly upgrade: string; readonly upgradeVersion: string }
let debs: Debs | undefined

/** Builds the package once (npm run package) and, from it, the same package with a higher version. */
async function buildDebs(): Promise<Debs> {
  const t0 = Date.now()
  const r = await runCommand("bash", [path.join(REPO_ROOT, "scripts", "package-deb.sh")], { cwd: REPO_ROOT, timeoutMs: 900_000 })
  if (r.code !== 0) throw new Error(`npm run package failed (exit ${r.code})\n${r.stderr.slice(-4000)}`)
  const first = r.stdout.trim().split("\n").pop() ?? ""
  expect(path.basename(first)).toBe(`doveroute_${pkgVersion}-1_amd64.deb`)
  console.log(`package built in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${first} (${(fs.statSync(first).size / 1e6).toFixed(1)} MB)`)
  // the upgrade: the same files under a higher version (dpkg replaces every file and runs the
  // upgrade paths of the maintainer scripts)
  const work = fs.mkdtempSync("/var/tmp/doveroute/pkg-upgrade-")
  try {
    const upgradeVersion = `${pkgVersion}-2`
    await runCommand("dpkg-deb", ["-R", first, path.join(work, "root")]).then(check("dpkg-deb -R"))
    const control = path.join(work, "root", "DEBIAN", "control")
    fs.writeFileSync(control, fs.readFileSync(control, "utf8").replace(/^Version: .*$/m, `Version: ${upgradeVersion}`))
    const upgrade = path.join(path.dirname(first), `doveroute_${upgradeVersion}_amd64.deb`)
    await runCommand("dpkg-deb", ["--root-owner-group", "-Zzstd", "-z1", "--build", path.join(work, "root"), upgrade], { timeoutMs: 120_000 }).then(check("dpkg-deb --build"))
    return { first, firstVersion: `${pkgVersion}-1`, upgrade, upgradeVersion }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

const check = (what: string) => (r: { code: number | null; stdout: string; stderr: string }) => {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n${r.stdout}\n${r.stderr}`)
  return r
}

beforeAll(async () => {
  debs = await buildDebs()
}, 900_000)

afterAll(() => {
  if (debs !== undefined) fs.rmSync(debs.upgrade, { force: true })
})

/** `dpkg-query` status and version of doveroute in the root ("" when unknown). */
const dpkgStatus = async (root: BareRoot): Promise<string> =>
  (await root.sh("dpkg-query -W -f='${db:Status-Abbrev} ${Version}' doveroute 2>/dev/null")).stdout.trim()

const statOf = (p: string): string => {
  const s = fs.statSync(p)
  return `${(s.mode & 0o7777).toString(8).padStart(4, "0")} ${s.uid}:${s.gid}`
}

/** A unit as the package installed it in the root. */
const installedUnit = (root: BareRoot, name: string): Unit =>
  new Unit(name, fs.readFileSync(root.host(`/usr/lib/systemd/system/${name}`), "utf8"))

/**
 * Start the daemon in the root as systemd starts `unit`: its ExecStart command line with its
 * Environment=, as its User, Group and SupplementaryGroups, NoNewPrivileges, under its UMask, after
 * making its RuntimeDirectory (mode, owner) and, when missing, its StateDirectory.
 */
async function startAsInstalledUnit(root: BareRoot, unit: Unit): Promise<ManagedProcess> {
  const id = async (db: "passwd" | "group", name: string) => Number((await root.shChecked(`getent ${db} ${name}`)).stdout.split(":")[2])
  const uid = await id("passwd", unit.get("User")!)
  const gid = await id("group", unit.get("Group")!)
  const groups = await Promise.all(unit.words("SupplementaryGroups").map((g) => id("group", g)))
  for (const d of unit.words("RuntimeDirectory")) {
    await root.shChecked(`install -d -m ${unit.get("RuntimeDirectoryMode") ?? "0755"} -o ${uid} -g ${gid} /run/${d}`)
  }
  for (const d of unit.words("StateDirectory")) {
    await root.shChecked(`[ -d /var/lib/${d} ] || install -d -m ${unit.get("StateDirectoryMode") ?? "0755"} -o ${uid} -g ${gid} /var/lib/${d}`)
  }
  const env = Object.fromEntries(unit.values("Environment").flatMap((v) => v.trim().split(/\s+/)).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]))
  const exec = unit.get("ExecStart")!.split(/\s+/)
  return root.spawn([
    "setpriv", `--reuid=${uid}`, `--regid=${gid}`, `--groups=${groups.join(",")}`, ...(unit.get("NoNewPrivileges") === "yes" ? ["--no-new-privs"] : []),
    "--", "sh", "-c", `umask ${unit.get("UMask") ?? "0022"} && exec "$@"`, "sh", ...exec
  ], env)
}

describe.each<BareSuite>(["bookworm", "trixie"])("Debian package on a bare %s", (suite) => {
  let root: BareRoot | undefined
  let daemon: ManagedProcess | undefined

  afterAll(async () => {
    if (daemon !== undefined) await daemon.stop()
    if (root !== undefined) await root.remove()
  }, 120_000)

  it("installs with apt; runs as doveroute.service on its conffile, then on the edited conffile; upgrades keeping both and the store; removes and purges", async () => {
    if (debs === undefined) throw new Error("the package was not built")
    const t0 = Date.now()
    root = await makeBareRoot(suite)
    const r = root
    // nothing of ours in the bare root
    expect(fs.existsSync(r.host("/usr/bin/node"))).toBe(false)
    expect((await r.sh("getent passwd doveroute")).code).toBe(2)
    fs.copyFileSync(debs.first, r.host(`/tmp/${path.basename(debs.first)}`))
    fs.copyFileSync(debs.upgrade, r.host(`/tmp/${path.basename(debs.upgrade)}`))

    // ---- install: apt resolves every dependency from what minbase has (no package lists)
    expect(fs.readdirSync(r.host("/var/lib/apt/lists")).filter((f) => f.endsWith("_Packages"))).toEqual([])
    const installedPackages = async () => (await r.shChecked("dpkg-query -W -f='${Package}\\n'")).stdout.trim().split("\n").sort()
    const before = await installedPackages()
    const install = await r.sh(`apt install -y /tmp/${path.basename(debs.first)}`, { timeoutMs: 300_000 })
    expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0)
    expect(await dpkgStatus(r)).toBe(`ii  ${debs.firstVersion}`)
    expect((await installedPackages()).filter((p) => !before.includes(p))).toEqual(["doveroute"]) // nothing else

    // what went where
    expect((await r.shChecked("command -v doveroute")).stdout.trim()).toBe("/usr/bin/doveroute")
    expect((await r.shChecked("doveroute --version")).stdout.trim()).toBe(pkgVersion)
    expect((await r.shChecked("/usr/lib/doveroute/bin/node --version")).stdout.trim()).toMatch(/^v24\./)
    const passwd = (await r.shChecked("getent passwd doveroute")).stdout.trim().split(":")
    expect(passwd[5]).toBe("/var/lib/doveroute")
    expect(passwd[6]).toBe("/usr/sbin/nologin")
    expect(Number(passwd[2])).toBeLessThan(1000) // a system user
    const uid = Number(passwd[2])
    const gid = Number((await r.shChecked("getent group doveroute")).stdout.split(":")[2])
    expect(statOf(r.host("/var/lib/doveroute"))).toBe(`0700 ${uid}:${gid}`)
    expect(statOf(r.host("/etc/doveroute"))).toBe(`0750 0:${gid}`)
    expect(statOf(r.host(CONF))).toBe(`0640 0:${gid}`)
    expect(fs.readFileSync(r.host(CONF), "utf8")).toBe(fs.readFileSync(path.join(REPO_ROOT, "config", "doveroute.json"), "utf8"))
    // " /etc/doveroute/x.json <md5>" lines
    const conffiles = (await r.shChecked("dpkg-query -W -f='${Conffiles}' doveroute")).stdout.trim().split("\n").map((l) => l.trim().split(" ")[0])
    expect(conffiles).toContain(CONF)
    const units = fs.readdirSync(r.host("/usr/lib/systemd/system")).filter((f) => f.startsWith("doveroute"))
    expect(units).toContain("doveroute.service")
    // every unit reads a shipped conffile (the repository's example of it), which its user can read
    // through /etc/doveroute (0750 root:doveroute): nothing to copy before `systemctl enable --now`
    for (const u of units) {
      const unit = installedUnit(r, u)
      const exec = unit.get("ExecStart")?.split(/\s+/) ?? []
      expect(exec.slice(0, 3), u).toEqual(["/usr/bin/doveroute", "serve", "--config"])
      expect(exec, u).toHaveLength(4)
      expect(conffiles, `${u} reads ${exec[3]}`).toContain(exec[3])
      expect(fs.readFileSync(r.host(exec[3]!), "utf8"), exec[3]).toBe(fs.readFileSync(exampleConfig(exec[3]!), "utf8"))
      expect(statOf(r.host(exec[3]!)), exec[3]).toBe(`0640 0:${gid}`)
      expect([unit.get("Group"), ...unit.words("SupplementaryGroups")], `${u}: group doveroute reads /etc/doveroute`).toContain("doveroute")
      // no Environment= setting overrides what the file says
      expect(unit.values("Environment").join(" "), u).not.toMatch(/DOVEROUTE_/)
    }
    const mainUnit = installedUnit(r, "doveroute.service")
    expect(mainUnit.get("ExecStart")).toBe(`/usr/bin/doveroute serve --config ${CONF}`)
    expect(mainUnit.get("User")).toBe("doveroute")
    expect(fs.readdirSync(r.host("/usr/lib/sysusers.d"))).toContain("doveroute.conf")
    expect(fs.existsSync(r.host("/usr/share/man/man8/doveroute.8.gz"))).toBe(true)
    expect((await r.sh("zcat /usr/share/man/man8/doveroute.8.gz | head -n 1")).stdout).toMatch(/^\.TH DOVEROUTE 8/)
    expect(fs.readFileSync(r.host("/usr/share/bash-completion/completions/doveroute"), "utf8")).toMatch(/^complete -F \S+ .*doveroute$/m)

    // ---- run it as doveroute.service runs it, on the shipped conffile (dict socket, group dovecot
    // as on a mail host); root adds the backends first, before the unit ever ran (it creates the store)
    await r.shChecked("groupadd --system dovecot")
    for (const [name, ip] of [["b1.example.org", "10.0.0.11"], ["b2.example.org", "10.0.0.12"]] as const) {
      await r.shChecked(`doveroute backend add ${name} --hostip ${ip} --config ${CONF}`)
    }
    expect(fs.statSync(r.host("/var/lib/doveroute/doveroute.db")).uid, "the store root created is the unit user's").toBe(uid)
    const unitUid = uid
    const start = async (sockets: ReadonlyArray<string>, what: string) => {
      const d = await startAsInstalledUnit(r, mainUnit)
      daemon = d
      await waitUntil(`the sockets (${what})`, async () => {
        if (d.exitInfo() !== undefined) throw new Error(`doveroute serve (${what}) exited:\n${d.output()}`)
        return sockets.every((p) => fs.existsSync(r.host(p))) && d.output().includes("doveroute ready") ? true : undefined
      }, 30_000)
      return d
    }
    const stop = async (d: ManagedProcess) => {
      expect(await d.stop()).toMatchObject({ code: 0 })
      daemon = undefined
    }
    const dictLookup = async () => {
      const dict = await DictClient.connect(r.host("/run/doveroute/dict.sock"))
      const reply = await dict.lookup("alice@example.org")
      dict.close()
      expect(reply.line).toMatch(/^O\{/)
      return JSON.parse(reply.line.slice(1)) as Record<string, string>
    }
    const authLogin = async () => {
      const auth = await AuthLineClient.connect(r.host("/run/doveroute/auth.sock"))
      await auth.ready
      const ok = await auth.login("alice@example.org", "any-password")
      auth.close()
      expect(ok).toMatch(/^OK\t\d+\t/)
      return ok.split("\t")
    }

    const d = await start(["/run/doveroute/dict.sock"], "shipped conffile")
    // the socket as the shipped config says (mode, owner, group)
    const shipped = (JSON.parse(fs.readFileSync(r.host(CONF), "utf8")) as { dict?: { mode?: string; owner?: string; group?: string } }).dict ?? {}
    const idOf = async (db: "passwd" | "group", name: string | undefined, dflt: number) =>
      name === undefined ? dflt : Number((await r.shChecked(`getent ${db} ${name}`)).stdout.split(":")[2])
    expect(statOf(r.host("/run/doveroute"))).toBe(`${mainUnit.get("RuntimeDirectoryMode")} ${unitUid}:${await idOf("group", mainUnit.get("Group"), -1)}`)
    expect(statOf(r.host("/run/doveroute/dict.sock")))
      .toBe(`${shipped.mode ?? "0660"} ${await idOf("passwd", shipped.owner, unitUid)}:${await idOf("group", shipped.group, gid)}`)
    expect(fs.existsSync(r.host("/run/doveroute/auth.sock"))).toBe(false) // not in the shipped file
    const fields = await dictLookup()
    expect(["b1.example.org", "b2.example.org"]).toContain(fields.host)
    const ip = fields.host === "b1.example.org" ? "10.0.0.11" : "10.0.0.12"
    expect(fields.hostip).toBe(ip)
    const list = JSON.parse((await r.shChecked(`doveroute backend list --json --config ${CONF}`)).stdout) as unknown
    expect(JSON.stringify(list)).toContain("b1.example.org")
    expect(JSON.stringify(list)).toContain("b2.example.org")
    await stop(d)

    // ---- the admin edits the one file (adds the auth socket) and restarts: the unit's command
    // line serves it
    const edited = JSON.stringify({
      ...(JSON.parse(fs.readFileSync(r.host(CONF), "utf8")) as object),
      auth: { socket: "/run/doveroute/auth.sock", mode: "0660", group: "dovecot" }
    }, null, 2) + "\n"
    fs.writeFileSync(r.host(CONF), edited)
    const d1 = await start(["/run/doveroute/dict.sock", "/run/doveroute/auth.sock"], "edited conffile")
    expect(await authLogin()).toContain(`host=${ip}`) // the same backend as the dict answer
    expect((await dictLookup()).host).toBe(fields.host)
    await stop(d1)

    // ---- upgrade over itself with a higher version: edited conffile and store survive
    const upgrade = await r.sh(`apt install -y /tmp/${path.basename(debs.upgrade)}`, { timeoutMs: 300_000 })
    expect(upgrade.code, `${upgrade.stdout}\n${upgrade.stderr}`).toBe(0)
    expect(await dpkgStatus(r)).toBe(`ii  ${debs.upgradeVersion}`)
    expect(fs.readFileSync(r.host(CONF), "utf8")).toBe(edited)
    expect(statOf(r.host(CONF))).toBe(`0640 0:${gid}`)
    const shown = (await r.shChecked(`doveroute user show alice@example.org --config ${CONF}`)).stdout
    expect(shown).toContain(fields.host)
    // the upgraded program, started as the upgraded unit starts it, serves the kept edited config
    // and store: alice keeps her backend, the auth socket is there again
    const d2 = await start(["/run/doveroute/dict.sock", "/run/doveroute/auth.sock"], "after the upgrade")
    expect((await dictLookup()).host).toBe(fields.host)
    expect(await authLogin()).toContain(`host=${ip}`)
    await stop(d2)
    expect((await r.shChecked(`doveroute backend list --json --config ${CONF}`)).stdout).toContain("b2.example.org")

    // ---- remove: program gone, config and store kept
    const remove = await r.sh("apt remove -y doveroute", { timeoutMs: 120_000 })
    expect(remove.code, `${remove.stdout}\n${remove.stderr}`).toBe(0)
    expect(await dpkgStatus(r)).toMatch(/^rc /)
    expect(fs.existsSync(r.host("/usr/bin/doveroute"))).toBe(false)
    expect(fs.existsSync(r.host("/usr/lib/doveroute"))).toBe(false)
    expect(fs.readFileSync(r.host(CONF), "utf8")).toBe(edited)
    expect(fs.existsSync(r.host("/var/lib/doveroute/doveroute.db"))).toBe(true)

    // ---- purge: the conffile goes; the store stays unless the marker says otherwise (bookworm
    // checks the default, trixie the marker)
    const marker = suite === "trixie"
    if (marker) fs.writeFileSync(r.host("/var/lib/doveroute/.remove-on-purge"), "")
    const purge = await r.sh("apt purge -y doveroute", { timeoutMs: 120_000 })
    expect(purge.code, `${purge.stdout}\n${purge.stderr}`).toBe(0)
    expect(await dpkgStatus(r)).toBe("")
    for (const c of conffiles) expect(fs.existsSync(r.host(c!)), c).toBe(false)
    expect(fs.existsSync(r.host("/etc/doveroute"))).toBe(false)
    if (marker) {
      expect(fs.existsSync(r.host("/var/lib/doveroute"))).toBe(false)
    } else {
      expect(fs.existsSync(r.host("/var/lib/doveroute/doveroute.db"))).toBe(true)
      expect(purge.stderr + purge.stdout).toContain("keeping the store in /var/lib/doveroute")
    }
    console.log(`${suite}: install, serve, upgrade, remove, purge in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  }, 600_000)
})
