/**
 * What `doveroute backend list|add|remove|up|down|drain|weight|check-port|tag` do (the options:
 * Backend.ts; `flush`: BulkRun.ts), imported when one of them runs.
 *
 * @since 0.1.0
 */
import { AdminOps, Operations } from "@doveroute/store"
import { Effect, Option } from "effect"
import { output, tagArg, withReadStore, withStore } from "./AdminSupport.js"
import type { addConfig, backendConfig, checkPortConfig, listConfig, removeConfig, tagConfig, weightConfig } from "./Backend.js"
import { storeFor } from "./BulkRun.js"
import type { Parsed } from "./Lazy.js"

const row = (b: AdminOps.BackendRow) =>
  [b.id, b.hostname, b.hostip ?? "-", b.stateName, b.weight, b.users, b.checkPort ?? "-", b.lastHealth ?? "-", b.tag ?? "-"].join("\t")
const HEADER = ["id", "hostname", "hostip", "state", "weight", "users", "check_port", "last_health", "tag"].join("\t")

export const list = (o: Parsed<typeof listConfig>) =>
  withReadStore(o, () =>
    Effect.flatMap(AdminOps.listBackends, (rows) => output(o.json, rows, () => [HEADER, ...rows.map(row)])))

export const add = (o: Parsed<typeof addConfig>) =>
  withStore(o, () =>
    Effect.flatMap(
      AdminOps.addOrUpdateBackend({
        hostname: o.hostname,
        hostip: Option.getOrNull(o.hostip),
        state: o.state,
        weight: o.weight,
        checkPort: Option.getOrUndefined(o.checkPort),
        tag: Option.isSome(o.tag) ? tagArg(o.tag.value) : undefined,
        orUpdate: o.orUpdate
      }),
      (r) => output(o.json, r.backend, () => [`${r.created ? "added" : "updated"} backend ${r.backend.id} ${r.backend.hostname}${r.backend.hostip ? " hostip " + r.backend.hostip : ""} ${r.backend.stateName} weight ${r.backend.weight}${r.backend.checkPort !== null ? " check port " + r.backend.checkPort : ""}${r.backend.tag !== null ? " tag " + r.backend.tag : ""}`])
    ))

export const remove = (o: Parsed<typeof removeConfig>) =>
  storeFor(o.dryRun)(o, () =>
    Effect.flatMap(
      AdminOps.removeBackend(o.backend, { moveTo: Option.getOrUndefined(o.moveUsersTo), unassign: o.unassignUsers, dryRun: o.dryRun }),
      (r) => output(o.json, r, () => [
        `${r.dryRun ? "would remove" : "removed"} backend ${r.removed.id} ${r.removed.hostname}` +
          (r.movedTo !== null ? `; ${r.users} users ${r.dryRun ? "would move" : "moved"} to ${r.movedTo.hostname}` : r.unassigned > 0 ? `; ${r.unassigned} users ${r.dryRun ? "would be " : ""}unassigned` : "") +
          (r.dryRun ? " (dry run, nothing changed)" : "")
      ])
    ))

const setState = (state: number) => (o: Parsed<typeof backendConfig>) =>
  withStore(o, () =>
    Effect.flatMap(AdminOps.setState(o.backend, state), (r) =>
      output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: ${r.before.stateName} -> ${r.after.stateName}`])))

export const up = setState(Operations.STATE.up)
export const down = setState(Operations.STATE.down)
export const drain = setState(Operations.STATE.drain)

export const weight = (o: Parsed<typeof weightConfig>) =>
  withStore(o, () =>
    Effect.flatMap(AdminOps.setWeight(o.backend, o.weight), (r) =>
      output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: weight ${r.before.weight} -> ${r.after.weight}`])))

export const checkPort = (o: Parsed<typeof checkPortConfig>) =>
  withStore(o, () =>
    Effect.gen(function*() {
      const port = o.port === "none" ? null : /^\d{1,5}$/.test(o.port) ? Number(o.port) : NaN
      const r = yield* AdminOps.setCheckPort(o.backend, port)
      const shown = (p: number | null) => p === null ? "none" : String(p)
      return yield* output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: check port ${shown(r.before.checkPort)} -> ${shown(r.after.checkPort)}`])
    }))

export const tag = (o: Parsed<typeof tagConfig>) =>
  storeFor(o.dryRun)(o, () =>
    Effect.gen(function*() {
      const r = yield* AdminOps.setTag(o.backend, tagArg(o.tag), o.dryRun)
      const shown = (t: string | null) => t ?? "none"
      return yield* output(o.json, { ...r.after, dryRun: o.dryRun, before: { tag: r.before.tag } }, () => [
        `backend ${r.after.id} ${r.after.hostname}: tag ${shown(r.before.tag)} -> ${shown(r.after.tag)}` +
          (r.after.users > 0 && r.before.tag !== r.after.tag ? ` (its ${r.after.users} mapped users stay on it)` : "") +
          (o.dryRun ? " (dry run, nothing changed)" : "")
      ])
    }))
