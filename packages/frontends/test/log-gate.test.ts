// The live log level gate (ListenerLog.LiveLogLevel): with Effect's minimum level at Debug (as the
// daemon's SIGHUP-reloadable logger sets it), socket code and the lookup bridge log a Debug line
// only while the live level is Debug, and follow a change of it without a rebuild.
import { describe, expect, it } from "@effect/vitest"
import { Admin, parseStoreUrl, storeLayer } from "@doveroute/store"
import { ListenerLog, Lookup } from "@doveroute/frontends"
import { Router } from "@doveroute/routing"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as path from "node:path"
import { scopedTmp } from "./helpers.js"

describe("live log level gate", () => {
  it.scopedLive("Debug lines of the lookup and of listener code follow the live level", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const lines: Array<string> = []
      const capture = Logger.make<unknown, void>((o) => lines.push(`${o.logLevel.label} ${String(o.message)}`))
      const live = { level: LogLevel.Info as LogLevel.LogLevel }
      const store = storeLayer({ url: parseStoreUrl(`sqlite:${path.join(dir, "r.db")}`), strategy: "mapping" })
      const app = Lookup.layer.pipe(
        Layer.provideMerge(Router.layer({ strategy: "mapping", downPolicy: "keep" })),
        Layer.provideMerge(store),
        Layer.provideMerge(Layer.succeed(ListenerLog.LiveLogLevel, { current: () => live.level }))
      )
      const ctx = yield* Layer.build(app).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      yield* Admin.addBackend({ hostname: "127.0.0.2", hostip: null }).pipe(Effect.provide(ctx))
      const lookup = (yield* Effect.provide(Lookup, ctx)).lookup
      const log = yield* ListenerLog.runtimeLog("test").pipe(
        Effect.provide(ctx),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Effect.provide(Logger.minimumLogLevel(LogLevel.Debug))
      )
      const settle = Effect.promise(() => new Promise((r) => setTimeout(r, 20)))

      expect((yield* Effect.promise(() => lookup("alice", "dict")))._tag).toBe("Routed")
      log("Debug", "listener debug line", {})
      log("Info", "listener info line", {})
      yield* settle
      // (the migrator's own Debug lines go to the logger, which filters them in the daemon)
      expect(lines.filter((l) => l === "DEBUG routed" || l === "DEBUG listener debug line"), "nothing below the live level Info").toEqual([])
      expect(lines).toContain("INFO listener info line")

      live.level = LogLevel.Debug
      expect((yield* Effect.promise(() => lookup("bob", "dict")))._tag).toBe("Routed")
      log("Debug", "listener debug line", {})
      yield* settle
      expect(lines).toContain("DEBUG routed")
      expect(lines).toContain("DEBUG listener debug line")
    }))
})
