/**
 * Counts of operational events that are not lookups, kept whether or not the metrics endpoint is
 * on and read by it on scrape: configuration reloads (SIGHUP) by result, and backend state changes
 * made by this daemon's health checker; and the last store error (for the ring view, Ring.ts). Plain numbers in memory, changed only when the event
 * happens (never per request).
 *
 * @since 0.1.0
 */

/** Result of one SIGHUP reload: `ok` (applied) or `failed` (the running settings were kept). */
export type ReloadResult = "ok" | "failed"

/** Backend state names used in log lines and metric labels (states 0-3 of `backends.state`). */
export const STATE_NAMES: Readonly<Record<number, string>> = { 0: "up", 1: "down", 2: "drain", 3: "health_down" }

/** The name of a backend state; unknown numbers as `state_N`. */
export const stateName = (state: number): string => STATE_NAMES[state] ?? `state_${state}`

const reloads = new Map<ReloadResult, number>([["ok", 0], ["failed", 0]])

/** One transition key: backend hostname and id, from-state name, to-state name. */
export interface Transition {
  readonly backend: string
  readonly id: string
  readonly from: string
  readonly to: string
}

const transitions = new Map<string, Transition & { count: number }>()

/** Count one SIGHUP reload. */
export const reloaded = (result: ReloadResult): void => {
  reloads.set(result, (reloads.get(result) ?? 0) + 1)
}

/** Count one backend state change made by the health checker. */
export const transitioned = (t: Transition): void => {
  const key = `${t.backend}\u0000${t.id}\u0000${t.from}\u0000${t.to}`
  const cur = transitions.get(key)
  if (cur === undefined) transitions.set(key, { ...t, count: 1 })
  else cur.count++
}

/** Reloads so far by result (both results always present). */
export const reloadCounts = (): ReadonlyMap<ReloadResult, number> => reloads

/** Health-checker transitions so far. */
export const transitionCounts = (): ReadonlyArray<Transition & { readonly count: number }> => [...transitions.values()]

/** The last store error this daemon met (a lookup's temp_fail or a failed heartbeat), if any. */
let lastStoreError: { readonly at: number; readonly detail: string } | undefined

/** Remember a store error (kept until the next one). */
export const storeFailed = (detail: string, at: number = Date.now()): void => {
  lastStoreError = { at, detail }
}

/** The last store error, if any. */
export const lastStoreFailure = (): { readonly at: number; readonly detail: string } | undefined => lastStoreError
