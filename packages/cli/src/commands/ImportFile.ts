/**
 * Reading an import file: CSV `user,backend` or `user,backend,tag` (mappings and user tags)
 * streamed line by line in chunks, or JSON (an array of {user, backend, tag?} or a `dump --json`
 * document: its backends, mappings and user tags), with progress on stderr. Used by `doveroute
 * import` (ImportRun.ts) and `--from-director` (DirectorImport.ts).
 *
 * @since 0.1.0
 */
import type { RouteKey } from "@doveroute/routing"
import { AdminOps, UserTags } from "@doveroute/store"
import { Effect } from "effect"
import * as fs from "node:fs"
import { type BackendChange, plannedBackendNames, restoreBackends } from "./DumpBackends.js"
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
 * A line of an import: a mapping (`backend`) and/or a user tag (`tag`, the `user,backend,tag`
 * form); "" = none. A line with a tag and no backend is a user tag only; any other line is a
 * mapping row (one without a backend is reported as an unknown backend).
 */
export interface ImportLine extends AdminOps.ImportRow {
  readonly tag: string
}

/** The header of an import CSV: `user,backend` (2 columns) or `user,backend,tag` (3); undefined when `line` is none. */
export const csvHeader = (line: string): 2 | 3 | undefined => {
  const m = /^\s*"?(?:user|shard)"?\s*,\s*"?backend"?\s*(,\s*"?tag"?\s*)?$/i.exec(line)
  return m === null ? undefined : m[1] === undefined ? 2 : 3
}

const unquote = (s: string) => s.trim().replace(/^"(.*)"$/s, "$1")

/**
 * One line of an import CSV (`lineNo` from 1) of `columns` columns (2: `user,backend`, 3:
 * `user,backend,tag`, the fields split at the last commas: a user name may hold a comma, a backend
 * and a tag none): a row, or undefined for a blank line, a `#` comment or the header on line 1. A
 * field in double quotes is taken as is.
 */
export const parseCsvLine = (line: string, lineNo: number, strategy: "mapping" | "shard", columns: 2 | 3 = 2): ImportLine | undefined => {
  if (line.trim() === "" || line.startsWith("#")) return undefined
  if (lineNo === 1 && csvHeader(line) !== undefined) return undefined
  const last = line.lastIndexOf(",")
  const comma = columns === 3 && last > 0 ? line.lastIndexOf(",", last - 1) : last
  if (comma < 0) throw new Error(`line ${lineNo}: expected ${columns === 3 ? "user,backend,tag" : "user,backend"}`)
  const user = unquote(line.slice(0, comma))
  const backend = unquote(line.slice(comma + 1, columns === 3 ? last : undefined))
  const tag = columns === 3 ? unquote(line.slice(last + 1)) : ""
  return { key: toKey(strategy, user, `line ${lineNo}`), backend, tag }
}

/** A backend of a `dump --json` document, as the import restores it. */
export interface DumpBackend {
  readonly hostname: string
  readonly hostip: string | null
  readonly state: number
  readonly weight: number
  /** null (or absent): an existing backend keeps its own, as the dump script's `backend add` does. */
  readonly checkPort: number | null
  /** null (or absent, a dump older than tags): an existing backend keeps its own; a new one is untagged. */
  readonly tag: string | null
}

const dumpBackend = (v: unknown, i: number): DumpBackend => {
  const b = (v ?? {}) as Record<string, unknown>
  const where = `backends entry ${i}`
  const int = (x: unknown, what: string, dflt: number) => {
    if (x === undefined || x === null) return dflt
    if (typeof x !== "number" || !Number.isInteger(x)) throw new Error(`${where}: ${what} must be an integer`)
    return x
  }
  if (typeof b["hostname"] !== "string" || b["hostname"] === "") throw new Error(`${where}: no hostname`)
  const optText = (x: unknown, what: string) => {
    if (x === undefined || x === null) return null
    if (typeof x !== "string") throw new Error(`${where}: ${what} must be a string or null`)
    return x
  }
  return {
    hostname: b["hostname"],
    hostip: optText(b["hostip"], "hostip"),
    state: int(b["state"], "state", 0),
    weight: int(b["weight"], "weight", 1),
    checkPort: b["checkPort"] === undefined || b["checkPort"] === null ? null : int(b["checkPort"], "checkPort", 0),
    tag: optText(b["tag"], "tag")
  }
}

/** What a whole import text holds: the rows, and the backends of a `dump --json` document (else undefined). */
export interface ParsedImport {
  readonly lines: Array<ImportLine>
  readonly backends: Array<DumpBackend> | undefined
}

/**
 * Parse a whole import text: a JSON array of {user, backend, tag?} (or {shard, backend}), the
 * object `dump --json` prints (its `backends`, `mappings` and `userTags`), or CSV `user,backend`
 * or `user,backend,tag`.
 */
export const parseImport = (text: string, strategy: "mapping" | "shard"): ParsedImport => {
  const t = text.trimStart()
  if (t.startsWith("[") || t.startsWith("{")) {
    const doc = JSON.parse(t) as unknown
    const obj = Array.isArray(doc) ? undefined : (doc as Record<string, unknown> | null) ?? undefined
    const arr = Array.isArray(doc) ? doc : obj?.["mappings"]
    if (!Array.isArray(arr)) throw new Error("JSON import must be an array of {user, backend} or a dump --json document")
    const tags = obj?.["userTags"] ?? []
    if (!Array.isArray(tags)) throw new Error("userTags must be an array of {user, tag}")
    const backends = obj?.["backends"]
    if (backends !== undefined && !Array.isArray(backends)) throw new Error("backends must be an array")
    const text = (v: unknown) => v === undefined || v === null ? "" : String(v)
    return {
      lines: [
        ...(arr as Array<Record<string, unknown>>).map((r, i) => ({
          key: toKey(strategy, r["user"] ?? r["shard"], `entry ${i}`),
          backend: text(r["backend"]),
          tag: text(r["tag"])
        })),
        ...(tags as Array<Record<string, unknown>>).map((r, i) => ({ key: toKey(strategy, r["user"], `userTags entry ${i}`), backend: "", tag: text(r["tag"]) }))
      ],
      backends: backends === undefined ? undefined : backends.map(dumpBackend)
    }
  }
  const lines: Array<ImportLine> = []
  let columns: 2 | 3 = 2
  text.split(/\r?\n/).forEach((line, i) => {
    if (i === 0) columns = csvHeader(line) ?? 2
    const row = parseCsvLine(line, i + 1, strategy, columns)
    if (row !== undefined) lines.push(row)
  })
  return { lines, backends: undefined }
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
 * (one chunk in memory), with progress after each: `push` a row, `end` the last chunks. With
 * `tags`, `pushTag` sends user tags the same way. Progress counts the pushes made with `counts`
 * (default true): one per line of the file.
 */
export const chunkedImport = (imp: AdminOps.Importer, progress: ((done: number) => void) | undefined, tags?: UserTags.TagImporter) => {
  let chunk: Array<AdminOps.ImportRow> = []
  let tagChunk: Array<UserTags.TagRow> = []
  let pushed = 0
  let reported = -1
  const report = Effect.sync(() => {
    if (pushed === reported) return
    reported = pushed
    progress?.(pushed)
  })
  const flush = Effect.suspend(() => {
    const rows = chunk
    chunk = []
    return Effect.zipRight(imp.add(rows), report)
  })
  const flushTags = Effect.suspend(() => {
    const rows = tagChunk
    tagChunk = []
    return tags === undefined ? Effect.void : Effect.zipRight(tags.add(rows), report)
  })
  return {
    push: (row: AdminOps.ImportRow, counts = true) => {
      if (counts) pushed++
      chunk.push(row)
      return chunk.length >= AdminOps.IMPORT_CHUNK ? flush : Effect.void
    },
    pushTag: (row: UserTags.TagRow, counts = true) => {
      if (counts) pushed++
      tagChunk.push(row)
      return tagChunk.length >= AdminOps.IMPORT_CHUNK ? flushTags : Effect.void
    },
    end: Effect.suspend(() =>
      Effect.zipRight(
        chunk.length > 0 || tagChunk.length === 0 ? flush : Effect.void,
        tagChunk.length > 0 ? flushTags : Effect.void
      ))
  }
}

/** Send one import line on: a mapping row unless it is a user tag only, and its tag, if any. */
const pushLine = (rows: ReturnType<typeof chunkedImport>, line: ImportLine) => {
  const mapping = line.backend !== "" || line.tag === ""
  return Effect.zipRight(
    mapping ? rows.push({ key: line.key, backend: line.backend }) : Effect.void,
    line.tag !== "" ? rows.pushTag({ key: String(line.key), tag: line.tag }, !mapping) : Effect.void
  )
}

/** User tags under strategy shard: refused before anything is written (a shard holds users of every tag). */
const shardTags = new AdminOps.AdminError({ reason: "Invalid", detail: "user tags need strategy mapping (a shard holds users of every tag); nothing was written" })

/** What `doveroute import FILE` did (or, in a dry run, would do). */
export interface FileImportReport {
  readonly mappings: AdminOps.ImportReport
  readonly userTags: UserTags.TagImportReport
  /** The backends of a `dump --json` document (none for CSV). */
  readonly backends: ReadonlyArray<BackendChange>
}

/**
 * Stream `file` (or stdin for `-`) into the importers: CSV line by line in chunks; JSON read whole
 * (a `dump --json` document's backends are restored first, see {@link restoreBackends}).
 */
export const importFile = (file: string, strategy: "mapping" | "shard", dryRun: boolean) =>
  Effect.gen(function*() {
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
      const parsed = yield* Effect.try({ try: () => parseImport(text, strategy), catch: readError(file) })
      if (strategy === "shard" && parsed.lines.some((l) => l.tag !== "")) return yield* shardTags
      const backends = parsed.backends === undefined ? [] : yield* restoreBackends(parsed.backends, dryRun)
      const imp = yield* AdminOps.importer(strategy, { dryRun, plannedNames: plannedBackendNames(backends) })
      const tags = yield* UserTags.tagImporter(strategy, { dryRun })
      const rows = chunkedImport(imp, parsed.lines.length >= 1000 ? progressReporter(parsed.lines.length) : undefined, tags)
      for (const line of parsed.lines) yield* pushLine(rows, line)
      yield* rows.end
      return { mappings: imp.report(), userTags: tags.report(), backends } satisfies FileImportReport
    }
    const columns = first.done ? undefined : csvHeader(first.value)
    if (strategy === "shard" && columns === 3) return yield* shardTags
    const imp = yield* AdminOps.importer(strategy, { dryRun })
    const tags = yield* UserTags.tagImporter(strategy, { dryRun })
    const header = columns === undefined ? 0 : 1
    const total = file === "-" ? undefined : (yield* Effect.tryPromise({ try: () => countDataLines(file), catch: readError(file) })) - header
    const rows = chunkedImport(imp, total === undefined || total >= 1000 ? progressReporter(total) : undefined, tags)
    for (let r = first; !r.done; r = yield* next()) {
      lineNo++
      if (r === first && columns !== undefined) continue // the header (after blank lines, if any)
      const line = r.value
      const row = yield* Effect.try({ try: () => parseCsvLine(line, lineNo, strategy, columns ?? 2), catch: readError(file) })
      if (row !== undefined) yield* pushLine(rows, row)
    }
    yield* rows.end
    return { mappings: imp.report(), userTags: tags.report(), backends: [] } satisfies FileImportReport
  })
