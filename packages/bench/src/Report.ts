/**
 * Text table, ratios and target checks for a {@link BenchReport}; the same figures go to JSON.
 */
import { type BenchReport, luaScriptName, type Row } from "./Bench.js"

const label = (r: Row): string => {
  const server = r.server === "doveroute" ? "doveroute" : r.server === "bare" ? "bare node:net" : r.server === "dovecot-lua" ? "Dovecot+Lua" : "Dovecot+Lua blocking=no"
  if (r.server === "bare") return server
  return `${server} ${r.frontend} ${r.store} ${r.temperature}${r.variant === "nocache" ? " (cache off)" : ""}`
}

const ms = (us: number): string => (us / 1000).toFixed(3)

/** The Dovecot+Lua row to compare a row with: same temperature and level (Lua runs on SQLite only). */
const luaFor = (rows: ReadonlyArray<Row>, r: Row, server: "dovecot-lua" | "dovecot-lua-inproc" = "dovecot-lua"): Row | undefined =>
  rows.find((x) => x.server === server && x.temperature === r.temperature && x.connections === r.connections)
const bareFor = (rows: ReadonlyArray<Row>, r: Row): Row | undefined =>
  rows.find((x) => x.server === "bare" && x.connections === r.connections)

const ratio = (a: number, b: Row | undefined): number | undefined =>
  b === undefined || b.result.rps === 0 ? undefined : Math.round((a / b.result.rps) * 100) / 100

export interface Ratios {
  readonly id: string
  readonly connections: number
  readonly vsLua: number | undefined
  /** vs Dovecot with the Lua passdb in the auth process (`blocking=no`), warm only. */
  readonly vsLuaInProcess: number | undefined
  readonly vsBare: number | undefined
}

export const ratios = (report: BenchReport): Array<Ratios> =>
  report.rows.filter((r) => r.server === "doveroute").map((r) => ({
    id: r.id,
    connections: r.connections,
    vsLua: ratio(r.result.rps, luaFor(report.rows, r)),
    vsLuaInProcess: ratio(r.result.rps, luaFor(report.rows, r, "dovecot-lua-inproc")),
    vsBare: ratio(r.result.rps, bareFor(report.rows, r))
  }))

export interface TargetCheck {
  readonly target: string
  readonly value: string
  readonly met: boolean | undefined
}

/** The targets, evaluated on this run (undefined = not measured). */
export const targets = (report: BenchReport): Array<TargetCheck> => {
  const rows = report.rows
  const top = Math.max(0, ...rows.map((r) => r.connections))
  const warm = rows.find((r) => r.server === "doveroute" && r.variant === undefined && r.frontend === "auth" && r.store === "sqlite" && r.temperature === "warm" && r.connections === top) ??
    rows.find((r) => r.server === "doveroute" && r.variant === undefined && r.frontend === "dict" && r.store === "sqlite" && r.temperature === "warm" && r.connections === top)
  const uncached = rows.find((r) => r.server === "doveroute" && r.variant === "nocache" && r.temperature === "warm" && r.connections === top)
  const cold = rows.find((r) => r.server === "doveroute" && r.store === "sqlite" && r.temperature === "cold" && r.connections === top)
  const low = Math.min(...rows.map((r) => r.connections))
  const cold1 = rows.find((r) => r.server === "doveroute" && r.store === "sqlite" && r.temperature === "cold" && r.connections === low)
  const via = warm === undefined ? "" : ` (${warm.frontend} front-end)`
  const out: Array<TargetCheck> = []
  const vsLua = warm === undefined ? undefined : ratio(warm.result.rps, luaFor(rows, warm))
  const vsBare = warm === undefined ? undefined : ratio(warm.result.rps, bareFor(rows, warm))
  const clean = (r: Row | undefined) => r !== undefined && r.result.errors === 0 && (r.verify?.errors ?? 0) === 0
  out.push({ target: `warm @${top}: ≥ 3× Dovecot+Lua${via}`, value: vsLua === undefined ? "n/a" : `${vsLua}×`, met: vsLua === undefined ? undefined : vsLua >= 3 })
  const vsInproc = warm === undefined ? undefined : ratio(warm.result.rps, luaFor(rows, warm, "dovecot-lua-inproc"))
  if (vsInproc !== undefined) {
    out.push({ target: `(same against Dovecot+Lua blocking=no, Lua in the auth process)`, value: `${vsInproc}×`, met: vsInproc >= 3 })
  }
  if (uncached !== undefined) {
    const v = ratio(uncached.result.rps, luaFor(rows, uncached))
    out.push({ target: `(for comparison, not a target: the same with doveroute's lookup cache off, every request reads SQLite)`, value: v === undefined ? "n/a" : `${v}×`, met: undefined })
  }
  out.push({ target: `warm @${top}: ≥ 0.6× bare socket${via}`, value: vsBare === undefined ? "n/a" : `${vsBare}×`, met: vsBare === undefined ? undefined : vsBare >= 0.6 })
  out.push({
    target: `cached lookup p99 < 1 ms @${top}${via}`,
    value: warm === undefined ? "n/a" : `${ms(warm.result.latencyUs.p99)} ms`,
    met: warm === undefined ? undefined : warm.result.latencyUs.p99 < 1000
  })
  out.push({
    target: `cold first-time assignment on SQLite p99 < 5 ms @${top}`,
    value: cold === undefined ? "n/a (needs the auth socket)" : `${ms(cold.result.latencyUs.p99)} ms`,
    met: cold === undefined ? undefined : cold.result.latencyUs.p99 < 5000
  })
  if (cold1 !== undefined && low !== top) {
    out.push({
      target: `(same at ${low} connection${low === 1 ? "" : "s"}: pure latency, no queueing)`,
      value: `${ms(cold1.result.latencyUs.p99)} ms`,
      met: cold1.result.latencyUs.p99 < 5000
    })
  }
  const m = report.memory
  out.push({
    target: "daemon RSS < 250 MB (1 M users mapped, 100 k looked up)",
    value: m === undefined ? "n/a" : `${m.rssAfterLookupsMb} MB (peak ${m.peakRssMb} MB)`,
    met: m === undefined ? undefined : m.peakRssMb < 250
  })
  out.push({
    target: "no errors (every reply checked)",
    value: `${rows.reduce((a, r) => a + r.result.errors + (r.verify?.errors ?? 0), 0)} errors`,
    met: rows.every(clean)
  })
  return out
}

/** The whole report as text. */
export function formatReport(report: BenchReport): string {
  const rows = report.rows
  const out: Array<string> = []
  out.push(`doveroute benchmark — ${report.date} — ${report.machine.cpus} CPU (${report.machine.cpuModel}), node ${report.machine.node}, ` +
    `load avg before ${report.machine.loadBefore.join("/")} after ${(report.machine.loadAfter ?? []).join("/")}`)
  out.push(`command: ${report.command}`)
  out.push(`per run: ${report.options.durationMs} ms measured after ${report.options.warmupMs} ms warm-up, depth ${report.options.depth}, ${report.options.users} warm users; bundle ${report.bundle}`)
  out.push("")
  const inproc = rows.some((r) => r.server === "dovecot-lua-inproc")
  const head = ["case", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "cpu µs/req", "peak RSS MB", "×Lua", ...(inproc ? ["×Lua nb"] : []), "×bare"]
  const table: Array<Array<string>> = [head]
  for (const r of rows) {
    const l = r.result.latencyUs
    const lua = r.server === "doveroute" ? ratio(r.result.rps, luaFor(rows, r)) : undefined
    const luaNb = r.server === "doveroute" ? ratio(r.result.rps, luaFor(rows, r, "dovecot-lua-inproc")) : undefined
    const bare = r.server !== "bare" ? ratio(r.result.rps, bareFor(rows, r)) : undefined
    const errs = r.result.errors + (r.verify?.errors ?? 0)
    table.push([
      label(r),
      String(r.connections),
      String(r.result.rps),
      ms(l.p50),
      ms(l.p90),
      ms(l.p99),
      ms(l.max),
      String(errs) + (r.verify !== undefined ? ` (${r.verify.checked} re-checked)` : ""),
      String(r.cpuUsPerReply),
      String(r.peakRssMb),
      lua === undefined ? "" : lua.toFixed(2),
      ...(inproc ? [luaNb === undefined ? "" : luaNb.toFixed(2)] : []),
      bare === undefined ? "" : bare.toFixed(2)
    ])
  }
  const widths = head.map((_, i) => Math.max(...table.map((t) => t[i]!.length)))
  for (const t of table) out.push(t.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "))
  out.push("")
  out.push(`×Lua = req/s ÷ Dovecot 2.3.19 + ${luaScriptName(report.options)} (auth workers, Dovecot's default) on the same SQLite file, same temperature and connections;`)
  if (inproc) out.push("×Lua nb = the same against Dovecot with the Lua passdb in the auth process (blocking=no; warm only).")
  out.push("×bare = req/s ÷ the bare node:net server at the same connections (same request lines, fixed reply of doveroute's auth reply size).")
  out.push("cpu µs/req = server CPU time (user+sys, all its processes; Dovecot: master and all children) per reply. Peak RSS: VmHWM")
  out.push("(doveroute: its node process serving dict+auth; Dovecot: auth + auth-worker processes summed). The generator is one node process on the same machine.")
  if (report.memory !== undefined) {
    const m = report.memory
    out.push("")
    out.push(`memory check (${m.frontend}): ${m.mappedUsers} users mapped (inserted in ${m.insertSeconds} s), ${m.lookedUp} looked up at ${m.lookupRps}/s, ` +
      `${m.lookupErrors} errors; RSS after start ${m.rssAfterStartMb} MB, after lookups ${m.rssAfterLookupsMb} MB, peak ${m.peakRssMb} MB`)
  }
  out.push("")
  out.push("targets:")
  for (const t of targets(report)) out.push(`  ${t.met === undefined ? (t.value === "n/a" ? "  ?  " : " info ") : t.met ? " met " : "MISSED"}  ${t.target}: ${t.value}`)
  if (report.skipped.length > 0) {
    out.push("")
    out.push("skipped / failed:")
    for (const s of report.skipped) out.push(`  - ${s.what}: ${s.why.split("\n").slice(0, 4).join("\n      ")}`)
  }
  for (const n of report.notes) out.push(`note: ${n}`)
  return out.join("\n")
}
