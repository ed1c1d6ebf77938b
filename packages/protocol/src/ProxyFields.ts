/**
 * Helpers for relays that rewrite proxy replies (`docs/protocols.md` §8, modelled on the
 * Dovecot 2.3.21 Director's `src/director/login-connection.c` behaviour; our own code).
 *
 * A relay copies every auth line byte for byte, except auth-client `OK` lines (login socket) and
 * userdb `PASS` lines that ask for proxying but carry no `host=`; to those it appends
 * `host=`/`hostip=`/`port=` (and a bare `proxy` when it had only `proxy_maybe`), or replaces them
 * with {@link tempFailLine}. (The Director also appended `proxy_refresh=`; doveroute does not.)
 *
 * Field lists are the unescaped `KeyValue`s of a reply (as from {@link parseReplyLine} or
 * `AuthMaster.decodeReply`). Pure; nothing here throws except the documented encoder checks.
 *
 * @since 0.1.0
 */
import { escape, formatKeyValue, parseKeyValue, splitLine, type KeyValue } from "./TabEscape.js"

/** Dovecot's default `auth_master_user_separator` used to cut `user*master` names: `*`. */
export const DEFAULT_MASTER_USER_SEPARATOR = "*"

/** A reply line split into its command, raw id text and unescaped fields (after the id). */
export interface ReplyLine {
  readonly command: string
  readonly id: string
  readonly fields: ReadonlyArray<KeyValue>
}

/**
 * Split a reply line (`OK\t<id>\t…`, `PASS\t<id>\t…`, with or without trailing LF) into command, id
 * and fields. Returns `undefined` when the line has no id field. Never throws.
 */
export const parseReplyLine = (line: string): ReplyLine | undefined => {
  const body = line.endsWith("\n") ? line.slice(0, -1) : line
  const args = splitLine(body)
  const command = args[0]!
  const id = args[1]
  if (id === undefined) return undefined
  return { command, id, fields: args.slice(2).map(parseKeyValue) }
}

/** The value of the **last** field named `key` (`""` for a bare flag), or `undefined` if absent. */
export const fieldValue = (fields: ReadonlyArray<KeyValue>, key: string): string | undefined => {
  let out: string | undefined
  for (const kv of fields) if (kv.key === key) out = kv.value ?? ""
  return out
}

/** True when a field named `key` is present, bare or with any value. */
export const hasField = (fields: ReadonlyArray<KeyValue>, key: string): boolean => fields.some((kv) => kv.key === key)

/** True when the reply has `proxy` (bare or `proxy=<anything>`, even `proxy=no`: booleans are existence tests). */
export const hasProxy = (fields: ReadonlyArray<KeyValue>): boolean => hasField(fields, "proxy")

/** True when the reply has `proxy_maybe` or `director_proxy_maybe` (bare or with a value). */
export const hasProxyMaybe = (fields: ReadonlyArray<KeyValue>): boolean =>
  fields.some((kv) => kv.key === "proxy_maybe" || kv.key === "director_proxy_maybe")

/** True when the reply has a `host=` field (any value, even empty). A bare `host` token does not count. */
export const hasHost = (fields: ReadonlyArray<KeyValue>): boolean =>
  fields.some((kv) => kv.key === "host" && kv.value !== undefined)

/**
 * Whether a relay must route this OK/PASS reply: it asks for proxying (`proxy`, `proxy_maybe` or
 * `director_proxy_maybe`, bare or with a value) **and** has no `host=`.
 */
export const needsRoute = (fields: ReadonlyArray<KeyValue>): boolean =>
  (hasProxy(fields) || hasProxyMaybe(fields)) && !hasHost(fields)

/**
 * The user name to route: `destuser` if present, else `user`, cut before the first occurrence of
 * the master-user separator (`alice*admin` → `alice`; an empty separator disables cutting).
 * Returns `undefined` when neither field has a value.
 */
export const routeUser = (fields: ReadonlyArray<KeyValue>, separator: string = DEFAULT_MASTER_USER_SEPARATOR): string | undefined => {
  const name = fieldValue(fields, "destuser") ?? fieldValue(fields, "user")
  if (name === undefined) return undefined
  if (separator.length === 0) return name
  const at = name.indexOf(separator)
  return at === -1 ? name : name.slice(0, at)
}

/** The `director_tag=` value, or `undefined` (the Director routed each tag to its own backend set). */
export const routeTag = (fields: ReadonlyArray<KeyValue>): string | undefined => fieldValue(fields, "director_tag")

/** A field to append: `[key, value]`; `undefined` renders the bare key. */
export type Field = readonly [key: string, value: string | undefined]

/** `\tkey=value` for each field (tab-escaped; a bare key without `=`); a bad key throws RangeError. */
export const renderFields = (fields: ReadonlyArray<Field>): string => {
  let out = ""
  for (const [key, value] of fields) {
    if (key.length === 0 || key.includes("=")) throw new RangeError(`bad field key ${JSON.stringify(key)}`)
    out += "\t" + formatKeyValue(key, value)
  }
  return out
}

/**
 * Append tab-escaped fields to a raw reply line **without touching the existing text**: the
 * result is `line + "\t" + k=v …`, with a trailing LF kept at the end if `line` had one.
 *
 * @throws RangeError when a key is empty or contains `=` (programmer error).
 */
export const appendFields = (line: string, fields: ReadonlyArray<Field>): string => {
  const extra = renderFields(fields)
  return line.endsWith("\n") ? line.slice(0, -1) + extra + "\n" : line + extra
}

const utf8 = new TextEncoder()

/**
 * Byte version of {@link appendFields} for relays that keep lines as bytes (so even invalid UTF-8
 * passes through unchanged): copies `line` verbatim, then the UTF-8 of the appended fields,
 * keeping a trailing LF (0x0A) at the end.
 *
 * @throws RangeError when a key is empty or contains `=`.
 */
export const appendFieldsBytes = (line: Uint8Array, fields: ReadonlyArray<Field>): Uint8Array => {
  const extra = utf8.encode(renderFields(fields))
  const hasLf = line.length > 0 && line[line.length - 1] === 0x0a
  const head = hasLf ? line.subarray(0, line.length - 1) : line
  const out = new Uint8Array(head.length + extra.length + (hasLf ? 1 : 0))
  out.set(head, 0)
  out.set(extra, head.length)
  if (hasLf) out[out.length - 1] = 0x0a
  return out
}

/**
 * The replacement for a proxy reply that could not be routed: `FAIL\t<id>\tcode=temp_fail\n`
 * (login processes show "Temporary authentication failure"; LMTP answers 451). `id` is the raw id
 * text of the original line, escaped.
 */
export const tempFailLine = (id: string): string => `FAIL\t${escape(id)}\tcode=temp_fail\n`
