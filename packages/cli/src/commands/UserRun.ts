/**
 * What `doveroute user show|move|unassign|list` and `doveroute shard show|move` do (the options:
 * User.ts).
 *
 * A move takes the key's move lock (`doveroute_moves`; a second move of the same user at once
 * fails with "try again", exit 75), re-points the row with a compare-and-set, then waits
 * `cache.refresh` (+0.5 s) so that no daemon serves the old route once the command returns. With
 * `--kick` logins of the user are held (temp_fail) from before the move until `kick_command` ran on
 * every proxy (`kick_proxies`), so no new session starts while old ones are being kicked.
 *
 * @since 0.1.0
 */
import type { Settings } from "@doveroute/daemon"
import { normalizeUser, type RouteKey, Router, shardKey } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Clock, Duration, Effect, Option } from "effect"
import { keyOf, output, propagationWait, requireStrategy, runKicks, withReadStore, withStore } from "./AdminSupport.js"
import type { Parsed } from "./Lazy.js"
import type { listConfig, moveConfig, shardMoveConfig, shardShowConfig, showConfig, unassignConfig } from "./User.js"

/** Everything `user show` / `shard show` explain about a key. */
const explain = (settings: Settings, key: RouteKey, user: string | null) =>
  Effect.gen(function*() {
    const found = yield* AdminOps.findKey(settings.strategy, key)
    const moving = yield* AdminOps.moveInProgress(key)
    const preview = user !== null ? yield* Effect.flatMap(Router, (r) => r.preview(user)) : undefined
    const normalized = user !== null ? normalizeUser(user, settings.routing.normalize) : null
    return {
      user,
      normalized,
      strategy: settings.strategy,
      key,
      shard: normalized !== null ? shardKey(normalized) : typeof key === "number" ? key : null,
      rows: found.backendIds,
      mapped: found.backend !== null,
      backend: found.backend,
      state: found.backend?.stateName ?? null,
      moveInProgress: moving,
      candidates: preview?.candidates.map((b) => ({ id: b.id, hostname: b.hostname })) ?? null
    }
  })

const explainLines = (r: Effect.Effect.Success<ReturnType<typeof explain>>) => [
  ...(r.user !== null ? [`user ${r.user} (normalised ${r.normalized})`] : []),
  `strategy ${r.strategy}, key ${String(r.key)}${r.shard !== null ? `, shard ${r.shard}` : ""}`,
  r.backend !== null
    ? `row: ${String(r.key)} -> backend ${r.backend.id} ${r.backend.hostname}${r.backend.hostip ? " (" + r.backend.hostip + ")" : ""}, state ${r.backend.stateName}, weight ${r.backend.weight}`
    : r.rows.length > 1
      ? `rows: several (${r.rows.join(", ")}): lookups fail until fixed`
      : r.rows.length === 1
      ? `row: ${String(r.key)} -> backend ${r.rows[0]}, which does not exist: the next login replaces it, on one of: ${r.candidates?.map((c) => c.hostname).join(", ") || "(none: temp_fail)"}`
      : `no row: the next login places it on one of: ${r.candidates?.map((c) => c.hostname).join(", ") || "(none: temp_fail)"}`,
  ...(r.moveInProgress !== null ? [`move in progress${r.moveInProgress.holdLogins ? ", logins held" : ""} until ${new Date(r.moveInProgress.expiresAt).toISOString()}`] : [])
]

/** Lock, compare-and-set, wait for the caches, optionally kick (mapping only), unlock. */
const moveKey = (settings: Settings, key: RouteKey, target: string, opts: { readonly kickUser?: string | undefined; readonly wait: boolean }) =>
  Effect.gen(function*() {
    const to = yield* AdminOps.resolveBackend(target)
    const wait = opts.wait ? propagationWait(settings) : Duration.zero
    const hold = opts.kickUser !== undefined
    const now = yield* Clock.currentTimeMillis
    const expires = now + Duration.toMillis(wait) + Duration.toMillis(hold ? settings.routing.kickHold : Duration.seconds(30)) + 60_000
    yield* AdminOps.lockKey(key, hold, expires)
    return yield* Effect.gen(function*() {
      const r = yield* AdminOps.casMove(settings.strategy, key, to.id)
      if (!r.changed) return { key, from: r.from, to: to.id, toHostname: to.hostname, changed: false, waitedMs: 0, kicks: [] as ReadonlyArray<unknown> }
      yield* Effect.sleep(wait)
      const kicks = opts.kickUser !== undefined ? yield* runKicks(settings, opts.kickUser) : []
      return { key, from: r.from, to: to.id, toHostname: to.hostname, changed: true, waitedMs: Duration.toMillis(wait), kicks }
    }).pipe(Effect.ensuring(Effect.ignore(AdminOps.unlockKey(key))))
  })

const failedKicks = (kicks: ReadonlyArray<unknown>) => (kicks as ReadonlyArray<{ exitCode: number }>).filter((k) => k.exitCode !== 0)

export const show = (o: Parsed<typeof showConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const r = yield* explain(settings, yield* keyOf(o.user), o.user)
      yield* output(o.json, r, () => explainLines(r))
    }))

export const move = (o: Parsed<typeof moveConfig>) =>
  withStore(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "mapping", "with the shard strategy use: doveroute shard move N BACKEND")
      const key = yield* keyOf(o.user)
      const r = yield* moveKey(settings, key, o.backend, { kickUser: o.kick ? o.user : undefined, wait: !o.noWait })
      yield* output(o.json, { user: o.user, ...r }, () => [
        r.changed ? `moved ${o.user} from backend ${r.from ?? "(none)"} to ${r.to} (${r.toHostname})` : `${o.user} is already on backend ${r.to} (${r.toHostname})`,
        ...(r.kicks as ReadonlyArray<{ argv: ReadonlyArray<string>; exitCode: number; output: string }>).map((k) => `kick: ${k.argv.join(" ")}: exit ${k.exitCode} ${k.output}`)
      ])
      const bad = failedKicks(r.kicks)
      if (bad.length > 0) {
        return yield* new AdminOps.AdminError({ reason: "Refused", detail: `the user was moved but ${bad.length} kick command(s) failed` })
      }
    }))

export const unassign = (o: Parsed<typeof unassignConfig>) =>
  withStore(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "mapping", "with the shard strategy rows are shards")
      const key = yield* keyOf(o.user)
      yield* AdminOps.lockKey(key, false, Date.now() + 120_000)
      const r = yield* AdminOps.unassignKey(settings.strategy, key).pipe(Effect.ensuring(Effect.ignore(AdminOps.unlockKey(key))))
      if (r.backendIds.length > 0 && !o.noWait) yield* Effect.sleep(propagationWait(settings))
      yield* output(o.json, { user: o.user, key, removed: r.backendIds.length > 0, backendIds: r.backendIds }, () => [
        r.backendIds.length > 0 ? `unassigned ${o.user} (was on backend ${r.backendIds.join(", ")})` : `${o.user} had no row`
      ])
    }))

export const list = (o: Parsed<typeof listConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const b = Option.isSome(o.backend) ? yield* AdminOps.resolveBackend(o.backend.value) : undefined
      const names = new Map((yield* AdminOps.listBackends).map((x) => [x.id, x.hostname] as const))
      const rows = (yield* AdminOps.listMappings(settings.strategy, b?.id)).map((r) => ({
        [settings.strategy === "shard" ? "shard" : "user"]: r.key,
        backendId: r.backendId,
        backend: names.get(r.backendId) ?? null
      }))
      yield* output(o.json, rows, () => rows.map((r) => Object.values(r).join("\t")))
    }))

export const shardShow = (o: Parsed<typeof shardShowConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const isNumber = /^\d+$/.test(o.shard) && Number(o.shard) <= 0xffff
      const user = isNumber ? null : o.shard
      const n = isNumber ? Number(o.shard) : shardKey(normalizeUser(o.shard, settings.routing.normalize))
      const key = settings.strategy === "shard" ? n : (user ?? String(n))
      const r = yield* explain(settings, key, settings.strategy === "shard" ? null : user)
      const out = { ...r, user, shard: n }
      yield* output(o.json, out, () => explainLines(out))
    }))

export const shardMove = (o: Parsed<typeof shardMoveConfig>) =>
  withStore(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "shard", "with the mapping strategy use: doveroute user move USER BACKEND")
      if (o.shard < 0 || o.shard > 0xffff) return yield* new AdminOps.AdminError({ reason: "Invalid", detail: "a shard is 0..65535" })
      const r = yield* moveKey(settings, o.shard, o.backend, { wait: !o.noWait })
      yield* output(o.json, { shard: o.shard, ...r }, () => [
        r.changed ? `moved shard ${o.shard} from backend ${r.from ?? "(none)"} to ${r.to} (${r.toHostname})` : `shard ${o.shard} is already on backend ${r.to}`
      ])
    }))
