/**
 * Where settings come from, in order of precedence: command-line flags, `DOVEROUTE_*` environment
 * variables, the JSON config file, then the defaults of the schema (Settings.ts).
 */
import { ConfigProvider, Effect } from "effect"
import * as fs from "node:fs"
import { configFileExposure, inlineSecretKeys } from "./Secrets.js"
import { settingsConfig } from "./Settings.js"
import { SettingsError } from "./SettingsTypes.js"
import * as StrictSettings from "./StrictSettings.js"

/** Read and parse a JSON config file into a provider; unknown keys and wrong JSON types are refused (StrictSettings.ts). */
export const fileProvider = (file: string) =>
  Effect.try({
    try: () => ({ json: JSON.parse(fs.readFileSync(file, "utf8")) as unknown, st: fs.statSync(file) }),
    catch: (e) =>
      new SettingsError({ reason: "ConfigFile", detail: `cannot read config file ${file}: ${(e as Error).message}` })
  }).pipe(
    Effect.flatMap(({ json, st }) => {
      const problem = StrictSettings.checkConfigJson(settingsConfig, json, file)
      if (problem !== undefined) return Effect.fail(new SettingsError({ reason: problem.reason, detail: `invalid settings: ${problem.message}` }))
      // inline secrets: the secret-file rule applies to the config file (Secrets.ts)
      const exposure = configFileExposure(file, st.mode, st.gid, inlineSecretKeys(json))
      return exposure.error !== undefined
        ? Effect.fail(new SettingsError({ reason: "ConfigFile", detail: exposure.error }))
        : Effect.succeed({ provider: ConfigProvider.fromJson(json), warning: exposure.warning })
    })
  )

/** Environment variables `DOVEROUTE_*` (constant case, `_` between sections, `,` between list items). */
export const envProvider = ConfigProvider.fromEnv().pipe(
  ConfigProvider.constantCase,
  ConfigProvider.nested("DOVEROUTE")
)

/**
 * Flags given on the command line, as a flat map of config paths (`store`, `dict.socket`,
 * `extra_fields` …) to values; they win over everything else.
 */
export type FlagOverrides = ReadonlyMap<string, string | ReadonlyArray<string>>

const flagsProvider = (flags: FlagOverrides) => {
  const json: Record<string, unknown> = {}
  for (const [path, value] of flags) {
    const parts = path.split(".")
    let o = json
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>
    o[parts[parts.length - 1]!] = value
  }
  return ConfigProvider.fromJson(json)
}

/**
 * Load settings: flags, then `DOVEROUTE_*` env, then the config file (when given), then defaults.
 * Fails with {@link SettingsError} naming the bad key.
 */
export const loadSettings = (options: { readonly configFile?: string | undefined; readonly flags?: FlagOverrides }) =>
  Effect.gen(function*() {
    const envProblem = StrictSettings.checkEnvironment(settingsConfig, process.env)
    if (envProblem !== undefined) {
      return yield* new SettingsError({ reason: envProblem.reason, detail: `invalid settings: ${envProblem.message}` })
    }
    let provider = flagsProvider(options.flags ?? new Map()).pipe(ConfigProvider.orElse(() => envProvider))
    let fileWarning: string | undefined
    if (options.configFile !== undefined) {
      const file = yield* fileProvider(options.configFile)
      fileWarning = file.warning
      provider = provider.pipe(ConfigProvider.orElse(() => file.provider))
    }
    const settings = yield* Effect.withConfigProvider(settingsConfig, provider).pipe(
      Effect.mapError((e) => new SettingsError({ reason: "Invalid", detail: `invalid settings: ${StrictSettings.describeConfigError(e)}` }))
    )
    return fileWarning === undefined ? settings : { ...settings, secretWarnings: [...(settings.secretWarnings ?? []), fileWarning] }
  })
