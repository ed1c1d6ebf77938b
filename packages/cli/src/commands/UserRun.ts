/**
 * What `doveroute user show|move|unassign|list|tag` and `doveroute shard show|move` do (the options:
 * User.ts; `user move-many` and shard ranges: BulkRun.ts), imported when one of them runs.
 *
 * @since 0.1.0
 */
import type { Settings } from "@doveroute/daemon"
import { domainTag, normalizeUser, resolveTag, type RouteKey, Router, shardKey } from "@doveroute/routing"
import { AdminOps, UserTags } from "@doveroute/store"
import { Effect, Option } from "effect"
import { keyOf, output, propagationWait, requireStrategy, tagArg, withReadStore, withStore } from "./AdminSupport.js"
import { moveShardRange, parseShardRange, storeFor } from "./BulkRun.js"
import type { Parsed } from "./Lazy.js"
import { moveKeys, planMoves } from "./Moves.js"
import type {
  listConfig,
  moveConfig,
  shardMoveConfig,
  shardShowConfig,
  showConfig,
  tagConfig,
  tagsConfig,
  unassignConfig
} from "./User.js"

/** Everything `user show` / `shard show` explain about a key. */
const explain = (settings: Settings, key: RouteKey, user: string | null) =>
  Effect.gen(function*() {
    const found = yield* AdminOps.findKey(settings.strategy, key)
    const moving = yield* AdminOps.moveInProgress(key)
    const preview = user !== null ? yield* Effect.flatMap(Router, (r) => r.preview(user)) : undefined
    const normalized = user !== null ? normalizeUser(user, settings.routing.normalize) : null
    const storeTag = settings.strategy === "mapping" ? yield* UserTags.userTag(key) : null
    const tag = preview?.tag ?? null
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
      storeTag,
      domainTag: user !== null ? domainTag(settings.routing.tags.domains, user) ?? null : null,
      tag,
      tagSource: preview?.tagSource ?? "none",
      tagMismatch: found.backend !== null && found.backend.tag !== tag,
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
  `tag ${r.tag ?? "none"} (from ${r.tagSource}; store ${r.storeTag ?? "none"}, domain rule ${r.domainTag ?? "none"})` +
    (r.backend !== null ? `, backend tag ${r.backend.tag ?? "none"}${r.tagMismatch ? ": another pool, the user stays there until moved (doveroute user move)" : ""}` : ""),
  ...(r.moveInProgress !== null ? [`move in progress${r.moveInProgress.holdLogins ? ", logins held" : ""} until ${new Date(r.moveInProgress.expiresAt).toISOString()}`] : [])
]

/**
 * One key through the move engine (Moves.ts), failing as a single move always did: 75 when the
 * key is being moved by another command or changed meanwhile, 1 otherwise. A failed kick is
 * reported in `kicks` (the key was moved). `dryRun`: what would change, nothing written.
 */
const moveOne = (settings: Settings, key: RouteKey, target: string, opts: { readonly kickUser?: string | undefined; readonly wait: boolean; readonly dryRun: boolean }) =>
  Effect.gen(function*() {
    const to = yield* AdminOps.resolveBackend(target)
    const item = { key, to, kickUser: opts.kickUser }
    const s = opts.dryRun ? yield* planMoves(settings, [item]) : yield* moveKeys(settings, [item], { wait: opts.wait, parallel: 1 })
    const r = s.results[0]!
    if (r.status === "skipped") return yield* new AdminOps.AdminError({ reason: "TryAgain", detail: r.detail ?? "changed meanwhile; try again" })
    if (r.status === "failed" && r.kicks.length === 0) return yield* new AdminOps.AdminError({ reason: "Refused", detail: r.detail ?? "move failed" })
    const changed = r.status === "moved" || r.status === "would-move" || r.status === "failed"
    return { key, from: r.from, to: r.to, toHostname: r.toHostname, changed, dryRun: opts.dryRun, waitedMs: s.waitedMs, kicks: r.kicks }
  })

const moveText = (what: string, r: Effect.Effect.Success<ReturnType<typeof moveOne>>) => [
  r.changed
    ? `${r.dryRun ? "would move" : "moved"} ${what} from backend ${r.from ?? "(none)"} to ${r.to} (${r.toHostname})`
    : `${what} is already on backend ${r.to} (${r.toHostname})`,
  ...r.kicks.map((k) => `kick: ${k.argv.join(" ")}: exit ${k.exitCode} ${k.output}`)
]

export const show = (o: Parsed<typeof showConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const r = yield* explain(settings, yield* keyOf(o.user), o.user)
      yield* output(o.json, r, () => explainLines(r))
    }))

export const move = (o: Parsed<typeof moveConfig>) =>
  storeFor(o.dryRun)(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "mapping", "with the shard strategy use: doveroute shard move N BACKEND")
      const key = yield* keyOf(o.user)
      const r = yield* moveOne(settings, key, o.backend, { kickUser: o.kick ? o.user : undefined, wait: !o.noWait, dryRun: o.dryRun })
      yield* output(o.json, { user: o.user, ...r }, () => moveText(o.user, r))
      const bad = r.kicks.filter((k) => k.exitCode !== 0)
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
  storeFor(o.dryRun)(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "shard", "with the mapping strategy use: doveroute user move USER BACKEND")
      const range = parseShardRange(o.shard)
      if (range === undefined) return yield* new AdminOps.AdminError({ reason: "Invalid", detail: "a shard is 0..65535; a range is N-M with N <= M" })
      if (range.first !== range.last || o.shard.includes("-")) return yield* moveShardRange(o, settings, range.first, range.last, o.backend)
      const r = yield* moveOne(settings, range.first, o.backend, { wait: !o.noWait, dryRun: o.dryRun })
      yield* output(o.json, { shard: range.first, ...r }, () => moveText(`shard ${range.first}`, r))
    }))

export const tag = (o: Parsed<typeof tagConfig>) =>
  storeFor(o.dryRun)(o, (settings) =>
    Effect.gen(function*() {
      const key = yield* keyOf(o.user)
      const want = tagArg(o.tag)
      const r = yield* UserTags.setUserTag(settings.strategy, key, want, o.dryRun)
      const backend = (yield* AdminOps.findKey(settings.strategy, key)).backend
      // the tag a placement would use without a request tag (Tags.ts precedence)
      const effective = resolveTag(r.after ?? undefined, undefined, settings.routing.tags.domains, o.user).tag
      const mismatch = backend !== null && backend.tag !== effective
      const out = { user: o.user, key, before: r.before, tag: r.after, changed: r.changed, dryRun: r.dryRun, backend, mismatch }
      yield* output(o.json, out, () => [
        `${o.user}: tag ${r.before ?? "none"} -> ${want ?? "none"}${r.dryRun ? " (dry run, nothing changed)" : ""}`,
        ...(mismatch
          ? [`note: ${o.user} is mapped to backend ${backend.hostname} (tag ${backend.tag ?? "none"}) and stays there; move it with doveroute user move`]
          : [])
      ])
    }))

export const tags = (o: Parsed<typeof tagsConfig>) =>
  withReadStore(o, () =>
    Effect.flatMap(UserTags.listUserTags, (rows) => output(o.json, rows, () => rows.map((r) => `${r.user}\t${r.tag}`))))
