/**
 * Summarises a V8 `.cpuprofile` written by `node --cpu-prof` of the doveroute bundle: positions in
 * the bundle are mapped back through `doveroute.mjs.map` to their original files, and time is
 * grouped by where it is spent (Effect runtime, @effect/sql, better-sqlite3, node:net, doveroute
 * packages, GC …).
 *
 * Sample timestamps are CLOCK_MONOTONIC µs, the same clock as `process.hrtime`, so a window
 * recorded by the benchmark process selects just the load phase.
 */
import * as fs from "node:fs"
import { SourceMap } from "node:module"
import * as path from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface ProfileEntry {
  /** `function (file:line)` with the original file where the source map knows it. */
  readonly frame: string
  readonly category: string
  readonly ms: number
  /** Share of the busy (non-idle) time in the window, in %. */
  readonly pct: number
}

export interface ProfileSummary {
  readonly file: string
  /** Window length and busy (non-idle) CPU time covered by the samples, ms. */
  readonly windowMs: number
  readonly busyMs: number
  /** Self time per category, largest first. */
  readonly categories: ReadonlyArray<{ readonly category: string; readonly ms: number; readonly pct: number }>
  /** Functions with the most self time. */
  readonly topSelf: ReadonlyArray<ProfileEntry>
  /** Frames (not node/V8 internals) with the most inclusive time: on the stack of that share of busy samples. */
  readonly topInclusive: ReadonlyArray<ProfileEntry>
}

/** Where a source file belongs. */
export const categoryOf = (source: string, functionName: string): string => {
  if (functionName === "(garbage collector)") return "GC"
  if (functionName === "(idle)") return "idle"
  if (functionName === "(program)") return "V8/native (program)"
  if (functionName === "(root)") return "root"
  const s = source.replace(/\\/g, "/")
  let m = /node_modules\/(@effect\/[^/]+)\//.exec(s)
  if (m !== null) return m[1]!
  if (s.includes("node_modules/effect/")) return "effect (core runtime)"
  m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(s)
  if (m !== null) return m[1]!
  m = /packages\/([^/]+)\/src\//.exec(s)
  if (m !== null) return `doveroute/${m[1]}`
  if (s.startsWith("node:net") || s.startsWith("node:internal/net") || s.startsWith("node:internal/stream_base") ||
    s.startsWith("node:internal/streams") || s.startsWith("node:stream")) return "node:net + streams"
  if (s.startsWith("node:")) return "node (other core)"
  if (s === "") return functionName === "" ? "native" : `native`
  return "other"
}

/**
 * Reads a profile; `bundle` is the bundle file whose `.map` resolves positions; `window` (µs,
 * CLOCK_MONOTONIC) keeps only samples inside it.
 */
export function summarizeProfile(file: string, options: { readonly bundle?: string; readonly window?: readonly [number, number]; readonly top?: number } = {}): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile
  // the bundle is split into chunks (dist/chunks/*.mjs), each with its own source map beside it
  const bundleDir = options.bundle !== undefined ? "file://" + path.dirname(options.bundle) + "/" : undefined
  const maps = new Map<string, SourceMap | undefined>()
  const mapOf = (url: string): SourceMap | undefined => {
    if (bundleDir === undefined || !url.startsWith(bundleDir)) return undefined
    if (!maps.has(url)) {
      const file = url.slice("file://".length) + ".map"
      maps.set(url, fs.existsSync(file) ? new SourceMap(JSON.parse(fs.readFileSync(file, "utf8"))) : undefined)
    }
    return maps.get(url)
  }
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of profile.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const info = new Map<number, { frame: string; category: string; internal: boolean }>()
  const describe = (id: number) => {
    let d = info.get(id)
    if (d !== undefined) return d
    const cf = byId.get(id)!.callFrame
    let source = cf.url
    let line = cf.lineNumber + 1
    const map = mapOf(cf.url)
    if (map !== undefined && cf.lineNumber >= 0) {
      const e = map.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string; originalLine?: number }
      if (e.originalSource !== undefined) {
        source = e.originalSource.replace(/^(\.\.\/)+/, "")
        line = (e.originalLine ?? 0) + 1
      }
    }
    const category = categoryOf(source, cf.functionName)
    const name = cf.functionName === "" ? "(anonymous)" : cf.functionName
    const frame = source === "" ? name : `${name} (${source.replace(/^.*node_modules\//, "")}:${line})`
    d = { frame, category, internal: source === "" || source.startsWith("node:") }
    info.set(id, d)
    return d
  }

  const [from, to] = options.window ?? [-Infinity, Infinity]
  const self = new Map<string, { category: string; us: number }>()
  const incl = new Map<string, { category: string; us: number }>()
  const cats = new Map<string, number>()
  let t = profile.startTime
  let busy = 0
  let first = Infinity
  let last = -Infinity
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    const dt = profile.timeDeltas[i + 1] ?? 0
    if (t < from || t > to) continue
    first = Math.min(first, t)
    last = Math.max(last, t)
    const id = profile.samples[i]!
    const d = describe(id)
    if (d.category === "idle") continue
    busy += dt
    cats.set(d.category, (cats.get(d.category) ?? 0) + dt)
    const s = self.get(d.frame) ?? { category: d.category, us: 0 }
    s.us += dt
    self.set(d.frame, s)
    const onStack = new Set<string>()
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const dn = describe(n)
      if (dn.internal || dn.category === "root" || onStack.has(dn.frame)) continue
      onStack.add(dn.frame)
      const e = incl.get(dn.frame) ?? { category: dn.category, us: 0 }
      e.us += dt
      incl.set(dn.frame, e)
    }
  }
  const top = options.top ?? 15
  const pct = (us: number) => (busy === 0 ? 0 : Math.round((us / busy) * 1000) / 10)
  const ms = (us: number) => Math.round(us / 100) / 10
  const entries = (m: Map<string, { category: string; us: number }>) =>
    [...m.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, top)
      .map(([frame, v]) => ({ frame, category: v.category, ms: ms(v.us), pct: pct(v.us) }))
  return {
    file,
    windowMs: first === Infinity ? 0 : ms(last - first),
    busyMs: ms(busy),
    categories: [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: ms(us), pct: pct(us) })),
    topSelf: entries(self),
    topInclusive: entries(incl)
  }
}

/** CLOCK_MONOTONIC in µs (the clock of cpuprofile timestamps). */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n)

/** Text rendering of a summary. */
export const formatProfile = (s: ProfileSummary): string => {
  const lines: Array<string> = []
  lines.push(`profile ${s.file}: ${s.busyMs} ms busy CPU in a ${s.windowMs} ms window`)
  lines.push("  self time by category:")
  for (const c of s.categories.slice(0, 12)) lines.push(`    ${c.pct.toFixed(1).padStart(5)} %  ${c.category}`)
  lines.push("  top self time:")
  for (const e of s.topSelf) lines.push(`    ${e.pct.toFixed(1).padStart(5)} %  ${e.frame}`)
  lines.push("  top inclusive (share of busy samples with the frame on the stack):")
  for (const e of s.topInclusive) lines.push(`    ${e.pct.toFixed(1).padStart(5)} %  ${e.frame}`)
  return lines.join("\n")
}
