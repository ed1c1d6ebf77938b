// The per-lookup deadline (Lookup.layerWith, setting lookup_timeout) on a real SQLite store whose
// write lock another connection holds (BEGIN IMMEDIATE: readers go on, in either journal mode): a first login's insert keeps being retried until the query timeout
// (5 s here), but the lookup answers TempFail (Timeout) at its deadline; a mapped user is answered
// meanwhile; after the lock the same user is routed and has exactly one row.
import { describe, expect, it } from "@effect/vitest"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import { Lookup } from "@doveroute/frontends"
import { Router } from "@doveroute/routing"
import Database from "better-sqlite3"
import { Effect, Layer, Logger } from "effect"
import * as path from "node:path"
import { scopedTmp } from "./helpers.js"

describe("lookup deadline", () => {
  it.scopedLive("a routing decision that outlives lookup_timeout answers TempFail LookupTimeout; the user is routed once the store is back", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const file = path.join(dir, "r.db")
      const store = storeLayer({ url: parseStoreUrl(`sqlite:${file}`), strategy: "mapping", queryTimeout: "5 seconds", sqliteLocks: "retry" })
      const app = Lookup.layerWith({ deadline: "300 millis" }).pipe(
        Layer.provideMerge(Router.layer({ strategy: "mapping", downPolicy: "keep" })),
        Layer.provideMerge(store)
      )
      const ctx = yield* Layer.build(app).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
      yield* Admin.addBackend({ hostname: "127.0.0.2", hostip: null }).pipe(Effect.provide(ctx))
      const { lookup } = yield* Effect.provide(Lookup, ctx)
      const ask = (user: string) =>
        Effect.promise(async () => {
          const t0 = Date.now()
          const r = await lookup(user, "test")
          return { r, ms: Date.now() - t0 }
        })
      expect((yield* ask("mapped")).r._tag).toBe("Routed")

      const other = new Database(file)
      other.exec("BEGIN IMMEDIATE")
      const slow = yield* ask("newbie")
      const mapped = yield* ask("mapped")
      other.exec("COMMIT")
      expect(slow.r).toMatchObject({ _tag: "TempFail", reason: "LookupTimeout" })
      expect(slow.ms, "answered at the deadline, not at the 5 s query timeout").toBeLessThan(2000)
      expect(slow.ms).toBeGreaterThanOrEqual(290)
      // reads are not blocked by the writer's lock; the uncached router reads the row
      expect(mapped.r._tag).toBe("Routed")

      const again = yield* ask("newbie")
      expect(again.r._tag).toBe("Routed")
      expect(other.prepare(`SELECT COUNT(*) AS n FROM user_backend WHERE "user" = 'newbie'`).get()).toEqual({ n: 1 })
      other.close()
    }))
})
