// Settings of the metrics endpoint (`metrics` section): loopback only by default; another address
// only with `metrics.allow_remote: true`; a wrong type or an unknown key in the section is refused.
import { describe, expect, it } from "@effect/vitest"
import { loadSettings } from "@doveroute/daemon"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const withConfig = <A, E>(config: unknown, f: (file: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-metrics-"))
      const file = path.join(dir, "c.json")
      fs.writeFileSync(file, JSON.stringify(config))
      return { dir, file }
    }),
    ({ file }) => f(file),
    ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

const load = (metrics: unknown) =>
  withConfig({ dict: { socket: "/tmp/x.sock" }, metrics }, (file) => Effect.either(loadSettings({ configFile: file })))

describe("settings: metrics section", () => {
  it.effect("loopback addresses are accepted without allow_remote", () =>
    Effect.gen(function*() {
      for (const [listen, host] of [["127.0.0.1:9180", "127.0.0.1"], ["[::1]:9180", "::1"], ["localhost:9180", "localhost"]]) {
        const r = yield* load({ listen })
        expect(Either.isRight(r) && r.right.metrics, listen).toEqual({ host, port: 9180 })
      }
    }))

  it.effect("any other address is refused, naming metrics.listen and allow_remote", () =>
    Effect.gen(function*() {
      for (const metrics of [{ listen: "0.0.0.0:9180" }, { listen: "192.168.1.5:9180", allow_remote: false }]) {
        const r = yield* load(metrics)
        expect(Either.isLeft(r), JSON.stringify(metrics)).toBe(true)
        if (Either.isLeft(r)) expect(r.left.message).toMatch(/metrics\.listen must be a loopback address.*allow_remote/)
      }
    }))

  it.effect("allow_remote: true admits a non-loopback address", () =>
    Effect.gen(function*() {
      const r = yield* load({ listen: "0.0.0.0:9180", allow_remote: true })
      expect(Either.isRight(r) && r.right.metrics).toEqual({ host: "0.0.0.0", port: 9180 })
      const v6 = yield* load({ listen: "[2001:db8::5]:9180", allow_remote: true })
      expect(Either.isRight(v6) && v6.right.metrics).toEqual({ host: "2001:db8::5", port: 9180 })
    }))

  it.effect("allow_remote must be a JSON boolean; an unknown key in the section is refused", () =>
    Effect.gen(function*() {
      const r = yield* load({ listen: "0.0.0.0:9180", allow_remote: "yes" })
      expect(Either.isLeft(r)).toBe(true)
      if (Either.isLeft(r)) expect(r.left.message).toMatch(/metrics\.allow_remote/)
      const typo = yield* load({ listen: "127.0.0.1:9180", allow_remte: true })
      expect(Either.isLeft(typo)).toBe(true)
      if (Either.isLeft(typo)) expect(typo.left.message).toMatch(/unknown key "metrics\.allow_remte".*allow_remote/)
    }))
})
