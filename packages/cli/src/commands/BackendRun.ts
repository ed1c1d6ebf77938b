/**
 * What `doveroute backend …` does (the options: Backend.ts).
 *
 * @since 0.1.0
 */
import { AdminOps, Operations } from "@doveroute/store"
import { Effect, Option } from "effect"
import type { adminOptions } from "../CommonOptions.js"
import { output, withReadStore, withStore } from "./AdminSupport.js"
import type { addConfig, removeConfig, stateConfig, weightConfig } from "./Backend.js"
import type { Parsed } from "./Lazy.js"

const row = (b: AdminOps.BackendRow) =>
  [b.id, b.hostname, b.hostip ?? "-", b.stateName, b.weight, b.users, b.lastHealth ?? "-"].join("\t")
const HEADER = ["id", "hostname", "hostip", "state", "weight", "users", "last_health"].join("\t")

export const list = (o: Parsed<typeof adminOptions>) =>
  withReadStore(o, () =>
    Effect.flatMap(AdminOps.listBackends, (rows) => output(o.json, rows, () => [HEADER, ...rows.map(row)])))

export const add = (o: Parsed<typeof addConfig>) =>
  withStore(o, () =>
    Effect.flatMap(
      AdminOps.addOrUpdateBackend({ hostname: o.hostname, hostip: Option.getOrNull(o.hostip), state: o.state, weight: o.weight, orUpdate: o.orUpdate }),
      (r) => output(o.json, r.backend, () => [`${r.created ? "added" : "updated"} backend ${r.backend.id} ${r.backend.hostname}${r.backend.hostip ? " hostip " + r.backend.hostip : ""} ${r.backend.stateName} weight ${r.backend.weight}`])
    ))

export const remove = (o: Parsed<typeof removeConfig>) =>
  withStore(o, () =>
    Effect.flatMap(
      AdminOps.removeBackend(o.backend, { moveTo: Option.getOrUndefined(o.moveUsersTo), unassign: o.unassignUsers }),
      (r) => output(o.json, r, () => [
        `removed backend ${r.removed.id} ${r.removed.hostname}` +
          (r.movedTo !== null ? `; ${r.users} users moved to ${r.movedTo.hostname}` : r.unassigned > 0 ? `; ${r.unassigned} users unassigned` : "")
      ])
    ))

const setState = (state: number) => (o: Parsed<typeof stateConfig>) =>
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
