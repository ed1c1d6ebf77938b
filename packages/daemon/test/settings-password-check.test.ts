// Issue 11: doveroute's own reply fields never admit a login that no one checks. `nopassword`
// with `proxy_flag` proxy_maybe (a user whose backend is this Dovecot server logs in locally with
// any password) or none (every user does) is refused wherever settings are resolved: at start,
// on SIGHUP reload and by every admin command. The shipped config/doveroute.json passes.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings, reloadRisk, settingsAfterReload } from "@doveroute/daemon"
import { parseExtraField, uncheckedLoginRisk } from "@doveroute/routing"
import { Effect, Either } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const flags = (o: Record<string, string | ReadonlyArray<string>>) => new Map(Object.entries(o))
const load = (o: Record<string, string | ReadonlyArray<string>>, configFile?: string) =>
  Effect.either(loadSettings({ flags: flags({ "dict.socket": "/tmp/dvr-never.sock", ...o }), configFile }))

describe("nopassword needs proxy_flag proxy", () => {
  it("the rule itself: only nopassword with proxy_maybe or none is a risk", () => {
    const nopw = [parseExtraField("nopassword")]
    expect(uncheckedLoginRisk("proxy_maybe", nopw)).toMatch(/^extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks: a user whose backend is this Dovecot server logs in locally with any password/)
    expect(uncheckedLoginRisk("none", nopw)).toMatch(/proxy_flag none admits logins no one checks: without a proxy flag every user logs in locally/)
    expect(uncheckedLoginRisk("proxy_maybe", [parseExtraField("nopassword=y")])).toBeDefined()
    expect(uncheckedLoginRisk("proxy", nopw)).toBeUndefined()
    expect(uncheckedLoginRisk("proxy_maybe", [parseExtraField("noauthenticate"), parseExtraField("port=143")])).toBeUndefined()
    expect(uncheckedLoginRisk("proxy_maybe", [parseExtraField("password=master")])).toBeUndefined()
    expect(uncheckedLoginRisk("none", [])).toBeUndefined()
  })

  it.effect("refused: nopassword with the mapping default proxy_maybe, and with none; the message names the risk and both fixes", () =>
    Effect.gen(function*() {
      for (const extra of [{}, { proxy_flag: "proxy_maybe" }, { proxy_flag: "none" }]) {
        const r = yield* load({ extra_fields: ["nopassword", "port=143"], ...extra })
        expect(Either.isLeft(r), JSON.stringify(extra)).toBe(true)
        if (Either.isLeft(r)) {
          const msg = r.left.detail
          expect(msg.split("\n")).toHaveLength(1)
          expect(msg).toMatch(/extra_fields nopassword with proxy_flag (proxy_maybe|none) admits logins no one checks/)
          expect(msg).toContain("fix: proxy_flag proxy")
          expect(msg).toContain("95-doveroute-dict-chain.conf")
          expect(msg).toContain("95-doveroute-http-chain.conf")
        }
      }
    }))

  it.effect("accepted: nopassword with proxy (also the shard default), noauthenticate with proxy_maybe, proxy_maybe without nopassword", () =>
    Effect.gen(function*() {
      const ok = [
        { extra_fields: ["nopassword"], proxy_flag: "proxy" },
        { extra_fields: ["nopassword"], strategy: "shard" },
        { extra_fields: ["noauthenticate"] },
        { extra_fields: ["port=143"] }
      ]
      for (const o of ok) {
        const r = yield* load(o)
        expect(Either.isRight(r), `${JSON.stringify(o)}: ${Either.isLeft(r) ? r.left.detail : ""}`).toBe(true)
      }
      const shard = yield* load({ extra_fields: ["nopassword"], strategy: "shard", proxy_flag: "proxy_maybe" })
      expect(Either.isLeft(shard)).toBe(true)
    }))

  it.effect("refused: a routing field as an extra field (proxy_maybe beside proxy=y logs a self-backend user in locally), from flags and env", () =>
    Effect.gen(function*() {
      for (const extra of [["nopassword", "proxy_maybe"], ["proxy_maybe=y"], ["proxy"], ["host=10.0.0.9"], ["hostip=10.0.0.9"], ["HOST=x"]]) {
        const r = yield* load({ extra_fields: extra, proxy_flag: "proxy" })
        expect(Either.isLeft(r), JSON.stringify(extra)).toBe(true)
        if (Either.isLeft(r)) expect(r.left.detail).toMatch(/invalid extra field "[A-Za-z_]+": reserved/)
      }
      const old = process.env["DOVEROUTE_EXTRA_FIELDS"]
      process.env["DOVEROUTE_EXTRA_FIELDS"] = "nopassword,proxy_maybe"
      try {
        const r = yield* load({ proxy_flag: "proxy" })
        expect(Either.isLeft(r)).toBe(true)
        if (Either.isLeft(r)) expect(r.left.detail).toMatch(/reserved/)
      } finally {
        if (old === undefined) delete process.env["DOVEROUTE_EXTRA_FIELDS"]
        else process.env["DOVEROUTE_EXTRA_FIELDS"] = old
      }
    }))

  it.effect("a reload is checked on what would run: the running proxy_flag with the new extra fields", () =>
    Effect.gen(function*() {
      const running = Either.getOrThrow(yield* load({}))
      expect(running.proxyFlag).toBe("proxy_maybe")
      // the new file alone passes (proxy + nopassword), but proxy_flag needs a restart
      const next = Either.getOrThrow(yield* load({ proxy_flag: "proxy", extra_fields: ["nopassword"] }))
      const after = settingsAfterReload(running, next)
      expect(after.proxyFlag).toBe("proxy_maybe")
      expect(after.extraFields.map((f) => f.key)).toEqual(["nopassword"])
      expect(reloadRisk(running, next)).toMatch(/^with the running proxy_flag proxy_maybe \(proxy_flag needs a restart\): extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks/)
      // safe: the running proxy + nopassword; proxy_maybe running + a harmless field
      const proxied = Either.getOrThrow(yield* load({ proxy_flag: "proxy", extra_fields: ["nopassword"] }))
      expect(reloadRisk(proxied, next)).toBeUndefined()
      expect(reloadRisk(proxied, Either.getOrThrow(yield* load({ proxy_flag: "proxy", extra_fields: ["nopassword", "port=143"] })))).toBeUndefined()
      expect(reloadRisk(running, Either.getOrThrow(yield* load({ extra_fields: ["port=143"] })))).toBeUndefined()
    }))

  it.effect("the environment is checked the same way (DOVEROUTE_EXTRA_FIELDS)", () =>
    Effect.gen(function*() {
      const old = process.env["DOVEROUTE_EXTRA_FIELDS"]
      process.env["DOVEROUTE_EXTRA_FIELDS"] = "nopassword"
      try {
        const r = yield* load({})
        expect(Either.isLeft(r)).toBe(true)
      } finally {
        if (old === undefined) delete process.env["DOVEROUTE_EXTRA_FIELDS"]
        else process.env["DOVEROUTE_EXTRA_FIELDS"] = old
      }
    }))

  it.effect("the shipped config/doveroute.json is accepted and proxies every login; with proxy_flag proxy_maybe on top it is refused", () =>
    Effect.gen(function*() {
      const file = path.join(REPO, "config", "doveroute.json")
      const shipped = yield* load({}, file)
      expect(Either.isRight(shipped), Either.isLeft(shipped) ? shipped.left.detail : "").toBe(true)
      if (Either.isRight(shipped)) {
        expect(shipped.right.proxyFlag).toBe("proxy")
        expect(shipped.right.extraFields.map((f) => f.key)).toContain("nopassword")
      }
      const unsafe = yield* load({ proxy_flag: "proxy_maybe" }, file)
      expect(Either.isLeft(unsafe)).toBe(true)
    }))
})
