/**
 * Small strict number/length helpers shared by the protocol decoders. Internal: only
 * {@link parseUint32} is exported from the package index (testkit's auth-master codec uses it).
 *
 * @since 0.1.0
 */

/** Largest value of a C `unsigned int` (Dovecot ids and PIDs are parsed with `str_to_uint`). */
export const UINT32_MAX = 0xffffffff

const DIGITS = /^[0-9]{1,10}$/

/**
 * Parse a decimal unsigned 32-bit integer the way Dovecot's `str_to_uint` accepts it: ASCII digits
 * only (leading zeros allowed), no sign, no spaces, value ≤ 4294967295. Returns `undefined` for
 * anything else. Never throws.
 */
export const parseUint32 = (text: string | undefined): number | undefined => {
  if (text === undefined || !DIGITS.test(text)) return undefined
  const n = Number(text)
  return n <= UINT32_MAX ? n : undefined
}

/** Parse a TCP port (decimal 0–65535, digits only). Returns `undefined` when absent or invalid. */
export const parsePort = (text: string | undefined): number | undefined => {
  if (text === undefined || !/^[0-9]{1,5}$/.test(text)) return undefined
  const n = Number(text)
  return n <= 65535 ? n : undefined
}

/** True when `n` is an integer in 1..4294967295 (a valid auth-client request id). */
export const isNonZeroUint32 = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= UINT32_MAX

/** True when `n` is an integer in 0..4294967295. */
export const isUint32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= UINT32_MAX

/**
 * Length in bytes of the UTF-8 encoding of `s` (lone surrogates count 3 bytes, as U+FFFD).
 * Pure; does not allocate.
 */
export const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4
        i++
      } else n += 3
    } else n += 3
  }
  return n
}
