/**
 * The bridge from socket code (plain callbacks) to the routing core (Effect): one runtime captured
 * at start, one `Promise` per request. Every failure — route error, store error or a defect — is
 * logged once here and becomes a `TempFail` outcome; front-ends map it to `temp_fail` / dict `F`.
 *
 * @since 0.1.0
 */
import { type Route, RouteError, Router, StoreError } from "@doveroute/routing"
import { Context, Effect, Layer, Runtime } from "effect"

/** The outcome of one routing request. */
export type LookupResult =
  | { readonly _tag: "Routed"; readonly route: Route }
  | { readonly _tag: "TempFail"; readonly reason: string; readonly detail: string }

/** Front-end facing routing: `lookup(user, frontend)` never rejects. */
export interface LookupService {
  readonly lookup: (user: string, frontend: string) => Promise<LookupResult>
}

export class Lookup extends Context.Tag("doveroute/Lookup")<Lookup, LookupService>() {
  /** Needs the {@link Router}. */
  static readonly layer = Layer.effect(
    Lookup,
    Effect.gen(function*() {
      const router = yield* Router
      const runtime = yield* Effect.runtime<never>()
      const run = Runtime.runPromise(runtime)
      const lookup = (user: string, frontend: string): Promise<LookupResult> =>
        run(
          router.route(user).pipe(
            Effect.tap((route) =>
              Effect.logDebug("routed").pipe(
                Effect.annotateLogs({ backend: route.backend.hostname, backend_id: route.backend.id, source: route.source })
              )
            ),
            Effect.map((route): LookupResult => ({ _tag: "Routed", route })),
            Effect.catchAll((e) =>
              Effect.as(
                Effect.logWarning("routing failed, answering temp_fail").pipe(
                  Effect.annotateLogs({ reason: e.reason, detail: e.detail })
                ),
                { _tag: "TempFail", reason: e.reason, detail: e.detail } as LookupResult
              )
            ),
            Effect.catchAllDefect((d) =>
              Effect.as(
                Effect.logError("routing defect, answering temp_fail", d),
                { _tag: "TempFail", reason: "Internal", detail: "internal error" } as LookupResult
              )
            ),
            Effect.annotateLogs({ frontend, user })
          )
        ).catch((): LookupResult => ({ _tag: "TempFail", reason: "Internal", detail: "internal error" }))
      return { lookup }
    })
  )
}

export { RouteError, StoreError }
