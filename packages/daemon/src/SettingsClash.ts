/** Cross-listener checks of the settings: no socket path named twice. */
import * as path from "node:path"
import type { Settings } from "./SettingsTypes.js"

/**
 * The first UNIX socket path given to two of our listeners, or given as one of our listeners and
 * as a relay's upstream (Dovecot's socket), as a message; undefined when every path is distinct.
 */
export const socketPathClash = (s: Pick<Settings, "dict" | "auth" | "loginRelay" | "userdbRelay" | "http">): string | undefined => {
  const ours: Array<readonly [string, string]> = []
  if (s.dict !== undefined) ours.push(["dict.socket", s.dict.path])
  if (s.auth !== undefined) ours.push(["auth.socket", s.auth.path])
  if (s.loginRelay !== undefined) ours.push(["login_relay.socket", s.loginRelay.path])
  if (s.userdbRelay !== undefined) ours.push(["userdb_relay.socket", s.userdbRelay.path])
  if (s.http !== undefined && s.http.listen._tag === "Unix") ours.push(["http.listen", s.http.listen.path])
  const upstreams: Array<readonly [string, string]> = []
  if (s.loginRelay !== undefined) upstreams.push(["login_relay.upstream", s.loginRelay.upstream])
  if (s.userdbRelay !== undefined) upstreams.push(["userdb_relay.upstream", s.userdbRelay.upstream])
  const seen = new Map<string, string>()
  for (const [key, p] of ours) {
    const abs = path.resolve(p)
    const other = seen.get(abs)
    if (other !== undefined) return `${other} and ${key} name the same socket ${p}; each listener needs its own path`
    seen.set(abs, key)
  }
  for (const [key, p] of upstreams) {
    const other = seen.get(path.resolve(p))
    if (other !== undefined) return `${key} ${p} is doveroute's own ${other}; it must be Dovecot's socket`
  }
  return undefined
}
