/**
 * Options every `doveroute` command shares, and how flags become settings overrides (no settings
 * are loaded here: the command implementations do, see AdminSupport.ts).
 *
 * @since 0.1.0
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import type { FlagOverrides } from "@doveroute/daemon"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { Effect, Either, Option, type Schema } from "effect"

/** `--config FILE`, `--store URL`, `--strategy mapping|shard`. */
export const common = {
  config: Options.file("config").pipe(
    Options.withDescription("JSON config file (flags and DOVEROUTE_* environment variables override it)"),
    Options.optional
  ),
  store: Options.text("store").pipe(
    Options.withDescription("store URL: sqlite:/path/file.db, postgres://…, mysql://… (a URL with a password shows in ps: prefer --store-file)"),
    Options.optional
  ),
  storeFile: Options.text("store-file").pipe(
    Options.withDescription("file holding the store URL (mode 0600/0640; the systemd credential `store` also works)"),
    Options.optional
  ),
  strategy: Options.choice("strategy", ["mapping", "shard"]).pipe(
    Options.withDescription("mapping (one row per user) or shard (one row per 16-bit CRC32 shard)"),
    Options.optional
  )
} as const

/**
 * Check an option's value with a settings schema (SettingValues.ts): a bad value is a usage error
 * (exit 2) whose one line names the flag and the accepted values. The option keeps its raw value.
 */
export const validated = <B, A>(flag: string, schema: Schema.Schema<B, A>) => (self: Options.Options<A>): Options.Options<A> =>
  Options.mapEffect(self, (value) =>
    Either.match(SettingValues.check(schema, value), {
      onLeft: (message) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(`${flag}: ${message}`))),
      onRight: () => Effect.succeed(value)
    }))

/** How a flag takes its value: one of `choices`, `repeated`, or checked by a settings schema. */
export interface FlagKind<B = never> {
  readonly choices?: ReadonlyArray<string>
  readonly repeated?: boolean
  readonly check?: Schema.Schema<B, string>
}

/** A flag that sets the settings keys `settings`: its option (none given = `Option.none()`). */
export interface Flag {
  readonly settings: ReadonlyArray<string>
  readonly option: Options.Options<Option.Option<string | ReadonlyArray<string>>>
}

/** One row of a command's flag table (e.g. `serve`'s): the option is built from the row. */
export const flag = <B = never>(
  name: string,
  settings: ReadonlyArray<string>,
  description: string | undefined,
  kind: FlagKind<B> = {}
): Flag => {
  let base: Options.Options<string> = kind.choices !== undefined
    ? Options.choice(name, kind.choices as ReadonlyArray<string> & [string, ...Array<string>])
    : Options.text(name)
  if (kind.check !== undefined) base = base.pipe(validated(`--${name}`, kind.check))
  if (description !== undefined) base = base.pipe(Options.withDescription(description))
  const option: Flag["option"] = kind.repeated === true
    ? base.pipe(Options.repeated, Options.map((vs) => (vs.length > 0 ? Option.some(vs) : Option.none())))
    : base.pipe(Options.optional)
  return { settings, option }
}

/** Values of {@link common}. */
export interface CommonValues {
  readonly config: Option.Option<string>
  readonly store: Option.Option<string>
  readonly storeFile: Option.Option<string>
  readonly strategy: Option.Option<string>
}

/** Build the flag overrides map from option values: `[configPath, Option<value>]` pairs. */
export const overrides = (
  pairs: ReadonlyArray<readonly [string, Option.Option<string | ReadonlyArray<string>>]>
): FlagOverrides => {
  const m = new Map<string, string | ReadonlyArray<string>>()
  for (const [k, v] of pairs) if (Option.isSome(v)) m.set(k, v.value)
  return m
}

/** The flag overrides of common values plus extra ones. */
export const flagsFrom = (
  c: CommonValues,
  extra: ReadonlyArray<readonly [string, Option.Option<string | ReadonlyArray<string>>]> = []
): FlagOverrides => overrides([["store", c.store], ["store_file", c.storeFile], ["strategy", c.strategy], ...extra])

/** `--store/--config/--strategy` plus `--json`: the options of the admin commands. */
export const adminOptions = { ...common, json: Options.boolean("json").pipe(Options.withDescription("machine-readable output on stdout")) } as const

/** An optional text option. */
export const optionalText = (name: string, description: string) =>
  Options.text(name).pipe(Options.withDescription(description), Options.optional)
