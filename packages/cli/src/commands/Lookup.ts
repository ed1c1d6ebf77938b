/**
 * `doveroute lookup USER`: the fields the daemon would return and whether it would insert a row,
 * without writing anything.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { routingLayer } from "@doveroute/daemon"
import { type Field, fieldsForLog, replyFields, Router, SECRET_KEYS } from "@doveroute/routing"
import { Console, Effect, Option } from "effect"
import { common, settingsFrom } from "../CommonOptions.js"

const hide = (fields: ReadonlyArray<Field>) =>
  Object.fromEntries(fields.map(([k, v]) => [k, SECRET_KEYS.has(k) ? "<hidden>" : v ?? true]))

export const lookup = Command.make(
  "lookup",
  { ...common, user: Args.text({ name: "USER" }), json: Options.boolean("json") },
  (o) =>
    Effect.gen(function*() {
      const settings = yield* settingsFrom(o)
      const preview = yield* Effect.flatMap(Router, (r) => r.preview(o.user)).pipe(
        Effect.provide(routingLayer(settings, { readOnly: true }))
      )
      const backend = Option.getOrUndefined(preview.backend)
      const fields = backend ? replyFields(backend, settings.proxyFlag, settings.extraFields) : undefined
      const out = {
        user: preview.user,
        key: preview.key,
        mapped: backend !== undefined,
        wouldInsert: preview.wouldInsert,
        backend: backend ?? null,
        fields: fields ? hide(fields) : null,
        candidates: preview.candidates.map((b) => ({ id: b.id, hostname: b.hostname }))
      }
      if (o.json) return yield* Console.log(JSON.stringify(out))
      if (fields) {
        yield* Console.log(`${o.user}: backend ${backend!.id} (${backend!.hostname}), key ${String(preview.key)}`)
        yield* Console.log(`fields: ${fieldsForLog(fields)}`)
      } else {
        yield* Console.log(
          `${o.user}: not mapped (key ${String(preview.key)}); a login would insert a row on one of: ` +
            (preview.candidates.length > 0 ? preview.candidates.map((b) => b.hostname).join(", ") : "none (temp_fail)")
        )
      }
    })
).pipe(Command.withDescription("show how a user is routed, without writing"))
