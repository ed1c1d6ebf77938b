/**
 * Dict proxy protocol, server side, as Dovecot's dict client sends it.
 *
 * Source: Dovecot `src/lib-dict/dict-client.c`, `src/dict/dict-connection.c`, `dict-commands.c`
 * (2.3.19: protocol 3.2; 2.4.1: protocol 4.0; docs/protocols.md §6). Lines end with LF; arguments
 * are tab-separated and tab-escaped (see {@link TabEscape}).
 *
 * Client → server:
 * - `H<major>\t<minor>\t<value_type>\t<user>\t<dict name>` hello. **Gets no reply.**
 * - `L<key>\t<username>` lookup. Answered in request order with `O<value>`, `N` or `F<error>`.
 * - anything else (iterate, transactions) is not served by doveroute: the server closes that
 *   connection (decoded as `Unsupported`; see `DictServer`).
 *
 * @since 0.1.0
 */
import { escape, splitLine } from "./TabEscape.js"

/** A decoded client line. */
export type DictRequest =
  | { readonly _tag: "Hello"; readonly major: number; readonly minor: number; readonly user: string; readonly dictName: string }
  | { readonly _tag: "Lookup"; readonly key: string; readonly username: string }
  | { readonly _tag: "Unsupported"; readonly command: string }
  | { readonly _tag: "Invalid"; readonly reason: string }

/** Decode one line (without its LF). Pure; never throws. */
export const decodeRequest = (line: string): DictRequest => {
  if (line.length === 0) return { _tag: "Invalid", reason: "empty line" }
  const cmd = line[0]!
  const args = splitLine(line.slice(1))
  switch (cmd) {
    case "H": {
      const major = Number(args[0])
      const minor = Number(args[1])
      if (!Number.isInteger(major) || !Number.isInteger(minor)) {
        return { _tag: "Invalid", reason: "bad hello version" }
      }
      return { _tag: "Hello", major, minor, user: args[3] ?? "", dictName: args[4] ?? "" }
    }
    case "L": {
      const key = args[0] ?? ""
      if (key.length === 0) return { _tag: "Invalid", reason: "lookup without key" }
      return { _tag: "Lookup", key, username: args[1] ?? "" }
    }
    default:
      return { _tag: "Unsupported", command: cmd }
  }
}

/** `O<value>` — key found. The value is tab-escaped. */
export const encodeFound = (value: string): string => `O${escape(value)}\n`
/** `N` — key not found. */
export const encodeNotFound = (): string => "N\n"
/** `F<error>` — lookup failed (Dovecot turns this into an internal failure, `temp_fail`). */
export const encodeFailure = (error: string): string => `F${escape(error)}\n`

/**
 * Supported major versions of the dict protocol: 2 (Dovecot 2.3 before 2.3.17), 3 (2.3.17+) and
 * 4 (2.4). The real server closes the connection on a major mismatch, and so does doveroute on a
 * major outside this set.
 */
export const SUPPORTED_MAJORS: ReadonlySet<number> = new Set([2, 3, 4])

/** Maximum line length accepted from a dict client, in bytes (Dovecot's server input limit: 64 KiB). */
export const DICT_MAX_LINE = 65536

/**
 * Render passdb reply fields as the JSON object Dovecot's `format = json` dict key expects.
 * Flags (fields without a value) become `"y"`; the object keeps the field order.
 */
export const encodePassdbJson = (fields: ReadonlyArray<readonly [string, string | undefined]>): string => {
  const obj: Record<string, string> = {}
  for (const [k, v] of fields) obj[k] = v ?? "y"
  return JSON.stringify(obj)
}
