/**
 * The backends of a `dump --json` document, restored by `doveroute import` as the dump script's
 * `doveroute backend add … --or-update` lines do: a backend is found by hostname; hostip, state and
 * weight are set; the check port and the tag are set when the dump has one (an untagged backend in
 * the dump leaves an existing backend's tag alone; a new one is untagged). Every backend is checked
 * before the first is written; a dry run reports the changes and writes nothing.
 *
 * @since 0.3.0
 */
import { validTag } from "@doveroute/routing"
import { AdminOps, CheckPort, Operations } from "@doveroute/store"
import { Effect } from "effect"
import type { DumpBackend } from "./ImportFile.js"

/** One field a restore changes. */
export interface FieldChange {
  readonly field: "hostip" | "state" | "weight" | "checkPort" | "tag"
  readonly before: string | number | null
  readonly after: string | number | null
}

/** What happens to one backend of the dump. */
export interface BackendChange {
  readonly action: "add" | "update" | "unchanged"
  readonly hostname: string
  /** The existing backend's id (null: added; a dry run has no id for it). */
  readonly id: number | null
  readonly changes: ReadonlyArray<FieldChange>
}

const invalid = (detail: string) => new AdminOps.AdminError({ reason: "Invalid", detail })

/** Refuse a dump backend doveroute would refuse in `backend add` (before anything is written). */
const check = (b: DumpBackend) =>
  !(Object.values(Operations.STATE) as Array<number>).includes(b.state)
    ? invalid(`backend ${b.hostname}: state ${b.state} is not 0-3`)
    : b.weight < 0
    ? invalid(`backend ${b.hostname}: weight must be ≥ 0`)
    : b.checkPort !== null && !CheckPort.validCheckPort(b.checkPort)
    ? invalid(`backend ${b.hostname}: check port must be 1-65535`)
    : b.tag !== null && !validTag(b.tag)
    ? invalid(`backend ${b.hostname}: tag ${JSON.stringify(b.tag)} is not 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit`)
    : undefined

/** What `backend add` gives a new backend when not told otherwise (the report of an add lists the rest). */
const NEW: Pick<AdminOps.BackendRow, "hostip" | "state" | "weight" | "checkPort" | "tag"> = { hostip: null, state: 0, weight: 1, checkPort: null, tag: null }

/** The changes restoring `b` makes to `existing`. */
const changesOf = (existing: Pick<AdminOps.BackendRow, "hostip" | "state" | "weight" | "checkPort" | "tag">, b: DumpBackend): Array<FieldChange> => {
  const out: Array<FieldChange> = []
  const cmp = (field: FieldChange["field"], before: string | number | null, after: string | number | null) => {
    if (before !== after) out.push({ field, before, after })
  }
  cmp("hostip", existing.hostip, b.hostip)
  cmp("state", existing.state, b.state)
  cmp("weight", existing.weight, b.weight)
  if (b.checkPort !== null) cmp("checkPort", existing.checkPort, b.checkPort)
  if (b.tag !== null) cmp("tag", existing.tag, b.tag)
  return out
}

/** Add or update the dump's backends (a dry run: only report). */
export const restoreBackends = (backends: ReadonlyArray<DumpBackend>, dryRun: boolean) =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    for (const b of backends) {
      const bad = check(b)
      if (bad !== undefined) return yield* bad
      if (seen.has(b.hostname)) return yield* invalid(`backend ${b.hostname} is listed twice`)
      seen.add(b.hostname)
    }
    const all = yield* AdminOps.listBackends
    const out: Array<BackendChange> = []
    for (const b of backends) {
      const existing = all.find((x) => x.hostname === b.hostname)
      const change: BackendChange = existing === undefined
        ? { action: "add", hostname: b.hostname, id: null, changes: changesOf(NEW, b) }
        : ((c) => ({ action: c.length > 0 ? "update" as const : "unchanged" as const, hostname: b.hostname, id: existing.id, changes: c }))(changesOf(existing, b))
      if (!dryRun && change.action !== "unchanged") {
        const r = yield* AdminOps.addOrUpdateBackend({
          hostname: b.hostname,
          hostip: b.hostip,
          state: b.state,
          weight: b.weight,
          checkPort: b.checkPort ?? undefined,
          tag: b.tag ?? undefined,
          orUpdate: true
        })
        out.push({ ...change, id: r.backend.id })
      } else out.push(change)
    }
    return out
  })

/** The names a dry run's mapping import may use for the backends it would add (a negative placeholder id each). */
export const plannedBackendNames = (changes: ReadonlyArray<BackendChange>): Map<string, number> =>
  new Map(changes.flatMap((c, i) => c.action === "add" ? [[c.hostname, -(i + 1)] as const] : []))

const shown = (v: string | number | null) => v === null ? "none" : String(v)

/** The report lines of a restore. */
export const backendChangeLines = (changes: ReadonlyArray<BackendChange>, dryRun: boolean): Array<string> =>
  changes.map((c) => {
    const fields = c.changes.map((f) => `${f.field === "checkPort" ? "check port" : f.field} ${shown(f.before)} -> ${shown(f.after)}`).join(", ")
    return c.action === "add"
      ? `backend ${c.hostname}: ${dryRun ? "would be added" : "added"}${fields === "" ? "" : ` (${c.changes.map((f) => `${f.field === "checkPort" ? "check port" : f.field} ${shown(f.after)}`).join(", ")})`}`
      : c.action === "update"
      ? `backend ${c.hostname} (id ${c.id}): ${fields}${dryRun ? " (would be set)" : ""}`
      : `backend ${c.hostname} (id ${c.id}): unchanged`
  })
