// Issue 11: settings mistakes stop the daemon with one line naming the key and what is accepted:
// unknown keys at any level of the config file, unknown DOVEROUTE_* variables, wrong JSON types,
// invalid socket modes, ports, IPs and backend states. The known keys come from settingsConfig.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings, settingsConfig, SettingValues, StrictSettings } from "@doveroute/daemon"
import { Config, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-strict-"))
let n = 0

/** Load settings from `json` written to a fresh config file (plus optional flags); the error message or "OK". */
const load = (json: unknown, flags: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const file = path.join(dir, `c${n++}.json`)
    fs.writeFileSync(file, typeof json === "string" ? json : JSON.stringify(json))
    const r = yield* Effect.either(loadSettings({ configFile: file, flags: new Map(Object.entries(flags)) }))
    return Either.isLeft(r) ? r.left.message : "OK"
  })

const withEnv = <A, E>(env: Record<string, string>, eff: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const old = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
      Object.assign(process.env, env)
      return old
    }),
    () => eff,
    (old) => Effect.sync(() => {
      for (const [k, v] of Object.entries(old)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    })
  )

const oneLine = (m: string) => expect(m).not.toMatch(/\n/)

describe("strict settings: the config file", () => {
  it.effect("the shipped example config passes", () =>
    Effect.gen(function*() {
      const json = fs.readFileSync(path.join(__dirname, "../../../config/doveroute.json"), "utf8")
      expect(yield* load(json)).toBe("OK")
    }))

  it.effect("misspelled keys at every level are refused, naming the key, a suggestion and the keys of that section", () =>
    Effect.gen(function*() {
      const top = yield* load({ down_polcy: "keep" })
      oneLine(top)
      expect(top).toMatch(/unknown key "down_polcy" in .*c\d+\.json; did you mean "down_policy"\? \(known top-level keys: store, .*strategy, down_policy,/)
      expect(yield* load({ helth: { enabled: true } })).toMatch(/unknown key "helth" .*did you mean "health"\?/)
      const nested = yield* load({ http: { listne: "127.0.0.1:8080" } })
      expect(nested).toMatch(/unknown key "http.listne" .*did you mean "http.listen"\? \(known keys of http: listen, mode, owner, group, token, token_file\)/)
      expect(yield* load({ dict: { socket: "/tmp/x.sock", listne: "x" } })).toMatch(/unknown key "dict.listne" .*known keys of dict: socket, mode, owner, group/)
      expect(yield* load({ cache: { max_entires: 5 } })).toMatch(/unknown key "cache.max_entires" .*did you mean "cache.max_entries"/)
      expect(yield* load({ table: { mode: "partial" } })).toBe(`invalid settings: table.mode: Expected one of (full, cache) but received "partial"`)
      expect(yield* load({ table: { keep_changes: 10 } })).toBe("invalid settings: table.keep_changes must be at least 1000")
      expect(yield* load({ table: { mdoe: "full" } })).toMatch(/unknown key "table.mdoe" .*did you mean "table.mode"\? \(known keys of table: mode, max_stale, keep_changes\)/)
      expect(yield* load({ totally_new: 1 })).toMatch(/^invalid settings: unknown key "totally_new" in \S+ \(known top-level keys/)
    }))

  it.effect("wrong JSON types are refused with the expected type, never showing the value (it may be a secret)", () =>
    Effect.gen(function*() {
      const secret = yield* load({ auth: { socket: "/tmp/a.sock", password: 271828182 }, store: { url: "postgres://u:hunter2@db/x" } })
      expect(secret).toMatch(/must be a string, got (a number|an object) \(in /)
      expect(secret).not.toMatch(/271828182|hunter2/)
      expect(yield* load({ cache: { enabled: "yes" } })).toMatch(/cache\.enabled must be true or false, got a string \(in /)
      expect(yield* load({ extra_fields: "nopassword" })).toMatch(/extra_fields must be a JSON array \(of strings\), got a string/)
      expect(yield* load({ extra_fields: [{ a: 1 }] })).toMatch(/extra_fields must be a JSON array of strings, got an item that is an object/)
      expect(yield* load({ store: { url: "sqlite:/x" } })).toMatch(/store must be a string, got an object/)
      expect(yield* load({ dict: "/run/doveroute/dict.sock" })).toMatch(/dict in \S+ must be a section \(a JSON object with socket, mode, owner, group\), got a string/)
      expect(yield* load({ max_clients: "lots" })).toMatch(/max_clients must be an integer, got a string \(in /)
      expect(yield* load({ kick_hold: 30 })).toMatch(/kick_hold must be a string, got a number \(in /)
      expect(yield* load({ dict: { socket: "/tmp/x.sock", mode: 660 } })).toMatch(/dict\.mode must be a string, got a number \(in /)
      expect(yield* load({ down_policy: null })).toMatch(/down_policy in \S+ is null/)
      expect(yield* load([{ store: "sqlite:/x" }])).toMatch(/must hold a JSON object .*got an array/)
      expect(yield* load("{ not json")).toMatch(/cannot read config file/)
      // the closed reason union: unknown key, wrong type, unreadable file
      const reasonOf = (json: unknown) =>
        Effect.gen(function*() {
          const file = path.join(dir, `r${n++}.json`)
          fs.writeFileSync(file, JSON.stringify(json))
          const r = yield* Effect.either(loadSettings({ configFile: file }))
          return Either.isLeft(r) ? r.left.reason : "none"
        })
      expect(yield* reasonOf({ down_polcy: "keep" })).toBe("UnknownKey")
      expect(yield* reasonOf({ cache: { enabled: "yes" } })).toBe("Invalid")
      expect(yield* reasonOf([1])).toBe("ConfigFile")
    }))

  it.effect("invalid values name the key and the accepted values", () =>
    Effect.gen(function*() {
      const m = yield* load({ down_policy: "sometimes" })
      oneLine(m)
      expect(m).toBe('invalid settings: down_policy: Expected one of (keep, reassign, tempfail) but received "sometimes"')
      expect(yield* load({ health: { port: 70000 } })).toBe("invalid settings: health.port: expected a port 1-65535")
      expect(yield* load({ health: { port: 0 } })).toMatch(/health\.port: expected a port 1-65535/)
      expect(yield* load({ metrics: { listen: "127.0.0.1:99999" } })).toMatch(/metrics\.listen.*bad port/)
      expect(yield* load({ auth: { socket: "/tmp/a.sock", auth_mode: "password" } })).toMatch(/^invalid settings: auth\.password: auth_mode=password needs a password/)
    }))

  it.effect("socket modes: four octal digits with a leading 0 and no execute bits, in the file and in flags", () =>
    Effect.gen(function*() {
      for (const bad of ["777", "0777", "660", "0661", "0760", "rw-rw----", "00660"]) {
        const m = yield* load({ dict: { socket: "/tmp/x.sock", mode: bad } })
        expect(m, bad).toBe(
          `invalid settings: dict.mode: expected a socket mode (four octal digits with a leading 0 and no execute bits, such as 0660 or 0666), got ${JSON.stringify(bad)}`
        )
      }
      expect(yield* load({}, { "dict.socket": "/tmp/x.sock", "dict.mode": "777" })).toMatch(/dict\.mode: expected a socket mode/)
      expect(yield* load({ auth: { socket: "/tmp/a.sock", mode: "0777" } })).toMatch(/auth\.mode: expected a socket mode/)
      for (const good of ["0600", "0660", "0666", "0640"]) expect(yield* load({ dict: { socket: "/tmp/x.sock", mode: good } }), good).toBe("OK")
    }))
})

describe("strict settings: DOVEROUTE_* environment variables", () => {
  it.effect("an unknown DOVEROUTE_ variable is refused with a suggestion; settings and tooling variables pass", () =>
    Effect.gen(function*() {
      const m = yield* withEnv({ DOVEROUTE_DOWN_POLCY: "keep" }, load({}))
      oneLine(m)
      expect(m).toMatch(/^invalid settings: unknown environment variable DOVEROUTE_DOWN_POLCY; did you mean DOVEROUTE_DOWN_POLICY\?/)
      expect(yield* withEnv({ DOVEROUTE_HELTH_ENABLED: "true" }, load({}))).toMatch(/DOVEROUTE_HELTH_ENABLED; did you mean DOVEROUTE_HEALTH_ENABLED\?/)
      expect(yield* withEnv({ DOVEROUTE_DICT_LISTNE: "/x" }, load({}))).toMatch(/unknown environment variable DOVEROUTE_DICT_LISTNE/)
      expect(yield* withEnv({ DOVEROUTE_DOWN_POLICY: "tempfail", DOVEROUTE_CACHE_MAX_ENTRIES: "10", DOVEROUTE_CACHE_DIR: "/var/cache/x" }, load({}))).toBe("OK")
      expect(yield* withEnv({ DOVEROUTE_DOWN_POLICY: "nope" }, load({}))).toBe(
        'invalid settings: DOVEROUTE_DOWN_POLICY: Expected one of (keep, reassign, tempfail) but received "nope"'
      )
      expect(yield* withEnv({ DOVEROUTE_CACHE_ENABLED: "maybe" }, load({}))).toBe(
        'invalid settings: DOVEROUTE_CACHE_ENABLED: Expected a boolean value but received "maybe" (accepted: true, false, yes, no, on, off, 1, 0)'
      )
      expect(yield* withEnv({ DOVEROUTE_MAX_CLIENTS: "many" }, load({}))).toMatch(/^invalid settings: DOVEROUTE_MAX_CLIENTS: Expected an integer value but received "many"$/)
      // the variables of every known key are accepted
      for (const k of StrictSettings.knownKeys(settingsConfig)) {
        expect(StrictSettings.checkEnvironment(settingsConfig, { [StrictSettings.envName(k.key)]: "x" }), k.key).toBeUndefined()
      }
    }))
})

describe("strict settings: the known keys come from the Config", () => {
  it("every key of settingsConfig is known with its kind; a key added to a Config is known without a list to edit", () => {
    const keys = new Map(StrictSettings.knownKeys(settingsConfig).map((k) => [k.key, k]))
    expect(keys.get("store")).toMatchObject({ kind: "text", list: false })
    expect(keys.get("down_policy")).toMatchObject({ kind: "choice", accepts: "one of (keep, reassign, tempfail)" })
    expect(keys.get("extra_fields")).toMatchObject({ list: true })
    expect(keys.get("cache.enabled")).toMatchObject({ kind: "boolean" })
    expect(keys.get("table.mode")).toMatchObject({ kind: "choice", accepts: "one of (full, cache)" })
    expect(keys.get("table.max_stale")).toMatchObject({ kind: "text", list: false })
    expect(keys.get("table.keep_changes")).toMatchObject({ kind: "integer" })
    expect(keys.get("health.port")).toMatchObject({ kind: "integer" })
    for (const k of ["dict.socket", "auth.auth_mode", "login_relay.upstream", "http.listen", "metrics.listen", "kick_proxies", "normalize.strip_domain"]) {
      expect(keys.has(k), k).toBe(true)
    }
    const extended = Config.all({ a: Config.string("a"), s: Config.nested(Config.option(Config.integer("token_file")), "http") })
    expect(StrictSettings.knownKeys(extended).map((k) => k.key)).toEqual(["a", "http.token_file"])
    expect(StrictSettings.checkConfigJson(extended, { http: { token_file: 1 } }, "f.json")).toBeUndefined()
    expect(StrictSettings.checkConfigJson(extended, { http: { token: "x" } }, "f.json")?.message).toMatch(/unknown key "http.token"/)
  })
})

describe("setting values (shared with the CLI flags)", () => {
  it("IP addresses, backend states, ports", () => {
    expect(SettingValues.check(SettingValues.IpAddress, "10.0.0.11")).toEqual(Either.right("10.0.0.11"))
    expect(SettingValues.check(SettingValues.IpAddress, "fd00::11")).toEqual(Either.right("fd00::11"))
    for (const bad of ["not-an-ip", "10.0.0.256", "backend1.example.org", "", "10.0.0.1 "]) {
      expect(SettingValues.check(SettingValues.IpAddress, bad), bad).toEqual(
        Either.left(`expected an IPv4 or IPv6 address such as 10.0.0.11 or fd00::11, got ${JSON.stringify(bad)}`)
      )
    }
    for (const s of [0, 1, 2, 3]) expect(SettingValues.check(SettingValues.BackendState, s)).toEqual(Either.right(s))
    for (const s of [7, -1, 4]) {
      expect(SettingValues.check(SettingValues.BackendState, s)).toEqual(
        Either.left(`expected a backend state 0 (up), 1 (down), 2 (drain), 3 (health-down), got ${s}`)
      )
    }
    expect(SettingValues.check(SettingValues.Port, 143)).toEqual(Either.right(143))
    for (const p of [0, 65536, 1.5]) expect(Either.isLeft(SettingValues.check(SettingValues.Port, p)), String(p)).toBe(true)
    expect(SettingValues.check(SettingValues.SocketMode, "0660")).toEqual(Either.right(0o660))
  })
})
