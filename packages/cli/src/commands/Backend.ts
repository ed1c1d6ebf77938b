/**
 * `doveroute backend list|add|remove|up|down|drain|weight` (a backend is named by hostname or id).
 * The options are here; what each command does is in BackendRun.ts, imported when it runs.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { adminOptions, optionalText, validated } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

const BACKEND = Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))
const run = () => import("./BackendRun.js")

export const addConfig = {
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
  orUpdate: Options.boolean("or-update").pipe(Options.withDescription("update hostip/state/weight when the hostname exists (re-runnable)"))
}
export const removeConfig = {
  ...adminOptions,
  backend: BACKEND,
  moveUsersTo: optionalText("move-users-to", "re-point every mapped user to this backend first"),
  unassignUsers: Options.boolean("unassign-users").pipe(Options.withDescription("delete the mapped users' rows (they get a new backend at their next login)"))
}
export const stateConfig = { ...adminOptions, backend: BACKEND }
export const weightConfig = { ...adminOptions, backend: BACKEND, weight: Args.integer({ name: "N" }).pipe(Args.withDescription("weight ≥ 0 (0 = no new users)")) }

const stateCommand = (name: "up" | "down" | "drain", description: string) =>
  Command.make(name, stateConfig, lazy(run, name)).pipe(Command.withDescription(description))

export const backend = Command.make("backend").pipe(
  Command.withDescription("manage backends"),
  Command.withSubcommands([
    Command.make("list", adminOptions, lazy(run, "list")).pipe(
      Command.withDescription("list backends: id, hostname, hostip, state, weight, users mapped, last health result")
    ),
    Command.make("add", addConfig, lazy(run, "add")).pipe(Command.withDescription("add a backend")),
    Command.make("remove", removeConfig, lazy(run, "remove")).pipe(
      Command.withDescription("remove a backend (refuses when users are mapped unless --move-users-to or --unassign-users)")
    ),
    stateCommand("up", "state up: receives new users (also clears a health-checker down)"),
    stateCommand("down", "state down (admin): no new users; the health checker never sets it up"),
    stateCommand("drain", "state drain (admin): no new users, mapped users stay"),
    Command.make("weight", weightConfig, lazy(run, "weight")).pipe(Command.withDescription("set a backend's placement weight"))
  ])
)
