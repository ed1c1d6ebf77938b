/**
 * Secrets: where the daemon reads them from, and how they stay out of `ps` and the logs.
 *
 * A secret setting `KEY` (the store URL, `store_password`, `auth.password`, `http.token`,
 * `health.login.password`) comes
 * from the first of:
 * 1. `KEY` itself (flag, `DOVEROUTE_*` variable or config file);
 * 2. `KEY_file`: a file holding the secret (`store_file`, `auth.password_file`, `http.token_file`);
 * 3. `$CREDENTIALS_DIRECTORY/<credential>` when systemd passed one (`LoadCredential=<credential>:…`);
 *    see {@link CREDENTIALS}.
 * Giving both `KEY` and `KEY_file` is refused. A secret file is read whole; one trailing newline
 * (`\n` or `\r\n`) is dropped, an empty file is refused. A file other users can read or write (any
 * "other" permission bit) or one its group can write is refused at start, like ssh does for keys;
 * one its group can read (root:doveroute 0640) is accepted with a warning naming the group. The file
 * must be owned by root or the daemon's own user, and may not live under `/proc` or `/sys`.
 *
 * The values are `Redacted`: they never reach a log line or an error message. Secrets on the
 * command line are visible in `ps` while the process starts: {@link argvSecrets} names them (the
 * daemon warns) and {@link scrubbedTitle} gives the process title the daemon sets so that
 * `/proc/<pid>/cmdline` no longer shows them once it runs.
 *
 * @since 0.1.0
 */
import { SECRET_KEYS } from "@doveroute/routing"
import { redactUrl } from "@doveroute/store"
import { Config, ConfigError, Either, Option, Redacted } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** The systemd credential name of each secret setting (`LoadCredential=<name>:<file>`). */
export const CREDENTIALS = {
  store: "store",
  store_password: "store_password",
  "auth.password": "auth_password",
  "http.token": "http_token",
  "health.login.password": "health_login_password"
} as const

/** A secret and where it came from (for messages: never the value). */
export interface Secret {
  readonly value: Redacted.Redacted<string>
  /** `store_file /etc/doveroute/store.url`, `credential store`, `store` … */
  readonly source: string
  /** A non-fatal problem to log at start (a group-readable file). */
  readonly warning: string | undefined
}

/** The largest secret file read (a URL or a password, never more). */
const MAX_SECRET_BYTES = 64 * 1024

/** Read one secret file. Throws an `Error` whose message names the file and the problem (never the content). */
export const readSecretFile = (file: string): { readonly value: Redacted.Redacted<string>; readonly warning: string | undefined } => {
  const real = (() => {
    try {
      return fs.realpathSync(file)
    } catch {
      return file
    }
  })()
  if (/^\/(proc|sys)(\/|$)/.test(real)) {
    throw new Error(`secret file ${file} is under ${real.startsWith("/proc") ? "/proc" : "/sys"}; give a file that holds only the secret`)
  }
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOCTTY)
  } catch (e) {
    throw new Error(`cannot read secret file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw new Error(`secret file ${file} is not a regular file`)
    const own = process.getuid?.()
    if (own !== undefined && st.uid !== 0 && st.uid !== own) {
      throw new Error(`secret file ${file} is owned by uid ${st.uid}, not by root or the daemon's user (uid ${own}); that user could change the secret`)
    }
    const mode = st.mode & 0o777
    const octal = "0" + mode.toString(8).padStart(3, "0")
    if ((mode & 0o007) !== 0) {
      throw new Error(`secret file ${file} is accessible to every local user (mode ${octal}); run chmod o-rwx on it (0600 or 0640)`)
    }
    if ((mode & 0o020) !== 0) {
      throw new Error(`secret file ${file} is writable by its group (mode ${octal}); run chmod g-w on it (0600 or 0640)`)
    }
    if (st.size > MAX_SECRET_BYTES) throw new Error(`secret file ${file} is larger than ${MAX_SECRET_BYTES} bytes`)
    const text = fs.readFileSync(fd, "utf8").replace(/\r?\n$/, "")
    if (text.length === 0) throw new Error(`secret file ${file} is empty`)
    if (/[\r\n]/.test(text)) throw new Error(`secret file ${file} holds more than one line`)
    const warning = (mode & 0o040) !== 0
      ? `secret file ${file} is readable by group ${groupName(st.gid)} (mode ${octal}); every member of that group can read the secret`
      : undefined
    return { value: Redacted.make(text), warning }
  } finally {
    fs.closeSync(fd)
  }
}

const groupName = (gid: number): string => {
  try {
    for (const line of fs.readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":")
      if (f[2] === String(gid) && f[0]) return f[0]
    }
  } catch {
    // fall through to the number
  }
  return String(gid)
}

/** `$CREDENTIALS_DIRECTORY/<name>` when systemd set the directory and the file exists. */
export const credentialFile = (name: string, env: NodeJS.ProcessEnv = process.env): string | undefined => {
  const dir = env["CREDENTIALS_DIRECTORY"]
  if (dir === undefined || dir === "") return undefined
  const file = path.join(dir, name)
  return fs.existsSync(file) ? file : undefined
}

/**
 * The secret setting `key` (relative to the enclosing `Config.nested` section) with its `key_file`
 * companion and the systemd credential `credential`; `None` when none of the three is set.
 * `fullKey` names the setting in messages (`auth.password`).
 */
export const secretConfig = (key: string, fullKey: string, credential: string): Config.Config<Option.Option<Secret>> =>
  Config.all({
    value: Config.option(Config.redacted(key)),
    file: Config.option(Config.string(`${key}_file`))
  }).pipe(
    Config.mapOrFail((c): Either.Either<Option.Option<Secret>, ConfigError.ConfigError> => {
      if (Option.isSome(c.value) && Option.isSome(c.file)) {
        return Either.left(ConfigError.InvalidData([`${key}_file`], `set ${fullKey} or ${fullKey}_file, not both`))
      }
      if (Option.isSome(c.value)) return Either.right(Option.some({ value: c.value.value, source: fullKey, warning: undefined }))
      const fromFile = (file: string, source: string, at: string) => {
        try {
          const r = readSecretFile(file)
          return Either.right(Option.some<Secret>({ value: r.value, source, warning: r.warning }))
        } catch (e) {
          return Either.left(ConfigError.InvalidData([at], `${fullKey}: ${(e as Error).message}`))
        }
      }
      if (Option.isSome(c.file)) return fromFile(c.file.value, `${fullKey}_file ${c.file.value}`, `${key}_file`)
      const cred = credentialFile(credential)
      if (cred !== undefined) return fromFile(cred, `systemd credential ${credential}`, key)
      return Either.right(Option.none())
    })
  )

/**
 * The secret settings written inline in a parsed JSON config file: `store` with a password in the
 * URL, `store_password`, `auth.password`, `http.token`, an `extra_fields` entry `password=…`.
 */
export const inlineSecretKeys = (json: unknown): ReadonlyArray<string> => {
  if (typeof json !== "object" || json === null) return []
  const o = json as Record<string, unknown>
  const sub = (k: string): Record<string, unknown> => (typeof o[k] === "object" && o[k] !== null ? o[k] as Record<string, unknown> : {})
  const out: Array<string> = []
  if (typeof o["store"] === "string" && urlHasPassword(o["store"])) out.push("store")
  if (o["store_password"] !== undefined) out.push("store_password")
  if (sub("auth")["password"] !== undefined) out.push("auth.password")
  if (sub("http")["token"] !== undefined) out.push("http.token")
  const health = sub("health")
  if (typeof health["login"] === "object" && health["login"] !== null && (health["login"] as Record<string, unknown>)["password"] !== undefined) {
    out.push("health.login.password")
  }
  const ef = o["extra_fields"]
  if ((Array.isArray(ef) ? ef : [ef]).some((f) => typeof f === "string" && secretFieldKey(f) !== undefined)) out.push("extra_fields")
  return out
}

/**
 * The secret-file rule applied to a config file holding inline secrets (`keys`, from
 * {@link inlineSecretKeys}): `error` when every local user can read it, `warning` when its group
 * can; both name the file and the keys, never a value.
 */
export const configFileExposure = (
  file: string,
  mode: number,
  gid: number,
  keys: ReadonlyArray<string>
): { readonly error?: string; readonly warning?: string } => {
  if (keys.length === 0) return {}
  const octal = "0" + (mode & 0o777).toString(8).padStart(3, "0")
  const what = `config file ${file} holds ${keys.join(", ")}`
  if ((mode & 0o007) !== 0) {
    return { error: `${what} and is accessible to every local user (mode ${octal}); run chmod o-rwx on it, or move the secret to a *_file setting` }
  }
  if ((mode & 0o040) !== 0) {
    return { warning: `${what} and is readable by group ${groupName(gid)} (mode ${octal}); every member of that group can read the secret` }
  }
  return {}
}

/** Config paths (flag overrides) that hold a secret on the command line, with the flag that set it. */
const SECRET_FLAGS: ReadonlyArray<readonly [string, string]> = [
  ["auth.password", "--password"],
  ["store", "--store"],
  ["extra_fields", "--extra-field"]
]

/** True when a store URL carries a password (in the userinfo or a `password=` query parameter). */
const urlHasPassword = (url: string): boolean => redactUrl(url) !== url

/** The key of an extra field `KEY=VALUE` whose value is a secret (routing's `SECRET_KEYS`), else undefined. */
const secretFieldKey = (field: string): string | undefined => {
  const eq = field.indexOf("=")
  return eq > 0 && SECRET_KEYS.has(field.slice(0, eq)) ? field.slice(0, eq) : undefined
}

/**
 * The flags among `flags` (config path → value, as given on the command line) that carry a secret:
 * `--password`, `--store` with a password in the URL, `--extra-field password=…`.
 */
export const argvSecrets = (flags: ReadonlyMap<string, string | ReadonlyArray<string>>): ReadonlyArray<string> => {
  const out: Array<string> = []
  for (const [key, flag] of SECRET_FLAGS) {
    const v = flags.get(key)
    if (v === undefined) continue
    if (key === "store" && !(typeof v === "string" && urlHasPassword(v))) continue
    if (key === "extra_fields" && !(Array.isArray(v) ? v : [v]).some((f: string) => secretFieldKey(f) !== undefined)) continue
    out.push(flag)
  }
  return out
}

/**
 * `argv` with every secret value replaced by `xxx`: the value after `--password`, the password
 * in a `--store` URL, the value of a `--extra-field password=…` (also `--flag=value` forms).
 */
export const scrubbedTitle = (argv: ReadonlyArray<string>): string => {
  const out: Array<string> = []
  const scrub = (flag: string, value: string): string => {
    if (flag === "--password" || flag === "--http-token") return "xxx"
    if (flag === "--store") return redactUrl(value)
    if (flag === "--extra-field") {
      const key = secretFieldKey(value)
      return key === undefined ? value : `${key}=xxx`
    }
    return value
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const eq = a.indexOf("=")
    if (a.startsWith("--") && eq > 0) {
      out.push(`${a.slice(0, eq)}=${scrub(a.slice(0, eq), a.slice(eq + 1))}`)
    } else if (["--password", "--http-token", "--store", "--extra-field"].includes(a) && i + 1 < argv.length) {
      out.push(a, scrub(a, argv[i + 1]!))
      i++
    } else {
      out.push(a)
    }
  }
  return out.join(" ")
}
