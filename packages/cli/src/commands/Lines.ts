/**
 * Reading an import file (or stdin for `-`) line by line, for `doveroute import`.
 *
 * @since 0.1.0
 */
import { AdminOps } from "@doveroute/store"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as readline from "node:readline"

/** The error of a file that cannot be read (or holds a bad line). */
export const readError = (file: string) => (e: unknown) =>
  new AdminOps.AdminError({ reason: "Invalid", detail: `cannot read ${file}: ${(e as Error).message}` })

/** Fail unless `file` is `-` or exists. */
export const requireFile = (file: string) =>
  file !== "-" && !fs.existsSync(file)
    ? Effect.fail(new AdminOps.AdminError({ reason: "Invalid", detail: `cannot read ${file}: no such file` }))
    : Effect.void

/** An iterator over the lines of `file` (stdin for `-`): each `next()` reads one line. */
export const openLines = (file: string) => {
  const input = file === "-" ? process.stdin : fs.createReadStream(file)
  const lines = readline.createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]()
  return () => Effect.tryPromise({ try: () => lines.next(), catch: readError(file) })
}

/**
 * Call `f` with every line of `file` and its number (from 1), once per call of the returned
 * function: a file is read again each time, stdin is kept in memory after the first pass.
 */
export const linePasses = (file: string) => {
  let kept: Array<string> | undefined
  return <E, R>(f: (line: string, lineNo: number) => Effect.Effect<void, E, R>) =>
    Effect.gen(function*() {
      if (kept !== undefined) {
        for (let i = 0; i < kept.length; i++) yield* f(kept[i]!, i + 1)
        return
      }
      const keep: Array<string> | undefined = file === "-" ? [] : undefined
      const next = openLines(file)
      let lineNo = 0
      for (let r = yield* next(); !r.done; r = yield* next()) {
        keep?.push(r.value)
        yield* f(r.value, ++lineNo)
      }
      kept = keep
    })
}
