/**
 * `doveroute serve`: run the daemon until SIGTERM.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { daemonLayer, Logging } from "@doveroute/daemon"
import { Array as Arr, Effect, Layer, Option } from "effect"
import { common, settingsFrom } from "../CommonOptions.js"

const opt = {
  ...common,
  dictSocket: Options.text("dict-socket").pipe(
    Options.withDescription("UNIX socket for Dovecot 2.3 passdb dict (uri = proxy:<socket>:<name>)"),
    Options.optional
  ),
  socketMode: Options.text("socket-mode").pipe(
    Options.withDescription("octal mode of the socket files (default 0660)"),
    Options.optional
  ),
  extraField: Options.text("extra-field").pipe(
    Options.withDescription("extra reply field KEY[=VALUE], repeatable (nopassword, port=143, …)"),
    Options.repeated
  ),
  downPolicy: Options.choice("down-policy", ["keep", "reassign", "tempfail"]).pipe(
    Options.withDescription("users mapped to a backend with state != 0: keep (default), reassign, tempfail"),
    Options.optional
  ),
  proxyFlag: Options.choice("proxy-flag", ["proxy_maybe", "proxy", "none"]).pipe(
    Options.withDescription("proxy flag in passdb replies (default proxy_maybe for mapping, proxy for shard)"),
    Options.optional
  ),
  logLevel: Options.choice("log-level", ["debug", "info", "warning", "error"]).pipe(Options.optional)
}

export const serve = Command.make("serve", opt, (o) =>
  Effect.gen(function*() {
    const settings = yield* settingsFrom(o, [
      ["dict.socket", o.dictSocket],
      ["dict.mode", o.socketMode],
      ["extra_fields", Arr.isNonEmptyReadonlyArray(o.extraField) ? Option.some(o.extraField) : Option.none()],
      ["down_policy", o.downPolicy],
      ["proxy_flag", o.proxyFlag],
      ["log_level", o.logLevel]
    ])
    return yield* Layer.launch(daemonLayer(settings)).pipe(
      Effect.provide(Logging.layer({ format: settings.logFormat, level: settings.logLevel }))
    )
  })
).pipe(Command.withDescription("run the routing daemon until SIGTERM"))
