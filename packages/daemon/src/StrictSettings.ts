/**
 * Strict settings: a mistyped key is an error, not a default.
 *
 * The known keys are **derived from the settings `Config` itself** ({@link knownKeys}): the
 * config is loaded once against a provider that has no values and records every key the config
 * asks for, with its kind (text, integer, boolean, one of a list) and whether it is a list. A key
 * added to `settingsConfig` (Settings.ts) is known at once; only keys read outside that config go
 * in {@link EXTRA_KEYS}, and `DOVEROUTE_*` variables that are not settings (tooling) in
 * {@link OTHER_ENVIRONMENT}.
 *
 * Checks (each failure is ONE line naming the key and what is accepted, never the value: it may
 * be a secret such as `auth.password` or a store URL with a password):
 * - the JSON config file ({@link checkConfigJson}): an object at the top; every key at every level
 *   known (with a "did you mean" for near misses); sections are objects, lists are arrays,
 *   booleans are JSON booleans, numbers are numbers (or digit strings), text is a string; no `null`;
 * - the environment ({@link checkEnvironment}): every `DOVEROUTE_*` variable is a setting
 *   (`DOVEROUTE_<KEY>`, sections joined by `_`) or one of {@link OTHER_ENVIRONMENT};
 * - values are then checked by the config itself; {@link describeConfigError} turns its error
 *   into one line.
 *
 * @since 0.1.0
 */
import { type Config, ConfigError, ConfigProvider, Effect, HashSet } from "effect"
import * as PathPatch from "effect/ConfigProviderPathPatch"

/** What a key holds, from the config primitive that reads it. */
export type KeyKind = "boolean" | "integer" | "number" | "choice" | "text"

/** One known settings key. */
export interface KnownKey {
  /** Dotted path as in the config file: `store`, `dict.socket`, `cache.max_entries`. */
  readonly key: string
  readonly kind: KeyKind
  /** True for lists (`extra_fields`, `port`, `kick_proxies`): a JSON array, or comma-separated in the environment. */
  readonly list: boolean
  /** Accepted values in words (`one of (keep, reassign, tempfail)`, `a text property` …). */
  readonly accepts: string
}

/**
 * Keys read outside `settingsConfig` (none today). A module that reads a key some other way adds
 * it here, so that files and environments using it are not refused.
 */
export const EXTRA_KEYS: ReadonlyArray<KnownKey> = []

/**
 * `DOVEROUTE_*` environment variables that are not settings: test and build tooling
 * (testkit's Dovecot 2.4 chroot and its tarball cache). Everything else under `DOVEROUTE_` must be
 * a setting.
 */
export const OTHER_ENVIRONMENT: ReadonlyArray<string> = [
  // test kit and install scripts
  "DOVEROUTE_DOVECOT24_ROOT", "DOVEROUTE_CACHE_DIR", "DOVEROUTE_RUNTIME_DIR", "DOVEROUTE_NATIVE_MODULES",
  // the launcher (packages/cli/bin/doveroute.mjs): run the TypeScript sources
  "DOVEROUTE_DEV",
  // the Debian package: its build (scripts/package-deb.sh) and purge (packaging/)
  "DOVEROUTE_DEB_COMPRESS", "DOVEROUTE_DEB_COMPRESS_LEVEL", "DOVEROUTE_DEB_VERSION", "DOVEROUTE_DEB_MAINTAINER",
  "DOVEROUTE_LINTIAN", "DOVEROUTE_PURGE_STORE"
]

const kindOf = (description: string): KeyKind =>
  description === "a boolean property" ? "boolean"
  : description === "an integer property" ? "integer"
  : description === "a number property" ? "number"
  : description.startsWith("one of (") ? "choice"
  : "text"

const cache = new WeakMap<object, ReadonlyArray<KnownKey>>()

/**
 * Every key `config` reads, in the order it reads them, plus {@link EXTRA_KEYS}. The config runs
 * once against a provider without values (defaults and `Config.option` take over), recording each
 * primitive's path; a path the provider is asked to enumerate is a list.
 */
export const knownKeys = (config: Config.Config<unknown>): ReadonlyArray<KnownKey> => {
  const hit = cache.get(config)
  if (hit !== undefined) return hit
  const found = new Map<string, { kind: KeyKind; accepts: string }>()
  const lists = new Set<string>()
  const flat = ConfigProvider.makeFlat({
    load: (path, primitive) => {
      const key = path.join(".")
      if (!found.has(key)) found.set(key, { kind: kindOf(primitive.description), accepts: primitive.description })
      return Effect.fail(ConfigError.MissingData([...path], "recording keys"))
    },
    enumerateChildren: (path) => {
      lists.add(path.join("."))
      return Effect.succeed(HashSet.empty<string>())
    },
    patch: PathPatch.empty
  })
  Effect.runSync(Effect.either(ConfigProvider.fromFlat(flat).load(config)))
  const keys: Array<KnownKey> = [...found].map(([key, k]) => ({ key, ...k, list: lists.has(key) }))
  for (const extra of EXTRA_KEYS) if (!found.has(extra.key)) keys.push(extra)
  cache.set(config, keys)
  return keys
}

/** The environment variable of a key: `dict.socket` → `DOVEROUTE_DICT_SOCKET`. */
export const envName = (key: string): string => "DOVEROUTE_" + key.replace(/\./g, "_").toUpperCase()

/** A settings problem as one line: an unknown key, a wrong JSON type (`Invalid`) or a file that is not a JSON object. */
export interface StrictProblem {
  readonly reason: "UnknownKey" | "Invalid" | "ConfigFile"
  readonly key: string
  readonly message: string
}

const distance = (a: string, b: string): number => {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

/** The nearest candidate within a few edits, for "did you mean". */
const nearest = (name: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase())
    if (d < bestD) [best, bestD] = [c, d]
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

const jsonType = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`

/** `a, b, c` of the keys directly under `section` ("" = top level). */
const childrenOf = (keys: ReadonlyArray<KnownKey>, section: string): Array<string> => {
  const prefix = section === "" ? "" : section + "."
  const out = new Set<string>()
  for (const k of keys) if (k.key.startsWith(prefix)) out.add(k.key.slice(prefix.length).split(".")[0]!)
  return [...out]
}

const leafProblem = (k: KnownKey, v: unknown): string | undefined => {
  const what = `${k.key} must be`
  if (k.list) {
    if (!Array.isArray(v)) return `${what} a JSON array (of strings), got ${jsonType(v)}`
    const bad = v.find((x) => typeof x !== "string" && typeof x !== "number")
    return bad === undefined ? undefined : `${what} a JSON array of strings, got an item that is ${jsonType(bad)}`
  }
  switch (k.kind) {
    case "boolean":
      return typeof v === "boolean" ? undefined : `${what} true or false, got ${jsonType(v)}`
    case "integer":
    case "number":
      return typeof v === "number" || (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v))
        ? undefined
        : `${what} ${k.kind === "integer" ? "an integer" : "a number"}, got ${jsonType(v)}`
    case "choice":
      return typeof v === "string" ? undefined : `${what} ${k.accepts}, got ${jsonType(v)}`
    case "text":
      return typeof v === "string" ? undefined : `${what} a string, got ${jsonType(v)}`
  }
}

/**
 * Check a parsed JSON config file against the known keys: the first problem, or undefined.
 * `file` is only used in messages.
 */
export const checkConfigJson = (config: Config.Config<unknown>, json: unknown, file: string): StrictProblem | undefined => {
  const keys = knownKeys(config)
  const byKey = new Map(keys.map((k) => [k.key, k]))
  const walk = (value: Record<string, unknown>, section: string): StrictProblem | undefined => {
    for (const [name, v] of Object.entries(value)) {
      const key = section === "" ? name : `${section}.${name}`
      const leaf = byKey.get(key)
      const isSection = keys.some((k) => k.key.startsWith(key + "."))
      if (v === null) {
        return { reason: "Invalid", key, message: `${key} in ${file} is null: give a value or leave the key out for the default` }
      }
      if (leaf !== undefined) {
        const p = leafProblem(leaf, v)
        if (p !== undefined) return { reason: "Invalid", key, message: `${p} (in ${file})` }
      } else if (isSection) {
        if (typeof v !== "object" || Array.isArray(v)) {
          return { reason: "Invalid", key, message: `${key} in ${file} must be a section (a JSON object with ${childrenOf(keys, key).join(", ")}), got ${jsonType(v)}` }
        }
        const p = walk(v as Record<string, unknown>, key)
        if (p !== undefined) return p
      } else {
        const here = childrenOf(keys, section)
        const guess = nearest(name, here)
        return {
          reason: "UnknownKey",
          key,
          message: `unknown key ${JSON.stringify(key)} in ${file}` +
            (guess !== undefined ? `; did you mean ${JSON.stringify(section === "" ? guess : `${section}.${guess}`)}?` : "") +
            ` (known ${section === "" ? "top-level keys" : `keys of ${section}`}: ${here.join(", ")})`
        }
      }
    }
    return undefined
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return { reason: "ConfigFile", key: "", message: `${file} must hold a JSON object ({"store": …, "dict": {…}}), got ${jsonType(json)}` }
  }
  return walk(json as Record<string, unknown>, "")
}

/** Check `DOVEROUTE_*` variables: the first one that is not a setting, or undefined. */
export const checkEnvironment = (
  config: Config.Config<unknown>,
  env: Readonly<Record<string, string | undefined>>
): StrictProblem | undefined => {
  const ours = Object.keys(env).filter((name) => name.startsWith("DOVEROUTE_") && !OTHER_ENVIRONMENT.includes(name))
  // without one, the known keys are not needed (deriving them costs every admin command ~10 ms)
  if (ours.length === 0) return undefined
  const names = new Map(knownKeys(config).map((k) => [envName(k.key), k.key]))
  for (const name of ours) {
    if (names.has(name)) continue
    const guess = nearest(name, [...names.keys()])
    return {
      reason: "UnknownKey",
      key: name,
      message: `unknown environment variable ${name}` +
        (guess !== undefined ? `; did you mean ${guess}?` : "") +
        ` (settings variables are DOVEROUTE_<KEY>, sections joined by _, e.g. DOVEROUTE_STORE, DOVEROUTE_DICT_SOCKET; unset it)`
    }
  }
  return undefined
}

/** The first concrete problem of a `ConfigError`, on one line: `key: message`. */
export const describeConfigError = (e: ConfigError.ConfigError): string => {
  const leaves: Array<{ path: ReadonlyArray<string>; message: string; missing: boolean }> = []
  const visit = (x: ConfigError.ConfigError): void => {
    switch (x._op) {
      case "And":
      case "Or":
        visit(x.left)
        visit(x.right)
        return
      case "InvalidData":
      case "SourceUnavailable":
      case "Unsupported":
        leaves.push({ path: x.path, message: x.message, missing: false })
        return
      case "MissingData":
        leaves.push({ path: x.path, message: x.message, missing: true })
        return
    }
  }
  visit(e)
  const first = leaves.find((l) => !l.missing) ?? leaves[0]
  if (first === undefined) return String(e)
  // a section's own check names its key in full inside the section: drop the repeated segment
  const parts = first.path.filter((p, i) => !/^\[\d+\]$/.test(p) && p !== first.path[i - 1])
  // a value from the environment is named by its variable (DOVEROUTE_DOWN_POLICY)
  const key = parts[0] === "DOVEROUTE" ? parts.join("_") : parts.join(".")
  const message = first.message.replace(/\s*\n\s*/g, " ") +
    (first.message.startsWith("Expected a boolean value") ? " (accepted: true, false, yes, no, on, off, 1, 0)" : "")
  return key.length > 0 && !message.startsWith(key) ? `${key}: ${message}` : message
}
