// Issue 11: every secret setting can come from a file (`*_file`) or a systemd credential
// ($CREDENTIALS_DIRECTORY/<name>); files other users can read are refused, group-readable ones
// warned about; no message carries a secret; argv secrets are named and scrubbed.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings, Secrets } from "@doveroute/daemon"
import { Effect, Either, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach } from "vitest"

const flags = (o: Record<string, string | ReadonlyArray<string>>) => new Map(Object.entries(o))
const SECRET = "S3cr3t-Vx81-value"

const dirs: Array<string> = []
const tmpDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-secrets-"))
  dirs.push(d)
  return d
}
const secretFile = (content: string, mode = 0o600, name = "s") => {
  const f = path.join(tmpDir(), name)
  fs.writeFileSync(f, content)
  fs.chmodSync(f, mode)
  return f
}
const savedCreds = process.env["CREDENTIALS_DIRECTORY"]
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  if (savedCreds === undefined) delete process.env["CREDENTIALS_DIRECTORY"]
  else process.env["CREDENTIALS_DIRECTORY"] = savedCreds
})

const failure = (e: Effect.Effect<unknown, { readonly message: string }>) =>
  Effect.map(Effect.either(e), (r) => (Either.isLeft(r) ? r.left.message : "no failure"))

describe("readSecretFile", () => {
  it("reads the whole file, drops one trailing newline (LF or CRLF)", () => {
    expect(Redacted.value(Secrets.readSecretFile(secretFile(`${SECRET}\n`)).value)).toBe(SECRET)
    expect(Redacted.value(Secrets.readSecretFile(secretFile(`${SECRET}\r\n`)).value)).toBe(SECRET)
    expect(Redacted.value(Secrets.readSecretFile(secretFile(SECRET, 0o400)).value)).toBe(SECRET)
    expect(Secrets.readSecretFile(secretFile(SECRET)).warning).toBeUndefined()
  })

  it("refuses files every local user can read or write, or the group can write; the message names the file, never the content", () => {
    for (const mode of [0o644, 0o604, 0o602, 0o620, 0o666, 0o601]) {
      const f = secretFile(SECRET, mode)
      let msg = "no error"
      try {
        Secrets.readSecretFile(f)
      } catch (e) {
        msg = (e as Error).message
      }
      expect(msg, mode.toString(8)).toContain(f)
      expect(msg).toMatch(/every local user|writable by its group/)
      expect(msg).not.toContain(SECRET)
    }
  })

  it("a group-readable file (0640) is read, with a warning naming the group", () => {
    const f = secretFile(SECRET, 0o640)
    const r = Secrets.readSecretFile(f)
    expect(Redacted.value(r.value)).toBe(SECRET)
    expect(r.warning).toMatch(/readable by group (root|0) \(mode 0640\)/)
    expect(r.warning).not.toContain(SECRET)
  })

  it("refuses a file owned by another unprivileged user (nobody, 0600) and files under /proc or /sys", () => {
    const f = secretFile(SECRET, 0o600)
    const nobody = Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim())
    fs.chownSync(f, nobody, 0)
    expect(() => Secrets.readSecretFile(f)).toThrow(new RegExp(`${f} is owned by uid ${nobody}, not by root or the daemon's user`))
    fs.chownSync(f, process.getuid!(), 0)
    expect(Redacted.value(Secrets.readSecretFile(f).value)).toBe(SECRET)
    expect(() => Secrets.readSecretFile("/proc/self/environ")).toThrow(/is under \/proc/)
    const link = path.join(tmpDir(), "env")
    fs.symlinkSync("/proc/self/environ", link)
    expect(() => Secrets.readSecretFile(link)).toThrow(/is under \/proc/)
    expect(() => Secrets.readSecretFile("/sys/kernel/hostname")).toThrow(/is under \/sys/)
  })

  it("refuses an empty file, a file of several lines, a directory, a missing file", () => {
    expect(() => Secrets.readSecretFile(secretFile("\n"))).toThrow(/is empty/)
    expect(() => Secrets.readSecretFile(secretFile(`${SECRET}\nsecond`))).toThrow(/more than one line/)
    expect(() => Secrets.readSecretFile(tmpDir())).toThrow(/not a regular file/)
    expect(() => Secrets.readSecretFile("/nonexistent/dvr-secret")).toThrow(/cannot read secret file \/nonexistent\/dvr-secret: ENOENT/)
  })
})

describe("a config file holding inline secrets follows the secret-file rule", () => {
  const inline: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
    ["auth.password", { auth: { socket: "/tmp/a.sock", password: SECRET } }],
    ["http.token", { http: { listen: "127.0.0.1:20180", token: SECRET } }],
    ["store_password", { store: "postgres://u@127.0.0.1:5432/db", store_password: SECRET, dict: { socket: "/tmp/d.sock" } }],
    ["store", { store: `postgres://u:${SECRET}@127.0.0.1:5432/db`, dict: { socket: "/tmp/d.sock" } }],
    ["store", { store: `postgres://u@127.0.0.1:5432/db?password=${SECRET}`, dict: { socket: "/tmp/d.sock" } }]
  ]
  it.effect("others-readable (0644, 0604): refused naming the file and the key, never the value; 0640 a warning; 0600 silent", () =>
    Effect.gen(function*() {
      for (const [key, json] of inline) {
        const file = secretFile(JSON.stringify(json), 0o644, "doveroute.json")
        for (const mode of [0o644, 0o604]) {
          fs.chmodSync(file, mode)
          const msg = yield* failure(loadSettings({ configFile: file }))
          expect(msg, key).toContain(`config file ${file} holds ${key} and is accessible to every local user (mode 0${mode.toString(8)})`)
          expect(msg).not.toContain(SECRET)
        }
        fs.chmodSync(file, 0o640)
        const s = yield* loadSettings({ configFile: file })
        expect(s.secretWarnings?.join("\n"), key).toMatch(new RegExp(`config file ${file} holds ${key.replace(".", "\\.")} and is readable by group (root|0) \\(mode 0640\\)`))
        expect(s.secretWarnings?.join("\n")).not.toContain(SECRET)
        fs.chmodSync(file, 0o600)
        expect((yield* loadSettings({ configFile: file })).secretWarnings ?? []).toEqual([])
      }
    }))

  it.effect("a world-readable config file without inline secrets is fine (a password-less store URL, *_file keys)", () =>
    Effect.gen(function*() {
      const pw = secretFile(`${SECRET}\n`)
      const file = secretFile(JSON.stringify({ store: "postgres://u@127.0.0.1:5432/db?sslmode=disable", auth: { socket: "/tmp/a.sock", password_file: pw } }), 0o644, "c.json")
      const s = yield* loadSettings({ configFile: file })
      expect(s.auth?.authMode).toBe("password")
      expect(s.secretWarnings ?? []).toEqual([])
    }))
})

describe("settings: secrets from *_file keys and systemd credentials", () => {
  it.effect("auth.password_file, http.token_file, store_file", () =>
    Effect.gen(function*() {
      const pw = secretFile(`${SECRET}\n`)
      const tok = secretFile("tok-1\n")
      const store = secretFile("postgres://u:pg-Pw@127.0.0.1:5432/db\n")
      const s = yield* loadSettings({
        flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password_file": pw, "http.listen": "127.0.0.1:20180", "http.token_file": tok, store_file: store })
      })
      expect(s.auth?.authMode).toBe("password")
      expect(Redacted.value(s.auth!.password!)).toBe(SECRET)
      expect(Redacted.value(s.http!.token!)).toBe("tok-1")
      expect(s.store._tag).toBe("Pg")
      expect(s.store._tag === "Pg" && Redacted.value(s.store.url)).toBe("postgres://u:pg-Pw@127.0.0.1:5432/db")
      expect(s.secretWarnings).toEqual([])
      // the settings object never prints a secret
      expect(JSON.stringify(s) + String(s.auth?.password)).not.toMatch(/S3cr3t|pg-Pw|tok-1/)
    }))

  it.effect("systemd credentials: store, store_password, auth_password, http_token; the explicit keys win", () =>
    Effect.gen(function*() {
      const creds = tmpDir()
      const put = (name: string, v: string) => fs.writeFileSync(path.join(creds, name), v + "\n", { mode: 0o400 })
      put("store", "mysql://dvr@127.0.0.1:3306/routes")
      put("store_password", "my p@ss/word")
      put("auth_password", SECRET)
      put("http_token", "cred-token")
      process.env["CREDENTIALS_DIRECTORY"] = creds
      const s = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "http.listen": "127.0.0.1:20180" }) })
      expect(Redacted.value(s.auth!.password!)).toBe(SECRET)
      expect(Redacted.value(s.http!.token!)).toBe("cred-token")
      expect(s.store._tag === "Mysql" && Redacted.value(s.store.url)).toBe("mysql://dvr:my%20p%40ss%2Fword@127.0.0.1:3306/routes")
      // a value given explicitly beats the credential
      const t = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password": "explicit", store: "postgres://pg@127.0.0.1/x" }) })
      expect(Redacted.value(t.auth!.password!)).toBe("explicit")
      expect(t.store._tag === "Pg" && Redacted.value(t.store.url)).toBe("postgres://pg:my%20p%40ss%2Fword@127.0.0.1/x")
      // … but store_password from the credential does not fit an SQLite store
      expect(yield* failure(loadSettings({ flags: flags({ store: "sqlite:/tmp/x.db" }) }))).toMatch(/store_password is set but the store is SQLite/)
    }))

  it.effect("refused: KEY and KEY_file together, a world-readable file, a store URL with its own password plus store_password, store_group on PostgreSQL", () =>
    Effect.gen(function*() {
      const pw = secretFile(SECRET)
      const both = yield* failure(loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password": "x", "auth.password_file": pw }) }))
      expect(both).toMatch(/auth\.password or auth\.password_file, not both/)
      const open = secretFile(SECRET, 0o644)
      const o = yield* failure(loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password_file": open }) }))
      expect(o).toContain(open)
      expect(o).toMatch(/every local user/)
      const pass = secretFile("other")
      const dup = yield* failure(loadSettings({ flags: flags({ store: "postgres://u:inline@h/db", store_password_file: pass }) }))
      expect(dup).toMatch(/keep one of them/)
      const grp = yield* failure(loadSettings({ flags: flags({ store: "postgres://u@h/db", store_group: "dovecot" }) }))
      expect(grp).toMatch(/store_group applies to an SQLite store only/)
      for (const m of [both, o, dup]) expect(m).not.toMatch(/S3cr3t|inline|other/)
    }))

  it.effect("a TCP http.listen without a token is refused; a UNIX socket needs none", () =>
    Effect.gen(function*() {
      const m = yield* failure(loadSettings({ flags: flags({ "http.listen": "127.0.0.1:20180" }) }))
      expect(m).toMatch(/http\.listen needs a shared token/)
      const u = yield* loadSettings({ flags: flags({ "http.listen": "/run/doveroute/http.sock" }) })
      expect(u.http?.token).toBeUndefined()
    }))

  it.effect("a group-readable secret file is accepted and reported in secretWarnings (without the value)", () =>
    Effect.gen(function*() {
      const pw = secretFile(SECRET, 0o640)
      const s = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password_file": pw }) })
      expect(s.secretWarnings).toHaveLength(1)
      expect(s.secretWarnings![0]).toContain(pw)
      expect(s.secretWarnings![0]).not.toContain(SECRET)
    }))
})

describe("secrets on the command line", () => {
  it("argvSecrets names --password, --store with a password, --extra-field password=…", () => {
    expect(Secrets.argvSecrets(flags({ "auth.password": "x", store: "postgres://u:p@h/db", extra_fields: ["nopassword", "password=m"] })))
      .toEqual(["--password", "--store", "--extra-field"])
    expect(Secrets.argvSecrets(flags({ store: "postgres://u@h/db", extra_fields: ["nopassword", "port=143"], "auth.password_file": "/f" }))).toEqual([])
    expect(Secrets.argvSecrets(flags({ store: "sqlite:/var/lib/doveroute/doveroute.db" }))).toEqual([])
  })

  it("scrubbedTitle replaces every secret value, in both flag forms", () => {
    const argv = ["node", "/x/doveroute.mjs", "serve", "--password", "pw1", "--store", "mysql://u:pw2@h:3306/db", "--extra-field", "password=pw3",
      "--extra-field=pass=pw4", "--password=pw5", "--dict-socket", "/run/d.sock", "--extra-field", "port=143"]
    const t = Secrets.scrubbedTitle(argv)
    expect(t).toBe(
      "node /x/doveroute.mjs serve --password xxx --store mysql://u:xxx@h:3306/db --extra-field password=xxx " +
        "--extra-field=pass=xxx --password=xxx --dict-socket /run/d.sock --extra-field port=143"
    )
  })

  it("scrubbedTitle and argvSecrets use the store URL redaction: query passwords, @ or / in the password", () => {
    for (const [url, want] of [
      ["postgres://postgres@127.0.0.1:5432/test?password=QueryPW", "postgres://postgres@127.0.0.1:5432/test?password=xxx"],
      ["mysql://u:pa@ss@h", "mysql://u:xxx@h"],
      ["postgres://u:pa/ss@h", "postgres://u:xxx@h"]
    ] as const) {
      expect(Secrets.scrubbedTitle(["node", "d.mjs", "serve", "--store", url])).toBe(`node d.mjs serve --store ${want}`)
      expect(Secrets.scrubbedTitle(["node", "d.mjs", "serve", `--store=${url}`])).toBe(`node d.mjs serve --store=${want}`)
      expect(Secrets.argvSecrets(flags({ store: url }))).toEqual(["--store"])
    }
  })
})
