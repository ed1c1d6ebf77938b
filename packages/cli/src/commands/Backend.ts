/**
 * `doveroute backend add|list`.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { routingLayer } from "@doveroute/daemon"
import { Admin } from "@doveroute/store"
import { Console, Effect, Option } from "effect"
import { common, settingsFrom } from "../CommonOptions.js"

const add = Command.make(
  "add",
  {
    ...common,
    hostname: Args.text({ name: "HOSTNAME" }),
    hostip: Options.text("hostip").pipe(Options.withDescription("IP the proxies connect to"), Options.optional),
    state: Options.integer("state").pipe(Options.withDescription("0 = up (default), other = no new users"), Options.withDefault(0)),
    json: Options.boolean("json")
  },
  (o) =>
    Effect.gen(function*() {
      const settings = yield* settingsFrom(o)
      const b = yield* Admin.addBackend({ hostname: o.hostname, hostip: Option.getOrNull(o.hostip), state: o.state }).pipe(
        Effect.provide(routingLayer(settings))
      )
      yield* Console.log(o.json ? JSON.stringify(b) : `added backend ${b.id} ${b.hostname}${b.hostip ? " hostip " + b.hostip : ""} state ${b.state}`)
    })
).pipe(Command.withDescription("add a backend"))

const list = Command.make("list", { ...common, json: Options.boolean("json") }, (o) =>
  Effect.gen(function*() {
    const settings = yield* settingsFrom(o)
    const rows = yield* Admin.listBackends.pipe(Effect.provide(routingLayer(settings)))
    if (o.json) return yield* Console.log(JSON.stringify(rows))
    yield* Console.log(["id", "hostname", "hostip", "state", "users"].join("\t"))
    for (const b of rows) yield* Console.log([b.id, b.hostname, b.hostip ?? "-", b.state, b.users].join("\t"))
  })
).pipe(Command.withDescription("list backends with the number of users (or shards) on each"))

export const backend = Command.make("backend").pipe(
  Command.withDescription("manage backends"),
  Command.withSubcommands([add, list])
)
