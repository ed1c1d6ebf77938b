/**
 * Bulk moves: `doveroute backend flush B`, `doveroute user move-many FILE|- B` and the range form
 * of `doveroute shard move N-M B`, all through the move engine (Moves.ts) with `--kick`,
 * `--parallel N`, `--dry-run` and `--no-wait` (the options: BulkOptions.ts, Backend.ts, User.ts).
 * Exit codes: 0 every key moved or already there, 75 some were skipped because they changed
 * meanwhile (re-run to finish), 1 some failed.
 *
 * @since 0.1.0
 */
import type { Settings } from "@doveroute/daemon"
import { Placement, type RouteKey } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import { keyOf, output, requireStrategy, withReadStore, withStore } from "./AdminSupport.js"
import type { flushConfig } from "./Backend.js"
import type { BulkValues } from "./BulkOptions.js"
import type { Parsed } from "./Lazy.js"
import { type MoveItem, moveKeys, planMoves, progressLine, summaryExitCode, summaryLines } from "./Moves.js"
import type { moveManyConfig } from "./User.js"

/** Commands that only look under --dry-run: the read-only store (no migration, nothing created). */
export const storeFor = (dryRun: boolean) => dryRun ? withReadStore : withStore

const invalid = (detail: string) => new AdminOps.AdminError({ reason: "Invalid", detail })

/** Plan or run the moves, print the summary and set the exit code. */
const runBulk = (o: BulkValues, settings: Settings, label: string, items: ReadonlyArray<MoveItem>) =>
  Effect.gen(function*() {
    if (o.parallel < 1) return yield* invalid("--parallel must be at least 1")
    const summary = o.dryRun
      ? yield* planMoves(settings, items)
      : yield* moveKeys(settings, items, { wait: !o.noWait, parallel: o.parallel, progress: o.json ? undefined : progressLine(label) })
    yield* output(o.json, summary, () => summaryLines(label, summary, (k) => (settings.strategy === "shard" ? "shard " : "") + String(k)))
    const code = summaryExitCode(summary)
    if (code !== 0) yield* Effect.sync(() => { process.exitCode = code })
    return summary
  })

/** `--kick` needs user names: refused under the shard strategy. */
const checkKick = (settings: Settings, kick: boolean | undefined) =>
  kick === true && settings.strategy === "shard"
    ? Effect.fail(invalid("--kick needs the mapping strategy: the users of a shard are not known"))
    : Effect.void

/**
 * A target per key among the backends that may receive new users (state 0, weight > 0) other
 * than `from`, of `from`'s tag (its users stay in its pool; untagged: untagged backends), by the
 * `placement` setting; `least-loaded` counts the keys it already gave out.
 */
const placeAll = (settings: Settings, backends: ReadonlyArray<AdminOps.BackendRow>, from: AdminOps.BackendRow, count: number) => {
  const weights = new Map(backends.map((b) => [b.id, b.weight] as const))
  const cands = Placement.candidates(backends.filter((b) => b.id !== from.id), weights, from.tag)
  const loads = new Map(backends.map((b) => [b.id, { weight: b.weight, users: b.users }] as const))
  const out: Array<AdminOps.BackendRow> = []
  for (let i = 0; i < count && cands.length > 0; i++) {
    const p = settings.routing.placement
    const pick = (p === "least-loaded" ? Placement.chooseLeastLoaded(cands, loads) : p === "weighted" ? Placement.chooseWeighted(cands, weights) : Placement.choose(cands)) as AdminOps.BackendRow | undefined
    if (pick === undefined) break
    out.push(pick)
    const l = loads.get(pick.id)!
    loads.set(pick.id, { weight: l.weight, users: l.users + 1 })
  }
  return out
}

export const flush = (o: Parsed<typeof flushConfig>) =>
  storeFor(o.dryRun)(o, (settings) =>
    Effect.gen(function*() {
      yield* checkKick(settings, o.kick)
      const b = yield* AdminOps.resolveBackend(o.backend)
      const to = Option.isSome(o.to) ? yield* AdminOps.resolveBackend(o.to.value) : undefined
      if (to?.id === b.id) return yield* invalid("--to names the backend being flushed")
      if (b.state === 0 && b.weight > 0) {
        return yield* new AdminOps.AdminError({
          reason: "Refused",
          detail: `backend ${b.hostname} is up: new users would still be placed on it; run doveroute backend drain ${b.hostname} first`
        })
      }
      const backends = yield* AdminOps.listBackends
      const keys = (yield* AdminOps.listMappings(settings.strategy, b.id)).map((m) => m.key)
      const targets = to !== undefined ? keys.map(() => to) : placeAll(settings, backends, b, keys.length)
      if (targets.length < keys.length) {
        return yield* new AdminOps.AdminError({
          reason: "Refused",
          detail: `no other backend with state 0 and weight > 0 ${b.tag === null ? "(untagged)" : `in tag ${b.tag}`} to place ${keys.length} ${settings.strategy === "shard" ? "shards" : "users"} on; give --to BACKEND`
        })
      }
      const items = keys.map((key, i): MoveItem => ({ key, to: targets[i]!, expectFrom: b.id, kickUser: o.kick ? String(key) : undefined }))
      yield* runBulk(o, settings, `flush ${b.hostname}`, items)
    }))

/** User names of a list file (or stdin for `-`): one per line, blank lines and `#` comments skipped. */
const readUserList = (file: string) =>
  Effect.try({
    try: () => fs.readFileSync(file === "-" ? 0 : file, "utf8"),
    catch: (e) => invalid(`cannot read ${file}: ${(e as Error).message}`)
  }).pipe(Effect.flatMap((text) => {
    const users: Array<string> = []
    const lines = text.split(/\r?\n/)
    for (let i = 0; i < lines.length; i++) {
      const u = lines[i]!.trim()
      if (u === "" || u.startsWith("#")) continue
      if (/[\t\x00]/.test(u)) return Effect.fail(invalid(`${file} line ${i + 1}: invalid user name`))
      users.push(u)
    }
    return Effect.succeed(users)
  }))

export const moveMany = (o: Parsed<typeof moveManyConfig>) =>
  storeFor(o.dryRun)(o, (settings) =>
    Effect.gen(function*() {
      yield* requireStrategy(settings, "mapping", "with the shard strategy use: doveroute shard move N-M BACKEND")
      const users = yield* readUserList(o.file)
      const to = yield* AdminOps.resolveBackend(o.backend)
      const seen = new Set<RouteKey>()
      const items: Array<MoveItem> = []
      for (const u of users) {
        const key = yield* keyOf(u)
        if (seen.has(key)) continue
        seen.add(key)
        items.push({ key, to, kickUser: o.kick ? u : undefined })
      }
      yield* runBulk(o, settings, `move-many to ${to.hostname}`, items)
    }))

/** `N` or `N-M` (0..65535, N ≤ M). */
export const parseShardRange = (text: string): { readonly first: number; readonly last: number } | undefined => {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim())
  if (m === null) return undefined
  const first = Number(m[1])
  const last = m[2] === undefined ? first : Number(m[2])
  return first <= last && last <= 0xffff ? { first, last } : undefined
}

/** Move every shard of `first..last` (mapped or not) to `to`. */
export const moveShardRange = (o: BulkValues, settings: Settings, first: number, last: number, target: string) =>
  Effect.gen(function*() {
    const to = yield* AdminOps.resolveBackend(target)
    const items = Array.from({ length: last - first + 1 }, (_, i): MoveItem => ({ key: first + i, to }))
    return yield* runBulk(o, settings, `shard move ${first}-${last}`, items)
  })
