// store_password with a PostgreSQL URL naming several hosts (`postgres://u@h1:5432,h2:5433/db`,
// which `new URL` refuses): the password goes into the one userinfo, shared by every host, with the
// same refusals as for one host; the settings load and keep the list.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings } from "@doveroute/daemon"
import { pgHostUrls } from "@doveroute/store"
import { Effect, Either, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const flags = (o: Record<string, string>) => new Map(Object.entries(o))

describe("store_password with several PostgreSQL hosts", () => {
  it.effect("is put into the URL for every host; a URL with its own password or no user is refused", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-hosts-"))
      try {
        const pass = path.join(dir, "pw")
        fs.writeFileSync(pass, "my p@ss/word\n", { mode: 0o600 })
        const s = yield* loadSettings({
          flags: flags({ store: "postgres://dvr@h1:5432,h2:5433/routes?target_session_attrs=read-write", store_password_file: pass })
        })
        expect(s.store._tag).toBe("Pg")
        const url = s.store._tag === "Pg" ? Redacted.value(s.store.url) : ""
        expect(url).toBe("postgres://dvr:my%20p%40ss%2Fword@h1:5432,h2:5433/routes?target_session_attrs=read-write")
        expect(pgHostUrls(url).map((h) => h.url)).toEqual([
          "postgres://dvr:my%20p%40ss%2Fword@h1:5432/routes?target_session_attrs=read-write",
          "postgres://dvr:my%20p%40ss%2Fword@h2:5433/routes?target_session_attrs=read-write"
        ])
        const failure = (store: string) =>
          Effect.map(Effect.either(loadSettings({ flags: flags({ store, store_password_file: pass }) })), (r) => Either.isLeft(r) ? r.left.message : "no failure")
        expect(yield* failure("postgres://dvr:inline@h1,h2/routes")).toMatch(/has a password and store_password is set too/)
        expect(yield* failure("postgres://h1,h2/routes")).toMatch(/store_password needs a user name/)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))
})
