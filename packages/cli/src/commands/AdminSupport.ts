/**
 * Shared plumbing of the admin command implementations (the *Run.ts modules, loaded when their
 * command runs): settings + store for a command, output, kick commands.
 *
 * @since 0.1.0
 */
import { loadSettings, routingLayer, type Settings } from "@doveroute/daemon"
import { Router } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Console, Duration, Effect, Option } from "effect"
import { execFile } from "node:child_process"
import { type CommonValues, flagsFrom } from "../CommonOptions.js"

/** Load settings from common values plus extra overrides. */
export const settingsFrom = (
  c: CommonValues,
  extra: ReadonlyArray<readonly [string, Option.Option<string | ReadonlyArray<string>>]> = []
) =>
  loadSettings({
    configFile: Option.getOrUndefined(c.config),
    flags: flagsFrom(c, extra)
  })

/** Run `body` with the settings and the store (migrated like `serve`): commands that write. */
export const withStore = <A, E, R>(
  o: CommonValues,
  body: (settings: Settings) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(settingsFrom(o), (settings) => Effect.provide(body(settings), routingLayer(settings)))

/**
 * Run `body` with the settings and the store, looking only: a missing SQLite file is an error (no
 * file or directory is created) and a database that needs migration is refused ("run doveroute
 * migrate"). For `status`, `dump`, `backend list`, `user show|list`, `shard show`.
 */
export const withReadStore = <A, E, R>(
  o: CommonValues,
  body: (settings: Settings) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(settingsFrom(o), (settings) => Effect.provide(body(settings), routingLayer(settings, { readOnly: true })))

/** Print `json` (with --json) or the text lines. */
export const output = (json: boolean, value: unknown, text: () => ReadonlyArray<string>) =>
  json ? Console.log(JSON.stringify(value)) : Effect.forEach(text(), (l) => Console.log(l), { discard: true })

/** The routing key of a user name under the settings (normalisation + strategy). */
export const keyOf = (user: string) => Effect.map(Router, (r) => r.keyOf(user))

/** How long a command waits after a change so that no daemon serves the old route any more. */
export const propagationWait = (settings: Settings): Duration.Duration =>
  settings.routing.cache.enabled ? Duration.sum(settings.routing.cache.refresh, Duration.millis(500)) : Duration.zero

/** Fail unless the strategy is `want`. */
export const requireStrategy = (settings: Settings, want: "mapping" | "shard", hint: string) =>
  settings.strategy === want
    ? Effect.void
    : Effect.fail(new AdminOps.AdminError({ reason: "Invalid", detail: `this command needs --strategy ${want} (store strategy is ${settings.strategy}); ${hint}` }))

/** The result of one kick command. */
export interface KickResult {
  readonly proxy: string | null
  readonly argv: ReadonlyArray<string>
  readonly exitCode: number
  readonly output: string
}

/**
 * Expand `kick_command` for a user and proxy: split on whitespace into argv (no shell), `%u` = user,
 * `%h` = proxy (empty when no `kick_proxies` are configured), `%%` = `%`.
 */
export const kickArgv = (template: string, user: string, proxy: string | null): ReadonlyArray<string> =>
  template.trim().split(/\s+/).map((a) => a.replace(/%([uh%])/g, (_, c: string) => c === "u" ? user : c === "h" ? proxy ?? "" : "%"))

/** Run the kick command once per configured proxy (or once locally). Fails when one fails. */
export const runKicks = (settings: Settings, user: string) =>
  Effect.gen(function*() {
    const proxies: ReadonlyArray<string | null> = settings.routing.kickProxies.length > 0 ? settings.routing.kickProxies : [null]
    const results = yield* Effect.forEach(proxies, (proxy) =>
      Effect.async<KickResult>((resume) => {
        const argv = kickArgv(settings.routing.kickCommand, user, proxy)
        execFile(argv[0]!, argv.slice(1), { timeout: 30_000, encoding: "utf8" }, (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1
          resume(Effect.succeed({ proxy, argv, exitCode: code, output: (stdout + stderr).trim() || (err?.message ?? "") }))
        })
      }), { concurrency: "unbounded" })
    return results
  })

/** A tag argument of `backend tag`, `backend add --tag` and `user tag`: `none` (or empty) = untagged. */
export const tagArg = (t: string): string | null => (t === "none" || t === "" ? null : t)
