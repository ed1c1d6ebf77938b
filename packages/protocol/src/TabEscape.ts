/**
 * Dovecot tab-escaping, shared by the auth-client, auth-master and dict protocols.
 *
 * Source: Dovecot `src/lib/strescape.c` (`str_append_tabescaped_n`, `str_tabunescape`), identical in
 * 2.3.19 and 2.4.1. Escapes (byte → two bytes): NUL → `\x010`, 0x01 → `\x011`, TAB → `\x01t`,
 * CR → `\x01r`, LF → `\x01n`. Decoding: `\x01` followed by any other character X yields X; a lone
 * `\x01` at the end of a field is dropped.
 *
 * Pure functions over JavaScript strings (the line was decoded from UTF-8 as a whole before it is
 * split, so multi-byte characters are never cut).
 *
 * @since 0.1.0
 */

const NEEDS_ESCAPE = /[\x00\x01\t\r\n]/

/**
 * Escape one field value for a tab-separated Dovecot line.
 * Also escapes NUL, which every Dovecot decoder accepts.
 */
export const escape = (value: string): string => {
  if (!NEEDS_ESCAPE.test(value)) return value
  let out = ""
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    switch (c) {
      case 0x00: out += "\x010"; break
      case 0x01: out += "\x011"; break
      case 0x09: out += "\x01t"; break
      case 0x0d: out += "\x01r"; break
      case 0x0a: out += "\x01n"; break
      default: out += value[i]
    }
  }
  return out
}

/** Decode one escaped field. Never throws: unknown escapes yield the escaped character. */
export const unescape = (field: string): string => {
  if (field.indexOf("\x01") === -1) return field
  let out = ""
  for (let i = 0; i < field.length; i++) {
    const ch = field[i]!
    if (ch !== "\x01") {
      out += ch
      continue
    }
    i++
    if (i >= field.length) break // lone \x01 at the end is dropped
    const e = field[i]!
    switch (e) {
      case "0": out += "\x00"; break
      case "1": out += "\x01"; break
      case "t": out += "\t"; break
      case "r": out += "\r"; break
      case "n": out += "\n"; break
      default: out += e
    }
  }
  return out
}

/** Split a line (without its LF) on TAB and unescape every field. */
export const splitLine = (line: string): Array<string> => line.split("\t").map(unescape)

/** Join already-unescaped fields into a line (without LF), escaping each one. */
export const joinLine = (fields: ReadonlyArray<string>): string => fields.map(escape).join("\t")

/**
 * A `key=value` field split at the first `=`. A field without `=` is a boolean flag: `value` is
 * `undefined` (Dovecot: "true because it exists").
 */
export interface KeyValue {
  readonly key: string
  readonly value: string | undefined
}

/** Parse an (already unescaped) `key=value` or bare-flag field. */
export const parseKeyValue = (field: string): KeyValue => {
  const eq = field.indexOf("=")
  return eq === -1 ? { key: field, value: undefined } : { key: field.slice(0, eq), value: field.slice(eq + 1) }
}

/** Render a key and optional value as a single escaped field (`key` alone when value is undefined). */
export const formatKeyValue = (key: string, value: string | undefined): string =>
  value === undefined ? escape(key) : `${escape(key)}=${escape(value)}`
