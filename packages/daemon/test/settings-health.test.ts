// The `health` settings: protocols, TLS modes, CA file, per-protocol default ports, the login probe's
// account with its password from a file / systemd credential / config file (never in a message),
// and the combinations refused with one line naming the key.
import { describe, expect, it } from "@effect/vitest"
import { HealthCheck, HealthProbe, loadSettings, settingsConfig, StrictSettings } from "@doveroute/daemon"
import { Effect, Either, Redacted } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-health-settings-"))
fs.chmodSync(dir, 0o700)
let n = 0
const PASSWORD = "h3alth-Secret"
const passwordFile = path.join(dir, "health-password")
fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })
const caFile = path.join(dir, "ca.pem")
const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
fs.writeFileSync(caFile, CA)
const notPem = path.join(dir, "not.pem")
fs.writeFileSync(notPem, "hello\n")

const load = (health: unknown, mode = 0o600) =>
  Effect.gen(function*() {
    const file = path.join(dir, `c${n++}.json`)
    fs.writeFileSync(file, JSON.stringify({ store: "sqlite:/tmp/x.db", health }), { mode })
    fs.chmodSync(file, mode)
    return yield* Effect.either(loadSettings({ configFile: file }))
  })
const error = (health: unknown, mode?: number) =>
  Effect.map(load(health, mode), (r) => (Either.isLeft(r) ? r.left.message : "OK"))
const settings = (health: unknown) =>
  Effect.flatMap(load(health), (r) => (Either.isRight(r) ? Effect.succeed(r.right.health) : Effect.die(r.left.message)))

describe("health settings", () => {
  it("every new key is known with its kind; a misspelling is refused with a suggestion", () =>
    Effect.gen(function*() {
      const keys = new Map(StrictSettings.knownKeys(settingsConfig).map((k) => [k.key, k]))
      expect(keys.get("health.protocol")).toMatchObject({ kind: "choice", accepts: "one of (imap, pop3, lmtp, submission)" })
      expect(keys.get("health.tls")).toMatchObject({ kind: "choice", accepts: "one of (none, implicit, starttls)" })
      expect(keys.get("health.tls_verify")).toMatchObject({ kind: "boolean" })
      expect(keys.get("health.tls_ca_file")).toMatchObject({ kind: "text" })
      for (const k of ["health.login.user", "health.login.password", "health.login.password_file", "health.login.allow_plaintext"]) {
        expect(keys.has(k), k).toBe(true)
      }
      expect(yield* error({ tls_verfy: false })).toMatch(/unknown key "health\.tls_verfy".*did you mean "health\.tls_verify"\?/)
      expect(yield* error({ login: { usr: "x" } })).toMatch(/unknown key "health\.login\.usr".*did you mean "health\.login\.user"\?/)
      expect(yield* error({ tls: "yes" })).toMatch(/^invalid settings: health\.tls: Expected one of \(none, implicit, starttls\)/)
    }).pipe(Effect.runPromise))

  it.effect("defaults: no TLS, verification on, no login; default ports per protocol and TLS mode", () =>
    Effect.gen(function*() {
      const s = yield* settings({ enabled: true })
      expect(s).toMatchObject({ protocol: "imap", tls: "none", tlsVerify: true, tlsCa: undefined, login: undefined, port: undefined })
      expect(HealthCheck.describe(s)).toMatchObject({ health_port: 143, health_tls: "none" })
      for (const [protocol, tls, port] of [
        ["imap", "implicit", 993], ["pop3", "none", 110], ["pop3", "implicit", 995], ["lmtp", "starttls", 24],
        ["submission", "starttls", 587], ["submission", "implicit", 465]
      ] as const) {
        expect(HealthCheck.describe(yield* settings({ protocol, tls })).health_port, `${protocol} ${tls}`).toBe(port)
      }
      expect(yield* error({ protocol: "lmtp", tls: "implicit" })).toBe("invalid settings: health.port: lmtp has no standard port for implicit TLS; set health.port")
      expect((yield* settings({ protocol: "lmtp", tls: "implicit", port: 2424 })).port).toBe(2424)
    }))

  it.effect("tls_ca_file: read at load; refused when unreadable, not PEM, or without TLS", () =>
    Effect.gen(function*() {
      expect((yield* settings({ tls: "starttls", tls_ca_file: caFile })).tlsCa).toBe(CA)
      expect(yield* error({ tls: "starttls", tls_ca_file: path.join(dir, "missing.pem") })).toMatch(/^invalid settings: health\.tls_ca_file: cannot read .*missing\.pem: ENOENT/)
      expect(yield* error({ tls: "implicit", tls_ca_file: notPem })).toMatch(/health\.tls_ca_file: .*not\.pem holds no PEM certificate/)
      expect(yield* error({ tls_ca_file: caFile })).toMatch(/health\.tls_ca_file is set but health\.tls is none/)
    }))

  it.effect("login: password from a file or the systemd credential, never in a message; refused combinations", () =>
    Effect.gen(function*() {
      const s = yield* settings({ protocol: "pop3", tls: "starttls", login: { user: "probe@example.com", password_file: passwordFile } })
      expect(s.login?.user).toBe("probe@example.com")
      expect(Redacted.value(s.login!.password)).toBe(PASSWORD)
      expect(JSON.stringify(HealthCheck.describe(s))).not.toContain(PASSWORD)
      expect(HealthCheck.describe(s)).toMatchObject({ health_login: "probe@example.com", health_tls_verify: true })
      // systemd credential health_login_password
      const creds = path.join(dir, "creds")
      fs.mkdirSync(creds, { mode: 0o700 })
      fs.writeFileSync(path.join(creds, "health_login_password"), PASSWORD, { mode: 0o600 })
      process.env["CREDENTIALS_DIRECTORY"] = creds
      try {
        const c = yield* settings({ tls: "implicit", login: { user: "probe" } })
        expect(Redacted.value(c.login!.password)).toBe(PASSWORD)
        // a credential alone (no user) is no login probe
        expect((yield* settings({ tls: "implicit" })).login).toBeUndefined()
      } finally {
        delete process.env["CREDENTIALS_DIRECTORY"]
      }
      const refusals: Array<[unknown, RegExp]> = [
        [{ protocol: "lmtp", tls: "starttls", login: { user: "u", password_file: passwordFile } }, /^invalid settings: health\.login: LMTP has no login/],
        [{ tls: "starttls", login: { user: "u" } }, /^invalid settings: health\.login\.password: health\.login\.user needs a password/],
        [{ login: { user: "u", password_file: passwordFile } }, /^invalid settings: health\.login: a login probe without TLS sends the password in clear text/],
        [{ tls: "starttls", login: { password_file: passwordFile } }, /health\.login\.user: health\.login\.password_file .* is set but health\.login\.user is not/],
        [{ tls: "starttls", login: { user: "two words", password_file: passwordFile } }, /health\.login\.user must be a non-empty name without spaces/],
        [{ tls: "starttls", login: { user: "u", password: PASSWORD, password_file: passwordFile } }, /health\.login\.password or health\.login\.password_file, not both/]
      ]
      for (const [health, want] of refusals) {
        const m = yield* error(health)
        expect(m, JSON.stringify(health)).toMatch(want)
        expect(m).not.toContain(PASSWORD)
      }
      // plain text only when the admin says so
      expect((yield* settings({ login: { user: "u", password_file: passwordFile, allow_plaintext: true } })).login?.user).toBe("u")
      // inline in the config file: accepted in a private file, refused in a world-readable one
      expect((yield* settings({ tls: "starttls", login: { user: "u", password: PASSWORD } })).login?.user).toBe("u")
      const open = yield* error({ tls: "starttls", login: { user: "u", password: PASSWORD } }, 0o644)
      expect(open).toMatch(/holds health\.login\.password and is accessible to every local user/)
      expect(open).not.toContain(PASSWORD)
    }))

  it.effect("login password: CR, LF, NUL or empty refused naming the key, never echoing it; the probe never sends one", () =>
    Effect.gen(function*() {
      const bad = ["", "pa\rss-Secret9", "pa\nss-Secret9", "pa\r\nb LOGOUT", "pa\u0000ss-Secret9"]
      for (const password of bad) {
        const m = yield* error({ tls: "starttls", login: { user: "u", password } })
        expect(m, JSON.stringify(password)).toMatch(
          /^invalid settings: health\.login\.password: the password (is empty|holds a CR, LF or NUL character)/
        )
        for (const part of password.split(/[\r\n\u0000]/).filter((p) => p.length > 2)) expect(m).not.toContain(part)
      }
      // from a file: NUL (files refuse empty and multi-line contents themselves)
      const nulFile = path.join(dir, "nul-password")
      fs.writeFileSync(nulFile, "pa\u0000ss-Secret9\n", { mode: 0o600 })
      const m = yield* error({ tls: "starttls", login: { user: "u", password_file: nulFile } })
      expect(m).toMatch(/^invalid settings: health\.login\.password_file .*nul-password: the password holds a CR, LF or NUL/)
      expect(m).not.toContain("ss-Secret9")

      // a probe given such a password (not through the settings) fails `login` without sending it
      const received: Array<string> = []
      const server = net.createServer((c) => {
        c.on("data", (d) => received.push(d.toString("latin1")))
        c.write("* OK ready\r\n")
      })
      yield* Effect.promise(() => new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok)))
      const port = (server.address() as net.AddressInfo).port
      try {
        const r = yield* Effect.promise(() =>
          HealthProbe.probe({ address: "127.0.0.1", hostname: "b1.test", port }, {
            protocol: "imap", tls: "none", tlsVerify: true, tlsCa: undefined, timeoutMs: 3000,
            login: { user: "u", password: "x-Secret9\r\nb LOGOUT" }
          })
        )
        expect(r).toMatchObject({ ok: false, failure: "login" })
        expect(r.detail).toMatch(/not sent: the health\.login\.password holds a CR, LF or NUL/)
        expect(r.detail).not.toContain("x-Secret9")
        expect(received.join(""), "nothing of the password reached the server").not.toContain("Secret9")
      } finally {
        server.close()
      }
    }))
})
