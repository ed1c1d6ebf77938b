/**
 * `doveroute backend list|add|remove|flush|up|down|drain|weight|check-port` (a backend is named by
 * hostname or id).
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { AdminOps, Operations } from "@doveroute/store"
import { Effect, Option } from "effect"
import { adminOptions, optionalText, validated } from "../CommonOptions.js"
import { output, withReadStore, withStore } from "./AdminSupport.js"
import { dryRunOption, flush, storeFor } from "./Bulk.js"

const BACKEND = Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))

const row = (b: AdminOps.BackendRow) =>
  [b.id, b.hostname, b.hostip ?? "-", b.stateName, b.weight, b.users, b.checkPort ?? "-", b.lastHealth ?? "-"].join("\t")
const HEADER = ["id", "hostname", "hostip", "state", "weight", "users", "check_port", "last_health"].join("\t")

const list = Command.make("list", adminOptions, (o) =>
  withReadStore(o, () =>
    Effect.flatMap(AdminOps.listBackends, (rows) => output(o.json, rows, () => [HEADER, ...rows.map(row)])))
).pipe(Command.withDescription("list backends: id, hostname, hostip, state, weight, users mapped, health-check port, last health result"))

const add = Command.make(
  "add",
  {
    ...adminOptions,
    hostname: Args.text({ name: "HOSTNAME" }),
    hostip: Options.text("hostip").pipe(
      validated("--hostip", SettingValues.IpAddress),
      Options.withDescription("IP the proxies connect to (IPv4 or IPv6 address)"),
      Options.optional
    ),
    state: Options.integer("state").pipe(
      validated("--state", SettingValues.BackendState),
      Options.withDescription("0 up (default), 1 down, 2 drain, 3 down by the health checker"),
      Options.withDefault(0)
    ),
    weight: Options.integer("weight").pipe(Options.withDescription("placement weight (default 1; 0 = no new users)"), Options.withDefault(1)),
    checkPort: Options.integer("check-port").pipe(
      validated("--check-port", SettingValues.Port),
      Options.withDescription("port the health checker probes on this backend (default: the health.port setting)"),
      Options.optional
    ),
    orUpdate: Options.boolean("or-update").pipe(Options.withDescription("update hostip/state/weight (and the check port when given) when the hostname exists (re-runnable)"))
  },
  (o) =>
    withStore(o, () =>
      Effect.flatMap(
        AdminOps.addOrUpdateBackend({
          hostname: o.hostname,
          hostip: Option.getOrNull(o.hostip),
          state: o.state,
          weight: o.weight,
          checkPort: Option.getOrUndefined(o.checkPort),
          orUpdate: o.orUpdate
        }),
        (r) => output(o.json, r.backend, () => [`${r.created ? "added" : "updated"} backend ${r.backend.id} ${r.backend.hostname}${r.backend.hostip ? " hostip " + r.backend.hostip : ""} ${r.backend.stateName} weight ${r.backend.weight}${r.backend.checkPort !== null ? " check port " + r.backend.checkPort : ""}`])
      ))
).pipe(Command.withDescription("add a backend"))

const remove = Command.make(
  "remove",
  {
    ...adminOptions,
    backend: BACKEND,
    moveUsersTo: optionalText("move-users-to", "re-point every mapped user to this backend first"),
    unassignUsers: Options.boolean("unassign-users").pipe(Options.withDescription("delete the mapped users' rows (they get a new backend at their next login)")),
    ...dryRunOption
  },
  (o) =>
    storeFor(o.dryRun)(o, () =>
      Effect.flatMap(
        AdminOps.removeBackend(o.backend, { moveTo: Option.getOrUndefined(o.moveUsersTo), unassign: o.unassignUsers, dryRun: o.dryRun }),
        (r) => output(o.json, r, () => [
          `${r.dryRun ? "would remove" : "removed"} backend ${r.removed.id} ${r.removed.hostname}` +
            (r.movedTo !== null ? `; ${r.users} users ${r.dryRun ? "would move" : "moved"} to ${r.movedTo.hostname}` : r.unassigned > 0 ? `; ${r.unassigned} users ${r.dryRun ? "would be " : ""}unassigned` : "") +
            (r.dryRun ? " (dry run, nothing changed)" : "")
        ])
      ))
).pipe(Command.withDescription("remove a backend (refuses when users are mapped unless --move-users-to or --unassign-users)"))

const stateCommand = (name: string, state: number, description: string) =>
  Command.make(name, { ...adminOptions, backend: BACKEND }, (o) =>
    withStore(o, () =>
      Effect.flatMap(AdminOps.setState(o.backend, state), (r) =>
        output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: ${r.before.stateName} -> ${r.after.stateName}`])))
  ).pipe(Command.withDescription(description))

const weight = Command.make(
  "weight",
  { ...adminOptions, backend: BACKEND, weight: Args.integer({ name: "N" }).pipe(Args.withDescription("weight ≥ 0 (0 = no new users)")) },
  (o) =>
    withStore(o, () =>
      Effect.flatMap(AdminOps.setWeight(o.backend, o.weight), (r) =>
        output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: weight ${r.before.weight} -> ${r.after.weight}`])))
).pipe(Command.withDescription("set a backend's placement weight"))

const checkPort = Command.make(
  "check-port",
  {
    ...adminOptions,
    backend: BACKEND,
    port: Args.text({ name: "PORT" }).pipe(Args.withDescription("1-65535, or none (use the health.port setting)"))
  },
  (o) =>
    withStore(o, () =>
      Effect.gen(function*() {
        const port = o.port === "none" ? null : /^\d{1,5}$/.test(o.port) ? Number(o.port) : NaN
        const r = yield* AdminOps.setCheckPort(o.backend, port)
        const shown = (p: number | null) => p === null ? "none" : String(p)
        return yield* output(o.json, r.after, () => [`backend ${r.after.id} ${r.after.hostname}: check port ${shown(r.before.checkPort)} -> ${shown(r.after.checkPort)}`])
      }))
).pipe(Command.withDescription("set the port the health checker probes on a backend (none: the health.port setting)"))

export const backend = Command.make("backend").pipe(
  Command.withDescription("manage backends"),
  Command.withSubcommands([
    list,
    add,
    remove,
    flush,
    stateCommand("up", Operations.STATE.up, "state up: receives new users (also clears a health-checker down)"),
    stateCommand("down", Operations.STATE.down, "state down (admin): no new users; the health checker never sets it up"),
    stateCommand("drain", Operations.STATE.drain, "state drain (admin): no new users, mapped users stay"),
    weight,
    checkPort
  ])
)
