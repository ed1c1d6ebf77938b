/**
 * Placement of a new user (or shard) among the backends that may receive new users.
 *
 * - `random`: uniform among `state = 0` backends — the reference scripts' rule (`math.random`).
 * - `weighted`: random with probability proportional to `backends.weight`.
 * - `least-loaded`: the backend with the fewest mapped users per unit of weight (ties: lowest id).
 *
 * Only `state = 0` backends of the user's tag (Tags.ts; untagged users: untagged backends) receive
 * new users; when the store reports weights
 * ({@link PlacementInfo}), a backend with `weight = 0` receives no new users under every policy.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import { type Backend, isUp } from "./Backend.js"
import type { StoreError } from "./RouteStore.js"
import { inTag } from "./Tags.js"

/** Placement policies (setting `placement`). */
export type Placement = "random" | "weighted" | "least-loaded"
export const PLACEMENTS: ReadonlyArray<Placement> = ["random", "weighted", "least-loaded"]

/** Weight and mapped users of one backend, as the store reports them. */
export interface BackendLoad {
  readonly weight: number
  readonly users: number
}

/**
 * Optional store service: per-backend weight (and, for `least-loaded`, mapped users). Without it
 * every backend has weight 1 and 0 users.
 */
export class PlacementInfo extends Context.Tag("doveroute/PlacementInfo")<PlacementInfo, {
  /** Weights only (cheap). */
  readonly weights: Effect.Effect<ReadonlyMap<number, number>, StoreError>
  /** Weights and mapped users (counts every row). */
  readonly loads: Effect.Effect<ReadonlyMap<number, BackendLoad>, StoreError>
}>() {}

/**
 * The backends a new user of `tag` may be placed on: `state = 0`, (when known) `weight > 0`, and
 * the backend's tag equal to `tag` (`null`, the default: untagged backends only).
 */
export const candidates = <B extends Backend>(
  backends: ReadonlyArray<B>,
  weights?: ReadonlyMap<number, number>,
  tag: string | null = null
): ReadonlyArray<B> =>
  backends.filter((b) => isUp(b) && inTag(b, tag) && (weights === undefined || (weights.get(b.id) ?? 1) > 0))

/**
 * Choose one of `candidates` uniformly, or `undefined` when there is none.
 * @param random a function returning a float in [0, 1) (injectable for tests)
 */
export const choose = (
  cands: ReadonlyArray<Backend>,
  random: () => number = Math.random
): Backend | undefined => {
  if (cands.length === 0) return undefined
  const i = Math.min(cands.length - 1, Math.floor(random() * cands.length))
  return cands[i]
}

/** Weighted random choice (weight ≤ 0 or missing-as-1 rules: weights ≤ 0 never chosen). */
export const chooseWeighted = (
  cands: ReadonlyArray<Backend>,
  weights: ReadonlyMap<number, number>,
  random: () => number = Math.random
): Backend | undefined => {
  const ws = cands.map((b) => Math.max(0, weights.get(b.id) ?? 1))
  const total = ws.reduce((a, b) => a + b, 0)
  if (total <= 0) return undefined
  let r = random() * total
  for (let i = 0; i < cands.length; i++) {
    if (ws[i]! <= 0) continue
    if (r < ws[i]!) return cands[i]
    r -= ws[i]!
  }
  // rounding: the last backend with a positive weight
  for (let i = cands.length - 1; i >= 0; i--) if (ws[i]! > 0) return cands[i]
  return undefined
}

/** The candidate with the fewest users per weight (weight ≤ 0 never chosen); ties: lowest id. */
export const chooseLeastLoaded = (
  cands: ReadonlyArray<Backend>,
  loads: ReadonlyMap<number, BackendLoad>
): Backend | undefined => {
  let best: Backend | undefined
  let bestRatio = Infinity
  for (const b of [...cands].sort((x, y) => x.id - y.id)) {
    const l = loads.get(b.id) ?? { weight: 1, users: 0 }
    if (l.weight <= 0) continue
    const ratio = l.users / l.weight
    if (ratio < bestRatio) {
      best = b
      bestRatio = ratio
    }
  }
  return best
}
