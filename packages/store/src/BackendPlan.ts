/**
 * Backends another system knows (a Dovecot 2.3 Director ring's hosts) as `backends` rows: which
 * exist already (matched by hostname or `hostip`), which would be added, whose weight, state or
 * tag changes. Planning only reads (and refuses a tag doveroute cannot store before anything is
 * written); {@link applyBackendPlan} writes.
 *
 * @since 0.1.0
 */
import { validTag } from "@doveroute/routing"
import { Effect } from "effect"
import { addOrUpdateBackend, AdminError, type BackendRow, listBackends } from "./AdminOps.js"

/** A backend as the source describes it. */
export interface WantedBackend {
  readonly hostname: string
  readonly hostip: string
  /** The weight to set; `undefined`: an existing backend keeps its own, a new one gets {@link NEW_WEIGHT}. */
  readonly weight?: number | undefined
  /** The state to set (0 up, 1 down); `undefined`: an existing backend keeps its own, a new one is up. */
  readonly state?: number | undefined
  /** The tag (pool) to set, null = untagged; `undefined`: an existing backend keeps its own, a new one is untagged. */
  readonly tag?: string | null | undefined
}

/** Weight of a backend added without one (the Director's default vhost count). */
export const NEW_WEIGHT = 100

/** What happens to one wanted backend. */
export type BackendStep =
  | { readonly action: "add"; readonly hostname: string; readonly hostip: string; readonly weight: number; readonly state: number; readonly tag: string | null }
  | { readonly action: "update"; readonly backend: BackendRow; readonly weight: number; readonly state: number; readonly tag: string | null }
  | { readonly action: "unchanged"; readonly backend: BackendRow }

/** The existing backend `w` names: the one whose hostname or hostip is its IP or hostname. */
const match = (all: ReadonlyArray<BackendRow>, w: WantedBackend) => {
  const hits = all.filter((b) => b.hostip === w.hostip || b.hostname === w.hostip || b.hostname === w.hostname)
  if (hits.length > 1) {
    return Effect.fail(new AdminError({
      reason: "Invalid",
      detail: `${w.hostname === w.hostip ? w.hostip : `${w.hostname} (${w.hostip})`} matches several backends (ids ${hits.map((b) => b.id).join(", ")}); ` +
        "give each backend its own hostname and hostip first"
    }))
  }
  return Effect.succeed(hits[0])
}

/** Plan the wanted backends against the store (one step each, in order; the same IP twice is refused). */
export const planBackends = (wanted: ReadonlyArray<WantedBackend>) =>
  Effect.gen(function*() {
    const all = yield* listBackends
    const seen = new Set<string>()
    const steps: Array<BackendStep> = []
    for (const w of wanted) {
      if (seen.has(w.hostip)) return yield* new AdminError({ reason: "Invalid", detail: `host ${w.hostip} is listed twice` })
      if (w.tag !== undefined && w.tag !== null && !validTag(w.tag)) {
        return yield* new AdminError({
          reason: "Invalid",
          detail: `tag ${JSON.stringify(w.tag)} of host ${w.hostname}: a doveroute tag is 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit (nothing was written)`
        })
      }
      seen.add(w.hostip)
      const b = yield* match(all, w)
      if (b === undefined) {
        steps.push({ action: "add", hostname: w.hostname, hostip: w.hostip, weight: w.weight ?? NEW_WEIGHT, state: w.state ?? 0, tag: w.tag ?? null })
        continue
      }
      const weight = w.weight ?? b.weight
      const state = w.state ?? b.state
      const tag = w.tag === undefined ? b.tag : w.tag
      steps.push(
        weight !== b.weight || state !== b.state || tag !== b.tag ? { action: "update", backend: b, weight, state, tag } : { action: "unchanged", backend: b }
      )
    }
    return steps
  })

/**
 * The names a dry run's import may use for the backends it would add (hostname and IP), each
 * mapped to a negative placeholder id.
 */
export const plannedNames = (steps: ReadonlyArray<BackendStep>): Map<string, number> => {
  const names = new Map<string, number>()
  steps.forEach((s, i) => {
    if (s.action !== "add") return
    names.set(s.hostname, -(i + 1))
    names.set(s.hostip, -(i + 1))
  })
  return names
}

/** Add and update the backends of a plan. */
export const applyBackendPlan = (steps: ReadonlyArray<BackendStep>) =>
  Effect.forEach(steps, (s) =>
    s.action === "add"
      ? Effect.asVoid(addOrUpdateBackend({ hostname: s.hostname, hostip: s.hostip, state: s.state, weight: s.weight, tag: s.tag, orUpdate: false }))
      : s.action === "update"
      ? Effect.asVoid(addOrUpdateBackend({ hostname: s.backend.hostname, hostip: s.backend.hostip, state: s.state, weight: s.weight, tag: s.tag, orUpdate: true }))
      : Effect.void, { discard: true })
