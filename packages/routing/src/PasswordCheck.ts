/**
 * Who checks the password: one rule that keeps doveroute's own reply fields from admitting a login
 * that no one checks.
 *
 * `nopassword` in a passdb reply tells Dovecot to accept any password for that passdb. That is
 * safe only when the login is then proxied to a backend that checks the password itself:
 * - `proxy_flag = proxy`: every login is proxied. A backend that is this very server is refused
 *   by Dovecot as a loop ("Proxying loops to itself", or the proxy TTL), never logged in locally.
 * - `proxy_flag = proxy_maybe`: Dovecot logs the user in locally when the backend is this server
 *   (its own IP and port), with the password nobody checked.
 * - `proxy_flag = none`: no login is proxied, so every user logs in locally with any password.
 *
 * `noauthenticate` is not refused: Dovecot never accepts a login on it alone (the passdb result
 * becomes "next", and the chain needs another passdb that succeeded).
 *
 * @since 0.1.0
 */
import type { ExtraField } from "./Reply.js"
import type { ProxyFlag } from "./Strategy.js"

/** The ways to route a login with a checked password, for the refusal message. */
const FIXES =
  "fix: proxy_flag proxy (every login is proxied and the backend checks the password; Dovecot refuses a backend that is this server as a loop), " +
  "or drop nopassword and put an authenticating passdb first (config/dovecot-2.3/95-doveroute-dict-chain.conf, config/dovecot-2.4/95-doveroute-http-chain.conf)"

/**
 * The one-line refusal when `extraFields` waive Dovecot's password check while `proxyFlag` lets
 * a login stay on this server; undefined when the combination is safe.
 */
export const uncheckedLoginRisk = (proxyFlag: ProxyFlag, extraFields: ReadonlyArray<ExtraField>): string | undefined => {
  if (proxyFlag === "proxy" || !extraFields.some((f) => f.key === "nopassword")) return undefined
  const risk = proxyFlag === "proxy_maybe"
    ? "a user whose backend is this Dovecot server logs in locally with any password"
    : "without a proxy flag every user logs in locally with any password"
  return `extra_fields nopassword with proxy_flag ${proxyFlag} admits logins no one checks: ${risk}. ${FIXES}`
}
