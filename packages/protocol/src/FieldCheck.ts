/**
 * Request field checks shared by every front-end: a value with a control character (C0: NUL, CR,
 * LF, TAB, 0x01 … 0x1F, and DEL) or one that was not valid UTF-8 is refused before it is logged,
 * routed or reaches the store. Lines are decoded from UTF-8 with replacement, so an invalid byte
 * sequence arrives as U+FFFD; a genuine U+FFFD in a request is refused too (no mail user name
 * contains it, and it cannot be told apart).
 *
 * @since 0.1.0
 */

/** Why a field value is refused. */
export type FieldProblem = "control character" | "invalid UTF-8"

const CONTROL = /[\x00-\x1f\x7f]/
const REPLACEMENT = "\uFFFD"

/** The problem of one value, or undefined when it may be used. */
export const fieldProblem = (value: string): FieldProblem | undefined =>
  CONTROL.test(value) ? "control character" : value.includes(REPLACEMENT) ? "invalid UTF-8" : undefined

/** A refused field: its name (never its value: that is what cannot be logged) and the problem. */
export interface BadField {
  readonly field: string
  readonly problem: FieldProblem
}

/** The first refused field of `[name, value]` pairs (undefined values are skipped). */
export const firstBadField = (fields: Iterable<readonly [string, string | undefined]>): BadField | undefined => {
  for (const [field, value] of fields) {
    if (value === undefined) continue
    const problem = fieldProblem(value)
    if (problem !== undefined) return { field, problem }
  }
  return undefined
}

/** `service contains a control character`: the text for a reply or a log line. */
export const describeBadField = (b: BadField): string =>
  b.problem === "control character" ? `${b.field} contains a control character` : `${b.field} is not valid UTF-8`
