/**
 * The one move engine of `user move`, `user move-many`, `shard move` and `backend flush`.
 *
 * Keys move in windows of at most `parallel`: each key of a window takes its move lock
 * (`doveroute_moves`; with a kick the lock also holds the key's logins with temp_fail), is
 * re-pointed with a compare-and-set (`AdminOps.casMove`; a flush passes the backend it empties, so
 * a key moved or unassigned meanwhile is skipped), then — with `--kick` — the window waits
 * `cache.refresh` (+0.5 s) so that no daemon serves the old route, runs `kick_command` for each
 * moved user (at most `parallel` at once) and releases the locks. Without `--kick` the locks are
 * released after the compare-and-set, except those of the last window, which are held through the
 * one wait before the command returns (so a single `user move` holds its lock until every daemon
 * sees the new route).
 *
 * @since 0.1.0
 */
import type { Settings } from "@doveroute/daemon"
import type { RouteKey } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Clock, Duration, Effect } from "effect"
import { type KickResult, propagationWait, runKicks } from "./AdminSupport.js"

/** One key to move. */
export interface MoveItem {
  readonly key: RouteKey
  readonly to: AdminOps.BackendRow
  /** Only move when the key is still on this backend id (a flush); otherwise skipped. */
  readonly expectFrom?: number | undefined
  /** Kick this user's sessions once the move is visible (mapping strategy only). */
  readonly kickUser?: string | undefined
}

/** What happened to one key. `skipped`: changed by someone else meanwhile (re-run to retry). */
export type MoveStatus = "moved" | "unchanged" | "skipped" | "failed" | "would-move"

export interface MoveOutcome {
  readonly key: RouteKey
  readonly from: number | null
  readonly to: number
  readonly toHostname: string
  readonly status: MoveStatus
  readonly detail?: string
  readonly kicks: ReadonlyArray<KickResult>
}

/** The summary every bulk command prints (`--json`: this object). */
export interface MoveSummary {
  readonly dryRun: boolean
  readonly total: number
  readonly moved: number
  readonly unchanged: number
  readonly skipped: number
  readonly failed: number
  readonly waitedMs: number
  readonly results: ReadonlyArray<MoveOutcome>
}

export interface MoveOptions {
  /** Wait `cache.refresh` (+0.5 s) before returning (`--no-wait` turns it off). */
  readonly wait: boolean
  /** At most this many keys (and their kicks) in flight. */
  readonly parallel: number
  /** Called after each window with the outcomes so far. */
  readonly progress?: ((done: number, total: number, counts: Counts) => void) | undefined
}

export type Counts = Pick<MoveSummary, "moved" | "unchanged" | "skipped" | "failed">

const describe = (e: unknown): string =>
  e !== null && typeof e === "object" && "message" in e ? String((e as { message: unknown }).message) : String(e)

const countOf = (results: ReadonlyArray<MoveOutcome>): Counts => ({
  moved: results.filter((r) => r.status === "moved" || r.status === "would-move").length,
  unchanged: results.filter((r) => r.status === "unchanged").length,
  skipped: results.filter((r) => r.status === "skipped").length,
  failed: results.filter((r) => r.status === "failed").length
})

const outcome = (item: MoveItem, from: number | null, status: MoveStatus, detail?: string, kicks: ReadonlyArray<KickResult> = []): MoveOutcome => ({
  key: item.key,
  from,
  to: item.to.id,
  toHostname: item.to.hostname,
  status,
  ...(detail !== undefined ? { detail } : {}),
  kicks
})

/** Lock and compare-and-set one key; the outcome and whether its lock is held. */
const lockAndSet = (settings: Settings, item: MoveItem, expiresAt: number) =>
  Effect.gen(function*() {
    const busy = yield* AdminOps.lockKey(item.key, item.kickUser !== undefined, expiresAt).pipe(
      Effect.as(undefined),
      Effect.catchTag("AdminError", (e) => e.reason === "TryAgain" ? Effect.succeed(e.detail) : Effect.fail(e))
    )
    if (busy !== undefined) return { result: outcome(item, null, "skipped", busy), locked: false }
    const r = yield* AdminOps.casMove(settings.strategy, item.key, item.to.id, item.expectFrom).pipe(
      Effect.catchAll((e) => Effect.succeed(e))
    )
    if (!("changed" in r)) {
      const tryAgain = r._tag === "AdminError" && r.reason === "TryAgain"
      return { result: outcome(item, null, tryAgain ? "skipped" : "failed", describe(r)), locked: true }
    }
    if (r.stale) {
      const now = r.from === null ? "no row any more" : `now on backend ${r.from}`
      return { result: outcome(item, r.from, "skipped", `no longer on backend ${item.expectFrom} (${now})`), locked: true }
    }
    return { result: outcome(item, r.from, r.changed ? "moved" : "unchanged"), locked: true }
  }).pipe(Effect.catchAll((e) => Effect.succeed({ result: outcome(item, null, "failed", describe(e)), locked: false })))

const unlockAll = (keys: ReadonlyArray<RouteKey>) =>
  Effect.forEach(keys, (k) => Effect.ignore(AdminOps.unlockKey(k)), { discard: true })

/** Move `items` (see the module comment). Never fails for one key: its outcome says why. */
export const moveKeys = (settings: Settings, items: ReadonlyArray<MoveItem>, opts: MoveOptions) =>
  Effect.gen(function*() {
    const parallel = Math.max(1, Math.floor(opts.parallel))
    const wait = opts.wait ? propagationWait(settings) : Duration.zero
    const results: Array<MoveOutcome> = []
    let waitedMs = 0
    const sleep = Effect.zipRight(Effect.sleep(wait), Effect.sync(() => { waitedMs += Duration.toMillis(wait) }))
    for (let i = 0; i < items.length; i += parallel) {
      const window = items.slice(i, i + parallel)
      const last = i + parallel >= items.length
      const kick = window.some((it) => it.kickUser !== undefined)
      const now = yield* Clock.currentTimeMillis
      const hold = kick ? settings.routing.kickHold : Duration.seconds(30)
      const expiresAt = now + Duration.toMillis(wait) + Duration.toMillis(hold) + 60_000
      const done = yield* Effect.forEach(window, (it) => lockAndSet(settings, it, expiresAt), { concurrency: parallel })
      const lockedKeys = done.filter((d) => d.locked).map((d) => d.result.key)
      const finished = yield* Effect.gen(function*() {
        const anyMoved = done.some((d) => d.result.status === "moved")
        if (anyMoved && (kick || last)) yield* sleep
        return yield* Effect.forEach(done, (d, j) => {
          const user = window[j]!.kickUser
          if (d.result.status !== "moved" || user === undefined) return Effect.succeed(d.result)
          return Effect.map(runKicks(settings, user), (kicks) => {
            const bad = kicks.filter((k) => k.exitCode !== 0).length
            return bad > 0
              ? { ...d.result, status: "failed" as const, detail: `moved, but ${bad} kick command(s) failed`, kicks }
              : { ...d.result, kicks }
          })
        }, { concurrency: parallel })
      }).pipe(Effect.ensuring(unlockAll(lockedKeys)))
      results.push(...finished)
      opts.progress?.(results.length, items.length, countOf(results))
    }
    return { dryRun: false, total: items.length, ...countOf(results), waitedMs, results } satisfies MoveSummary
  })

/** What {@link moveKeys} would do, reading only: `would-move`, `unchanged` or `skipped`. */
export const planMoves = (settings: Settings, items: ReadonlyArray<MoveItem>) =>
  Effect.gen(function*() {
    const rows = yield* AdminOps.rowsOfKeys(settings.strategy, items.map((it) => it.key))
    const results = items.map((it): MoveOutcome => {
      const ids = rows.get(String(it.key)) ?? []
      const from = ids[0] ?? null
      if (ids.length > 1) return outcome(it, from, "failed", `several rows (backends ${ids.join(", ")}); fix them first`)
      if (it.expectFrom !== undefined && from !== it.expectFrom) return outcome(it, from, "skipped", `not on backend ${it.expectFrom}`)
      return outcome(it, from, from === it.to.id ? "unchanged" : "would-move")
    })
    return { dryRun: true, total: items.length, ...countOf(results), waitedMs: 0, results } satisfies MoveSummary
  })

/** Exit code of a bulk run: 1 when a key failed, 75 (try again) when one was skipped, else 0. */
export const summaryExitCode = (s: MoveSummary): number => s.failed > 0 ? 1 : s.skipped > 0 ? 75 : 0

/** A progress line on stderr, redrawn in place — only when stderr is a terminal. */
export const progressLine = (label: string): MoveOptions["progress"] =>
  process.stderr.isTTY
    ? (done, total, c) => {
      process.stderr.write(`\r${label}: ${done}/${total} moved ${c.moved} unchanged ${c.unchanged} skipped ${c.skipped} failed ${c.failed}${done >= total ? "\n" : ""}`)
    }
    : undefined

/** Text lines of a summary: the counts, then every key that was not simply moved/unchanged. */
export const summaryLines = (label: string, s: MoveSummary, name: (k: RouteKey) => string): ReadonlyArray<string> => [
  ...s.results.filter((r) => r.status === "would-move").map((r) => `would move ${name(r.key)} from backend ${r.from ?? "(none)"} to ${r.to} (${r.toHostname})`),
  ...s.results.filter((r) => r.status === "skipped" || r.status === "failed").map((r) => `${r.status}: ${name(r.key)}: ${r.detail ?? ""}`),
  ...s.results.flatMap((r) => r.kicks.filter((k) => k.exitCode !== 0).map((k) => `kick: ${k.argv.join(" ")}: exit ${k.exitCode} ${k.output}`)),
  `${label}${s.dryRun ? " (dry run, nothing changed)" : ""}: ${s.total} ${s.dryRun ? "checked" : "total"}, ${s.moved} ${s.dryRun ? "would move" : "moved"}, ${s.unchanged} unchanged, ${s.skipped} skipped (changed meanwhile), ${s.failed} failed`
]
