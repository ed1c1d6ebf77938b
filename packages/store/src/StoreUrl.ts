/**
 * Store URLs: which database doveroute uses.
 *
 * - `sqlite:/absolute/path/file.db` (also `sqlite:///abs/path` and `sqlite:relative/path`)
 * - `postgres://user:pass@host:port/db` (also `postgresql://`); several hosts (a primary and its
 *   standbys) as libpq takes them, `postgres://user@h1:5432,h2:5433/db` (PgUrl.ts)
 * - `mysql://user:pass@host:port/db` (also `mariadb://`), with the parameters of MysqlUrl.ts
 *   (`?socket=/run/mysqld/mysqld.sock`, `?ssl=true`, …)
 *
 * The whole URL is kept `Redacted` (it may hold a password); {@link describeStoreUrl} gives a
 * loggable form with the password removed.
 *
 * @since 0.1.0
 */
import { ReasonError } from "@doveroute/routing"
import { Redacted } from "effect"
import { parseMysqlParams } from "./MysqlUrl.js"
import { pgHostUrls } from "./PgUrl.js"

export type StoreUrl =
  | {
    readonly _tag: "Sqlite"
    readonly filename: string
    /** `store_group`: group of the files and directories doveroute creates (0640/0750); none = 0600/0700. */
    readonly group?: string | undefined
  }
  | { readonly _tag: "Pg"; readonly url: Redacted.Redacted<string> }
  | { readonly _tag: "Mysql"; readonly url: Redacted.Redacted<string> }

/** A store URL that cannot be used; `reason` says why, the message never contains a password. */
export class StoreUrlError extends ReasonError("StoreUrlError")<"UnknownScheme" | "Malformed">() {}

/** Parse a store URL. Fails with {@link StoreUrlError}. */
export const parseStoreUrl = (raw: string): StoreUrl => {
  const s = raw.trim()
  if (s.startsWith("sqlite:")) {
    let path = s.slice("sqlite:".length)
    if (path.startsWith("//")) path = path.slice(2)
    if (path.length === 0) throw new StoreUrlError({ reason: "Malformed", detail: "sqlite: URL without a file path" })
    return { _tag: "Sqlite", filename: path }
  }
  const scheme = s.slice(0, Math.max(0, s.indexOf("://")))
  if (/^postgres(ql)?:\/\//i.test(s)) {
    let hosts: number
    try {
      hosts = pgHostUrls(s).length
    } catch (e) {
      throw new StoreUrlError({ reason: "Malformed", detail: (e as Error).message })
    }
    // several hosts: each made a one-host URL, checked there (`new URL` refuses the list itself)
    if (hosts > 1) return { _tag: "Pg", url: Redacted.make(s) }
  }
  let url: URL
  try {
    url = new URL(s)
  } catch {
    throw new StoreUrlError({ reason: "Malformed", detail: `store URL is not a valid URL (scheme ${JSON.stringify(scheme)})` })
  }
  switch (url.protocol) {
    case "postgres:":
    case "postgresql:":
      return { _tag: "Pg", url: Redacted.make(s) }
    case "mysql:":
    case "mariadb:":
      url.protocol = "mysql:"
      try {
        parseMysqlParams(url.searchParams)
      } catch (e) {
        throw new StoreUrlError({ reason: "Malformed", detail: (e as Error).message })
      }
      return { _tag: "Mysql", url: Redacted.make(url.toString()) }
    default:
      throw new StoreUrlError({
        reason: "UnknownScheme",
        detail: `unknown store URL scheme ${JSON.stringify(url.protocol)}; use sqlite:, postgres:// or mysql://`
      })
  }
}

/** Query parameters that carry a password (libpq, MySQL drivers): their values are redacted. */
const SECRET_PARAM = /([?&](?:password|pass|passwd|pwd|sslpassword|sslkeypassword|sslkey_password|secret|token)=)[^&#]*/gi

/**
 * `url` with every password replaced by `xxx`: the userinfo password (everything between `://`
 * and the last `@`, so `u:pa@ss@h` and `u:pa/ss@h` are covered; only the user name before the
 * first `:`, `/` or `?` is kept) and the value of password-like query parameters
 * (`password`, `pass`, `sslpassword`, …). The one redaction for logs, `config check` and the
 * process title; text, so a URL the parser refuses is redacted too.
 */
export const redactUrl = (url: string): string => {
  let out = url
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)@/is.exec(out)
  if (m !== null) {
    const userinfo = m[2]!
    const user = /^[^:@/?#]*/.exec(userinfo)![0]
    if (user !== userinfo) out = `${m[1]}${user}:xxx@${out.slice(m[0].length)}`
  }
  return out.replace(SECRET_PARAM, "$1xxx")
}

/** A loggable description: the URL without its passwords ({@link redactUrl}). */
export const describeStoreUrl = (store: StoreUrl): string =>
  store._tag === "Sqlite" ? `sqlite:${store.filename}` : redactUrl(Redacted.value(store.url))
