/**
 * `doveroute backend list|add|remove|flush|up|down|drain|weight|check-port|tag` (a backend is named
 * by hostname or id). What they do: BackendRun.ts (flush: BulkRun.ts), imported when one runs.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { adminOptions, optionalText, validated } from "../CommonOptions.js"
import { bulkOptions, dryRunOption, kickOption } from "./BulkOptions.js"
import { lazy } from "./Lazy.js"

const BACKEND = Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id"))
const run = () => import("./BackendRun.js")

export const listConfig = adminOptions
const list = Command.make("list", listConfig, lazy(run, "list")).pipe(
  Command.withDescription("list backends: id, hostname, hostip, state, weight, users mapped, health-check port, last health result, tag")
)

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
  checkPort: Options.integer("check-port").pipe(
    validated("--check-port", SettingValues.Port),
    Options.withDescription("port the health checker probes on this backend (default: the health.port setting)"),
    Options.optional
  ),
  tag: Options.text("tag").pipe(
    Options.withDescription("the backend's tag (pool, like director_tag): only users of this tag are placed on it; none = untagged (default)"),
    Options.optional
  ),
  orUpdate: Options.boolean("or-update").pipe(Options.withDescription("update hostip/state/weight (and the check port and tag when given) when the hostname exists (re-runnable)"))
}
const add = Command.make("add", addConfig, lazy(run, "add")).pipe(Command.withDescription("add a backend"))

export const removeConfig = {
  ...adminOptions,
  backend: BACKEND,
  moveUsersTo: optionalText("move-users-to", "re-point every mapped user to this backend first"),
  unassignUsers: Options.boolean("unassign-users").pipe(Options.withDescription("delete the mapped users' rows (they get a new backend at their next login)")),
  ...dryRunOption
}
const remove = Command.make("remove", removeConfig, lazy(run, "remove")).pipe(
  Command.withDescription("remove a backend (refuses when users are mapped unless --move-users-to or --unassign-users)")
)

export const flushConfig = {
  ...bulkOptions,
  ...kickOption,
  backend: Args.text({ name: "BACKEND" }).pipe(Args.withDescription("hostname or id of the backend to empty")),
  to: Options.text("to").pipe(Options.withDescription("move every user (or shard) to this backend instead of placing each one"), Options.optional)
}
const flush = Command.make("flush", flushConfig, lazy(() => import("./BulkRun.js"), "flush")).pipe(
  Command.withDescription("move every user (or shard) off a drained or down backend, which stays defined: placed among the up backends, or all --to B2")
)

export const backendConfig = { ...adminOptions, backend: BACKEND }
const stateCommand = (name: "up" | "down" | "drain", description: string) =>
  Command.make(name, backendConfig, lazy(run, name)).pipe(Command.withDescription(description))

export const weightConfig = { ...adminOptions, backend: BACKEND, weight: Args.integer({ name: "N" }).pipe(Args.withDescription("weight ≥ 0 (0 = no new users)")) }
const weight = Command.make("weight", weightConfig, lazy(run, "weight")).pipe(Command.withDescription("set a backend's placement weight"))

export const checkPortConfig = {
  ...adminOptions,
  backend: BACKEND,
  port: Args.text({ name: "PORT" }).pipe(Args.withDescription("1-65535, or none (use the health.port setting)"))
}
const checkPort = Command.make("check-port", checkPortConfig, lazy(run, "checkPort")).pipe(
  Command.withDescription("set the port the health checker probes on a backend (none: the health.port setting)")
)

export const tagConfig = {
  ...adminOptions,
  backend: BACKEND,
  tag: Args.text({ name: "TAG" }).pipe(Args.withDescription("the tag (pool), or none (untagged)")),
  ...dryRunOption
}
const tag = Command.make("tag", tagConfig, lazy(run, "tag")).pipe(
  Command.withDescription("set a backend's tag (pool; none = untagged): new users of that tag only are placed on it, its mapped users stay")
)

export const backend = Command.make("backend").pipe(
  Command.withDescription("manage backends"),
  Command.withSubcommands([
    list,
    add,
    remove,
    flush,
    stateCommand("up", "state up: receives new users (also clears a health-checker down)"),
    stateCommand("down", "state down (admin): no new users; the health checker never sets it up"),
    stateCommand("drain", "state drain (admin): no new users, mapped users stay"),
    weight,
    checkPort,
    tag
  ])
)
