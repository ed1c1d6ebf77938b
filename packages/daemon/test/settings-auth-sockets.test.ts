// Settings for the auth sockets: the auth server section, the two relays and backend ports, from
// flags, DOVEROUTE_* environment variables and the JSON config file.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings } from "@doveroute/daemon"
import { Duration, Effect, Either, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const flags = (o: Record<string, string | ReadonlyArray<string>>) => new Map(Object.entries(o))

const withEnv = <A, E>(env: Record<string, string>, eff: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const old: Record<string, string | undefined> = {}
      for (const [k, v] of Object.entries(env)) {
        old[k] = process.env[k]
        process.env[k] = v
      }
      return old
    }),
    () => eff,
    (old) =>
      Effect.sync(() => {
        for (const [k, v] of Object.entries(old)) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      })
  )

describe("settings: auth server, relays, ports", () => {
  it.effect("no auth section: everything undefined, no ports", () =>
    Effect.gen(function*() {
      const s = yield* loadSettings({ flags: flags({ "dict.socket": "/tmp/x.sock" }) })
      expect(s.auth).toBeUndefined()
      expect(s.loginRelay).toBeUndefined()
      expect(s.userdbRelay).toBeUndefined()
      expect(s.ports.fallback).toBeUndefined()
      expect(s.ports.byProtocol.size).toBe(0)
    }))

  it.effect("--auth-socket alone: nopassword, 2 s failure delay; --password implies password mode and stays redacted", () =>
    Effect.gen(function*() {
      const a = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.mode": "0666" }) })
      expect(a.auth).toMatchObject({ path: "/tmp/a.sock", mode: 0o666, authMode: "nopassword", password: undefined })
      expect(Duration.toMillis(a.auth!.failureDelay)).toBe(2000)
      const b = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password": "s3cr3t-pw" }) })
      expect(b.auth!.authMode).toBe("password")
      expect(Redacted.value(b.auth!.password!)).toBe("s3cr3t-pw")
      expect(JSON.stringify(b.auth)).not.toContain("s3cr3t-pw")
      expect(String(b.auth!.password)).not.toContain("s3cr3t-pw")
    }))

  it.effect("DOVEROUTE_AUTH_PASSWORD and DOVEROUTE_AUTH_FAILURE_DELAY from the environment", () =>
    withEnv(
      { DOVEROUTE_AUTH_PASSWORD: "from-env", DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis", DOVEROUTE_PORT: "143,pop3=110" },
      Effect.gen(function*() {
        const s = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock" }) })
        expect(s.auth!.authMode).toBe("password")
        expect(Redacted.value(s.auth!.password!)).toBe("from-env")
        expect(Duration.toMillis(s.auth!.failureDelay)).toBe(0)
        expect(s.ports.fallback).toBe(143)
        expect(s.ports.byProtocol.get("pop3")).toBe(110)
      })
    ))

  it.effect("config file sections", () =>
    Effect.gen(function*() {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "dvr-set-")), "c.json")
      fs.writeFileSync(
        file,
        JSON.stringify({
          port: ["25143", "lmtp=24"],
          auth: { socket: "/run/a.sock", mode: "0666", auth_mode: "password", password: "file-pw", failure_delay: "500 millis" },
          login_relay: { socket: "/run/dovecot/login/doveroute", mode: "0666", upstream: "/run/dovecot/login/login" },
          userdb_relay: { socket: "/run/dovecot/doveroute-userdb", upstream: "/run/dovecot/auth-userdb", group: "dovecot" }
        }),
        { mode: 0o600 } // it holds auth.password: a world-readable one is refused
      )
      const s = yield* loadSettings({ configFile: file })
      expect(Duration.toMillis(s.auth!.failureDelay)).toBe(500)
      expect(Redacted.value(s.auth!.password!)).toBe("file-pw")
      expect(s.loginRelay).toEqual({ path: "/run/dovecot/login/doveroute", mode: 0o666, owner: undefined, group: undefined, upstream: "/run/dovecot/login/login" })
      expect(s.userdbRelay).toEqual({ path: "/run/dovecot/doveroute-userdb", mode: 0o660, owner: undefined, group: "dovecot", upstream: "/run/dovecot/auth-userdb" })
      expect(s.ports.fallback).toBe(25143)
      expect(s.ports.byProtocol.get("lmtp")).toBe(24)
      // flags win over the file
      const f = yield* loadSettings({ configFile: file, flags: flags({ port: ["1143"], "auth.password": "flag-pw" }) })
      expect(f.ports.fallback).toBe(1143)
      expect(Redacted.value(f.auth!.password!)).toBe("flag-pw")
    }))

  it.effect("invalid combinations are refused with the key named", () =>
    Effect.gen(function*() {
      const bad = (o: Record<string, string | ReadonlyArray<string>>) => Effect.either(loadSettings({ flags: flags(o) }))
      const msg = (e: Either.Either<unknown, { message: string }>) => (Either.isLeft(e) ? e.left.message : "accepted")
      expect(msg(yield* bad({ "auth.socket": "/a", "auth.auth_mode": "password" }))).toMatch(/DOVEROUTE_AUTH_PASSWORD/)
      expect(msg(yield* bad({ "auth.socket": "/a", "auth.auth_mode": "nopassword", "auth.password": "x" }))).toMatch(/auth_mode/)
      expect(msg(yield* bad({ "auth.socket": "/a", "auth.password": "" }))).toMatch(/must not be empty/)
      expect(msg(yield* bad({ "auth.socket": "/a", "auth.auth_mode": "kerberos" }))).toMatch(/auth_mode/)
      expect(msg(yield* bad({ "login_relay.socket": "/a" }))).toMatch(/login_relay\.upstream/)
      expect(msg(yield* bad({ "userdb_relay.upstream": "/a" }))).toMatch(/userdb_relay\.socket/)
      expect(msg(yield* bad({ port: ["imap=0"] }))).toMatch(/invalid port/)
      expect(msg(yield* bad({ port: ["x"] }))).toMatch(/invalid port/)
    }))

  it.effect("two listeners on one socket path, or a relay pointed at our own socket, are refused naming both keys", () =>
    Effect.gen(function*() {
      const same = yield* Effect.either(loadSettings({ flags: flags({ "dict.socket": "/run/x/a.sock", "auth.socket": "/run/x/../x/a.sock" }) }))
      expect(Either.isLeft(same)).toBe(true)
      if (Either.isLeft(same)) expect(same.left.detail).toMatch(/dict\.socket and auth\.socket name the same socket/)
      const loop = yield* Effect.either(loadSettings({ flags: flags({ "login_relay.socket": "/run/x/l.sock", "login_relay.upstream": "/run/x/l.sock" }) }))
      expect(Either.isLeft(loop)).toBe(true)
      if (Either.isLeft(loop)) expect(loop.left.detail).toMatch(/login_relay\.upstream \/run\/x\/l\.sock is doveroute's own login_relay\.socket/)
      const ok = yield* loadSettings({ flags: flags({ "dict.socket": "/run/x/a.sock", "auth.socket": "/run/x/b.sock" }) })
      expect([ok.dict?.path, ok.auth?.path]).toEqual(["/run/x/a.sock", "/run/x/b.sock"])
    }))
})
