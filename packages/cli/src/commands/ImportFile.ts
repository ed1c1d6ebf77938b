/**
 * Reading an import file: CSV `user,backend` streamed line by line in chunks, or JSON (an array of
 * {user, backend} or a `dump --json` document), with progress on stderr. Used by `doveroute import`
 * (ImportRun.ts) and `--from-director` (DirectorImport.ts).
 *
 * @since 0.1.0
 */
import type { RouteKey } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Effect } from "effect"
import * as fs from "node:fs"
import { openLines, readError } from "./Lines.js"

const toKey = (strategy: "mapping" | "shard", v: unknown, where: string): RouteKey => {
  if (strategy === "shard") {
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${where}: shard must be 0..65535`)
    return n
  }
  const s = String(v ?? "")
  if (s.length === 0 || /[\t\r\n\x00]/.test(s)) throw new Error(`${where}: invalid user name`)
  return s
}

/**
 * One line of an import CSV (`lineNo` from 1): a row, or undefined for a blank line, a `#` comment
 * or the `user,backend` header on line 1. A field in double quotes is taken as is.
 */
export const parseCsvLine = (line: string, lineNo: number, strategy: "mapping" | "shard"): AdminOps.ImportRow | undefined => {
  if (line.trim() === "" || line.startsWith("#")) return undefined
  const comma = line.lastIndexOf(",")
  if (comma < 0) throw new Error(`line ${lineNo}: expected user,backend`)
  const user = line.slice(0, comma).trim().replace(/^"(.*)"$/s, "$1")
  const backend = line.slice(comma + 1).trim().replace(/^"(.*)"$/, "$1")
  if (lineNo === 1 && /^(user|shard)$/i.test(user) && /^backend$/i.test(backend)) return undefined
  return { key: toKey(strategy, user, `line ${lineNo}`), backend }
}

/**
 * Parse a whole import text: a JSON array of {user, backend} (or {shard, backend}), the object
 * `dump --json` prints (its `mappings`), or CSV `user,backend`.
 */
export const parseImport = (text: string, strategy: "mapping" | "shard"): Array<AdminOps.ImportRow> => {
  const t = text.trimStart()
  if (t.startsWith("[") || t.startsWith("{")) {
    const doc = JSON.parse(t) as unknown
    const arr = Array.isArray(doc) ? doc : (doc as { mappings?: unknown } | null)?.mappings
    if (!Array.isArray(arr)) throw new Error("JSON import must be an array of {user, backend} or a dump --json document")
    return (arr as Array<Record<string, unknown>>).map((r, i) => ({ key: toKey(strategy, r["user"] ?? r["shard"], `entry ${i}`), backend: String(r["backend"] ?? "") }))
  }
  const rows: Array<AdminOps.ImportRow> = []
  text.split(/\r?\n/).forEach((line, i) => {
    const row = parseCsvLine(line, i + 1, strategy)
    if (row !== undefined) rows.push(row)
  })
  return rows
}

/** Progress on stderr: with a known total a bar (TTY, redrawn in place) or a line per 10 %; else a line per 100 000 rows. */
export const progressReporter = (total: number | undefined) => {
  let lastStep = -1
  return (done: number) => {
    if (total === undefined) {
      const step = Math.floor(done / 100_000)
      if (step !== lastStep && step > 0) {
        lastStep = step
        process.stderr.write(`import: ${done} rows\n`)
      }
      return
    }
    const pct = total === 0 ? 100 : Math.floor((done * 100) / total)
    if (process.stderr.isTTY) {
      const w = 30
      const fill = Math.round((pct / 100) * w)
      process.stderr.write(`\rimport [${"#".repeat(fill)}${" ".repeat(w - fill)}] ${pct}% ${done}/${total}${done >= total ? "\n" : ""}`)
    } else if (Math.floor(pct / 10) !== lastStep) {
      lastStep = Math.floor(pct / 10)
      process.stderr.write(`import: ${done}/${total} (${pct}%)\n`)
    }
  }
}

/** Data lines of a CSV file (a first, cheap pass for the progress total). */
const countDataLines = (file: string): Promise<number> =>
  new Promise((resolve, reject) => {
    let n = 0
    let atStart = true
    fs.createReadStream(file)
      .on("data", (buf) => {
        if (typeof buf === "string") buf = Buffer.from(buf)
        for (let i = 0; i < buf.length; i++) {
          const c = buf[i]!
          if (c === 10) atStart = true
          else if (atStart && c !== 13 && c !== 32 && c !== 9) {
            atStart = false
            if (c !== 35) n++ // '#' comments are not rows
          }
        }
      })
      .on("end", () => resolve(n))
      .on("error", reject)
  })

/**
 * Rows handed to an importer one at a time, sent on in chunks of {@link AdminOps.IMPORT_CHUNK}
 * (one chunk in memory), with progress after each: `push` a row, `end` the last chunk.
 */
export const chunkedImport = (imp: AdminOps.Importer, progress: ((done: number) => void) | undefined) => {
  let chunk: Array<AdminOps.ImportRow> = []
  let done = 0
  const flush = Effect.suspend(() => {
    const rows = chunk
    chunk = []
    done += rows.length
    return Effect.tap(imp.add(rows), () => Effect.sync(() => progress?.(done)))
  })
  return {
    push: (row: AdminOps.ImportRow) => {
      chunk.push(row)
      return chunk.length >= AdminOps.IMPORT_CHUNK ? flush : Effect.void
    },
    end: Effect.suspend(() => chunk.length > 0 || done === 0 ? flush : Effect.void)
  }
}

/** Stream `file` (or stdin for `-`) into the importer: CSV line by line in chunks; JSON read whole. */
export const importFile = (file: string, strategy: "mapping" | "shard", dryRun: boolean) =>
  Effect.gen(function*() {
    const imp = yield* AdminOps.importer(strategy, { dryRun })
    const next = openLines(file)
    let lineNo = 0
    let first = yield* next()
    while (!first.done && first.value.trim() === "") {
      lineNo++
      first = yield* next()
    }
    if (!first.done && /^\s*[[{]/.test(first.value)) {
      // JSON: the whole document
      let text = first.value
      for (let r = yield* next(); !r.done; r = yield* next()) text += "\n" + r.value
      const rows = yield* Effect.try({ try: () => parseImport(text, strategy), catch: readError(file) })
      const progress = rows.length >= 1000 ? progressReporter(rows.length) : undefined
      for (let i = 0; i < rows.length; i += AdminOps.IMPORT_CHUNK) {
        yield* imp.add(rows.slice(i, i + AdminOps.IMPORT_CHUNK))
        progress?.(Math.min(rows.length, i + AdminOps.IMPORT_CHUNK))
      }
      return imp.report()
    }
    const header = !first.done && /^\s*"?(user|shard)"?\s*,\s*"?backend"?\s*$/i.test(first.value) ? 1 : 0
    const total = file === "-" ? undefined : (yield* Effect.tryPromise({ try: () => countDataLines(file), catch: readError(file) })) - header
    const rows = chunkedImport(imp, total === undefined || total >= 1000 ? progressReporter(total) : undefined)
    for (let r = first; !r.done; r = yield* next()) {
      lineNo++
      const line = r.value
      const row = yield* Effect.try({ try: () => parseCsvLine(line, lineNo, strategy), catch: readError(file) })
      if (row !== undefined) yield* rows.push(row)
    }
    yield* rows.end
    return imp.report()
  })
