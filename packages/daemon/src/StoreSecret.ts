/**
 * `store_password`: the PostgreSQL/MySQL password kept apart from the store URL (a file or a
 * systemd credential), so the URL in the config file or on the command line carries none.
 *
 * @since 0.1.0
 */
import { pgHostUrls } from "@doveroute/store"
import { Redacted } from "effect"

/**
 * The store URL `raw` with `password` put in as its password (percent-encoded). Throws an `Error`
 * (never naming the password) for an SQLite URL, an unparseable URL, or a URL that already has one.
 */
export const storeWithPassword = (raw: string, password: Redacted.Redacted<string>): string => {
  const s = raw.trim()
  if (s.startsWith("sqlite:")) throw new Error("store_password is set but the store is SQLite (it has no password)")
  if (/^postgres(ql)?:\/\//i.test(s) && pgHostUrls(s).length > 1) return withPasswordInList(s, password)
  let u: URL
  try {
    u = new URL(s)
  } catch {
    throw new Error("store URL is not a valid URL")
  }
  if (u.password !== "") throw new Error("the store URL has a password and store_password is set too; keep one of them")
  if (u.username === "") throw new Error("store_password needs a user name in the store URL (postgres://USER@host/db)")
  u.password = encodeURIComponent(Redacted.value(password))
  return u.toString()
}

/**
 * A PostgreSQL URL naming several hosts (`postgres://user@h1:5432,h2:5433/db`, which `URL` does not
 * take): the password goes into the one userinfo, shared by every host.
 */
const withPasswordInList = (s: string, password: Redacted.Redacted<string>): string => {
  const m = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/is.exec(s)!
  const authority = m[2]!
  const at = authority.lastIndexOf("@")
  const userinfo = at >= 0 ? authority.slice(0, at) : ""
  if (userinfo.includes(":")) throw new Error("the store URL has a password and store_password is set too; keep one of them")
  if (userinfo === "") throw new Error("store_password needs a user name in the store URL (postgres://USER@host/db)")
  return `${m[1]}${userinfo}:${encodeURIComponent(Redacted.value(password))}@${authority.slice(at + 1)}${m[3]}`
}
