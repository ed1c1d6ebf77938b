/**
 * Reply fields for a routed user, built fresh for every request (no field of one user's reply can
 * reach another's — the published scripts' defect 5).
 *
 * Field order: proxy flag, `host`, `hostip` (only when non-empty), then the configured extra fields
 * in configuration order. Secrets (`password=`, `pass=`) stay `Redacted` until a front-end encodes
 * them onto the wire.
 *
 * @since 0.1.0
 */
import { Redacted } from "effect"
import { type Backend, usableHostip } from "./Backend.js"
import type { ProxyFlag } from "./Strategy.js"

/** An extra reply field from the configuration (`nopassword`, `password=<master>`, `port=25143`, …). */
export interface ExtraField {
  readonly key: string
  /** `undefined` for a flag; `Redacted` for secret keys. */
  readonly value: string | Redacted.Redacted<string> | undefined
}

/** Keys whose values are secrets and are never logged. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(["password", "pass", "master_password"])

/** A field that is not valid as a Dovecot reply key (empty, or contains TAB/LF/CR/`=`). */
export class InvalidExtraField extends Error {
  constructor(readonly spec: string, readonly reason: string) {
    super(`invalid extra field ${JSON.stringify(spec)}: ${reason}`)
    this.name = "InvalidExtraField"
  }
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/

/**
 * The routing fields doveroute itself sets in every reply: never an extra field. Dovecot acts on
 * `proxy_maybe` even when `proxy=y` is also sent (a user whose backend is this server logs in
 * locally), and a second `host`/`hostip` would override the routed backend. Compared
 * case-insensitively.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(["proxy", "proxy_maybe", "host", "hostip"])

/**
 * Parse `KEY` or `KEY=VALUE` (split at the first `=`). Values of {@link SECRET_KEYS} become
 * `Redacted`. Throws {@link InvalidExtraField} for an empty or malformed key and for a
 * {@link RESERVED_KEYS} key.
 */
export const parseExtraField = (spec: string): ExtraField => {
  const eq = spec.indexOf("=")
  const key = eq === -1 ? spec : spec.slice(0, eq)
  // name the key only: the value may be a secret (`password=…`)
  if (!KEY_RE.test(key)) throw new InvalidExtraField(key, "key must be letters, digits, '_', '.' or '-'")
  if (RESERVED_KEYS.has(key.toLowerCase())) {
    throw new InvalidExtraField(key, "reserved: doveroute sets the routing fields proxy/proxy_maybe, host and hostip itself (set proxy_flag instead)")
  }
  if (eq === -1) return { key, value: undefined }
  const raw = spec.slice(eq + 1)
  if (/[\t\n\r]/.test(raw)) throw new InvalidExtraField(key, "value contains TAB, CR or LF")
  return { key, value: SECRET_KEYS.has(key) ? Redacted.make(raw) : raw }
}

/** A reply field as it goes on the wire: `[key, value]`, `value` undefined for a bare flag. */
export type Field = readonly [string, string | undefined]

/** Render an extra field's value for the wire (reveals secrets: only call when encoding). */
export const revealValue = (value: ExtraField["value"]): string | undefined =>
  value === undefined ? undefined : Redacted.isRedacted(value) ? Redacted.value(value) : value

/** Render a field list for logs: secret values replaced by `<hidden>`. */
export const fieldsForLog = (fields: ReadonlyArray<Field>): string =>
  fields.map(([k, v]) => (v === undefined ? k : `${k}=${SECRET_KEYS.has(k) ? "<hidden>" : v}`)).join(" ")

/**
 * The passdb reply fields for `backend`: a new array on every call.
 * `proxyFlag` `none` omits the flag; flags are rendered as `y` (`proxy_maybe=y`, `proxy=y`) like the scripts.
 */
export const replyFields = (
  backend: Backend,
  proxyFlag: ProxyFlag,
  extra: ReadonlyArray<ExtraField>
): Array<Field> => {
  const fields: Array<Field> = []
  if (proxyFlag !== "none") fields.push([proxyFlag, "y"])
  fields.push(["host", backend.hostname])
  const hostip = usableHostip(backend)
  if (hostip !== undefined) fields.push(["hostip", hostip])
  for (const f of extra) fields.push([f.key, revealValue(f.value)])
  return fields
}
