/**
 * Placement of a new user (or shard) among the backends that may receive new users.
 *
 * `random`: uniform among `state = 0` backends — the reference scripts' rule (`math.random`).
 *
 * @since 0.1.0
 */
import { type Backend, isUp } from "./Backend.js"

/** Placement policies. */
export type Placement = "random"

/** The backends a new user may be placed on. */
export const candidates = (backends: ReadonlyArray<Backend>): ReadonlyArray<Backend> => backends.filter(isUp)

/**
 * Choose one of `candidates`, or `undefined` when there is none.
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
