/**
 * What `doveroute lookup USER` does (the options: Lookup.ts): the fields the daemon would return
 * and whether it would insert a row, without writing anything.
 *
 * @since 0.1.0
 */
import { routingLayer } from "@doveroute/daemon"
import { type Field, fieldsForLog, replyFields, Router, SECRET_KEYS } from "@doveroute/routing"
import { Console, Effect, Option } from "effect"
import { settingsFrom } from "./AdminSupport.js"
import type { Parsed } from "./Lazy.js"
import type { lookupConfig } from "./Lookup.js"

const hide = (fields: ReadonlyArray<Field>) =>
  Object.fromEntries(fields.map(([k, v]) => [k, SECRET_KEYS.has(k) ? "<hidden>" : v ?? true]))

export const lookup = (o: Parsed<typeof lookupConfig>) =>
  Effect.gen(function*() {
    const settings = yield* settingsFrom(o)
    const preview = yield* Effect.flatMap(Router, (r) => r.preview(o.user, Option.getOrUndefined(o.tag))).pipe(
      Effect.provide(routingLayer(settings, { readOnly: true }))
    )
    const backend = Option.getOrUndefined(preview.backend)
    const fields = backend ? replyFields(backend, settings.proxyFlag, settings.extraFields) : undefined
    const out = {
      user: preview.user,
      key: preview.key,
      mapped: backend !== undefined,
      wouldInsert: preview.wouldInsert,
      tag: preview.tag,
      tagSource: preview.tagSource,
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
        `${o.user}: not mapped (key ${String(preview.key)}, ${preview.tag === null ? "untagged" : `tag ${preview.tag} from ${preview.tagSource}`}); a login would insert a row on one of: ` +
          (preview.candidates.length > 0 ? preview.candidates.map((b) => b.hostname).join(", ") : "none (temp_fail)")
      )
    }
  })
