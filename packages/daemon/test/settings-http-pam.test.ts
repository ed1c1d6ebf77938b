// Settings for the HTTP route endpoint (`http` section, --http-listen) and auth_mode=pam.
import { describe, expect, it } from "@effect/vitest"
import { authenticatorFor, listenersLayer, loadSettings } from "@doveroute/daemon"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const flags = (o: Record<string, string | ReadonlyArray<string>>) => new Map(Object.entries(o))

describe("settings: http section", () => {
  it.effect("no http.listen: no HTTP listener", () =>
    Effect.gen(function*() {
      const s = yield* loadSettings({ flags: flags({ "dict.socket": "/tmp/x.sock" }) })
      expect(s.http).toBeUndefined()
    }))

  it.effect("loopback TCP from a flag; a UNIX socket with mode/group from the config file", () =>
    Effect.gen(function*() {
      const tcp = yield* loadSettings({ flags: flags({ "http.listen": "127.0.0.1:20180", "http.token": "t0k" }) })
      expect(tcp.http?.listen).toEqual({ _tag: "Tcp", host: "127.0.0.1", port: 20180 })
      expect(listenersLayer(tcp)).toHaveLength(1)
      const v6 = yield* loadSettings({ flags: flags({ "http.listen": "[::1]:20180", "http.token": "t0k" }) })
      expect(v6.http?.listen).toEqual({ _tag: "Tcp", host: "::1", port: 20180 })
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-set-"))
      const file = path.join(dir, "c.json")
      fs.writeFileSync(file, JSON.stringify({ http: { listen: "/run/doveroute/http.sock", mode: "0660", group: "dovecot" } }))
      const unix = yield* loadSettings({ configFile: file })
      expect(unix.http).toEqual({ listen: { _tag: "Unix", path: "/run/doveroute/http.sock" }, mode: 0o660, owner: undefined, group: "dovecot" })
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("a non-loopback address is refused at start, naming http.listen", () =>
    Effect.gen(function*() {
      for (const listen of ["0.0.0.0:20180", "192.168.1.5:80", "[::]:80"]) {
        const r = yield* Effect.either(loadSettings({ flags: flags({ "http.listen": listen }) }))
        expect(Either.isLeft(r), listen).toBe(true)
        if (Either.isLeft(r)) {
          expect(r.left.message).toMatch(/http.*listen/)
          expect(r.left.message).toMatch(/refusing to listen/)
        }
      }
      const bad = yield* Effect.either(loadSettings({ flags: flags({ "http.listen": "localhost:80" }) }))
      expect(Either.isLeft(bad) && bad.left.message).toMatch(/not an IP address/)
    }))
})

describe("settings: auth_mode = pam", () => {
  it.effect("pam mode with the default service (dovecot) or a configured one", () =>
    Effect.gen(function*() {
      const s = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.auth_mode": "pam" }) })
      expect(s.auth?.authMode).toBe("pam")
      expect(s.auth?.pamService).toBe("dovecot")
      const t = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.auth_mode": "pam", "auth.pam_service": "imap-doveroute" }) })
      expect(t.auth?.pamService).toBe("imap-doveroute")
      // the real binding loads (node-linux-pam is installed and built)
      expect(authenticatorFor(t.auth!).name).toBe("pam")
      expect(authenticatorFor(t.auth!).verifiesPassword).toBe(true)
    }))

  it.effect("pam with a master password, or a bad service name, is refused", () =>
    Effect.gen(function*() {
      const both = yield* Effect.either(loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.auth_mode": "pam", "auth.password": "x" }) }))
      expect(Either.isLeft(both) && both.left.message).toMatch(/auth_mode is pam/)
      const bad = yield* Effect.either(loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.auth_mode": "pam", "auth.pam_service": "../etc/x" }) }))
      expect(Either.isLeft(bad) && bad.left.message).toMatch(/pam_service/)
    }))

  it.effect("nopassword and password modes still work without PAM", () =>
    Effect.gen(function*() {
      const n = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock" }) })
      expect(authenticatorFor(n.auth!).name).toBe("nopassword")
      const p = yield* loadSettings({ flags: flags({ "auth.socket": "/tmp/a.sock", "auth.password": "m" }) })
      expect(authenticatorFor(p.auth!).name).toBe("password")
    }))
})
