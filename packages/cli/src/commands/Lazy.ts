/**
 * Command handlers whose implementation is imported when the command runs: the bundle keeps each
 * command group's code (and the store, settings and front-end code it needs) in its own chunk, so
 * that `doveroute --version` or `backend list` evaluates only what it runs.
 *
 * @since 0.1.0
 */
import type { Command } from "@effect/cli"
import { Effect } from "effect"

/** The values a command's handler gets for its options and arguments `C`. */
export type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

/**
 * The handler `name` of the module `load` imports, imported at its first call: `load` is
 * `() => import("./XRun.js")` (a literal import, so that the bundler gives the module its chunk).
 * Its errors are typed `unknown` (bin.ts reports any error with its message and exit code): the
 * handler's exact type would make the spec module's type depend on its implementation's, which
 * imports the spec's option types.
 */
export const lazy = <M extends { readonly [k in K]: (o: never) => Effect.Effect<unknown, unknown, never> }, K extends keyof M>(
  load: () => Promise<M>,
  name: K
) =>
(o: Parameters<M[K]>[0]): Effect.Effect<void, unknown> => Effect.asVoid(Effect.flatMap(Effect.promise(load), (m) => m[name](o)))
