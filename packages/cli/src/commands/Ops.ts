/**
 * `doveroute status`, `doveroute dump`, `doveroute import FILE`.
 *
 * @since 0.1.0
 */
import { Args, Command } from "@effect/cli"
import type { RouteKey } from "@doveroute/routing"
import { AdminOps } from "@doveroute/store"
import { Effect } from "effect"
import * as fs from "node:fs"
import { adminOptions, output, withReadStore, withStore } from "./AdminSupport.js"

export const status = Command.make("status", adminOptions, (o) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const backends = yield* AdminOps.listBackends
      const version = yield* AdminOps.routesVersion
      const total = backends.reduce((a, b) => a + b.users, 0)
      const out = { strategy: settings.strategy, routesVersion: version, totalUsers: total, backends }
      yield* output(o.json, out, () => [
        ["mail server ip", "hostname", "id", "state", "weight", "users", "last health"].join("\t"),
        ...backends.map((b) => [b.hostip ?? "-", b.hostname, b.id, b.stateName, b.weight, b.users, b.lastHealth ?? "-"].join("\t")),
        `${backends.length} backends, ${total} ${settings.strategy === "shard" ? "shards" : "users"} mapped, routes version ${version ?? "-"}`
      ])
    }))
).pipe(Command.withDescription("backends with state, weight and mapped users (like doveadm director status)"))

const shq = (s: string) => /^[A-Za-z0-9@._:+=\/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`

export const dump = Command.make("dump", adminOptions, (o) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const backends = yield* AdminOps.listBackends
      const names = new Map(backends.map((b) => [b.id, b.hostname] as const))
      const lines: Array<string> = []
      const strat = settings.strategy === "shard" ? " --strategy shard" : ""
      for (const b of backends) {
        lines.push(`doveroute backend add ${shq(b.hostname)}${b.hostip ? " --hostip " + shq(b.hostip) : ""} --state ${b.state} --weight ${b.weight} --or-update${strat}`)
      }
      for (const m of yield* AdminOps.listMappings(settings.strategy)) {
        const host = shq(names.get(m.backendId) ?? String(m.backendId))
        lines.push(settings.strategy === "shard"
          ? `doveroute shard move ${m.key} ${host} --no-wait${strat}`
          : `doveroute user move ${shq(String(m.key))} ${host} --no-wait`)
      }
      yield* output(o.json, { commands: lines }, () => lines)
    }))
).pipe(Command.withDescription("print re-runnable doveroute commands recreating the backends and mappings (store from DOVEROUTE_STORE/--store)"))

/** Parse an import file: JSON array of {user, backend} (or {shard, backend}), or CSV `user,backend`. */
export const parseImport = (text: string, strategy: "mapping" | "shard"): Array<AdminOps.ImportRow> => {
  const toKey = (v: unknown, where: string): RouteKey => {
    if (strategy === "shard") {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${where}: shard must be 0..65535`)
      return n
    }
    const s = String(v ?? "")
    if (s.length === 0 || /[\t\r\n\x00]/.test(s)) throw new Error(`${where}: invalid user name`)
    return s
  }
  const t = text.trimStart()
  if (t.startsWith("[")) {
    const arr = JSON.parse(t) as Array<Record<string, unknown>>
    if (!Array.isArray(arr)) throw new Error("JSON import must be an array of {user, backend}")
    return arr.map((r, i) => ({ key: toKey(r["user"] ?? r["shard"], `entry ${i}`), backend: String(r["backend"] ?? "") }))
  }
  const rows: Array<AdminOps.ImportRow> = []
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return
    const comma = line.lastIndexOf(",")
    if (comma < 0) throw new Error(`line ${i + 1}: expected user,backend`)
    const user = line.slice(0, comma).trim().replace(/^"(.*)"$/, "$1")
    const backend = line.slice(comma + 1).trim().replace(/^"(.*)"$/, "$1")
    if (i === 0 && /^(user|shard)$/i.test(user) && /^backend$/i.test(backend)) return
    rows.push({ key: toKey(user, `line ${i + 1}`), backend })
  })
  return rows
}

/** A progress bar on stderr (TTY: redrawn in place; otherwise one line per 10 %). */
const progressBar = () => {
  let lastDecile = -1
  return (done: number, total: number) => {
    const pct = total === 0 ? 100 : Math.floor((done * 100) / total)
    if (process.stderr.isTTY) {
      const w = 30
      const fill = Math.round((pct / 100) * w)
      process.stderr.write(`\rimport [${"#".repeat(fill)}${" ".repeat(w - fill)}] ${pct}% ${done}/${total}${done >= total ? "\n" : ""}`)
    } else if (Math.floor(pct / 10) !== lastDecile) {
      lastDecile = Math.floor(pct / 10)
      process.stderr.write(`import: ${done}/${total} (${pct}%)\n`)
    }
  }
}

export const importCommand = Command.make("import", { ...adminOptions, file: Args.file({ name: "FILE", exists: "yes" }) }, (o) =>
  withStore(o, (settings) =>
    Effect.gen(function*() {
      const rows = yield* Effect.try({
        try: () => parseImport(fs.readFileSync(o.file, "utf8"), settings.strategy),
        catch: (e) => new AdminOps.AdminError({ reason: "Invalid", detail: `cannot read ${o.file}: ${(e as Error).message}` })
      })
      const report = yield* AdminOps.importMappings(settings.strategy, rows, rows.length >= 1000 ? progressBar() : undefined)
      yield* output(o.json, report, () => [
        `${report.total} rows: ${report.inserted} inserted, ${report.unchanged} unchanged, ${report.conflicts.length} conflicts, ${report.errors.length} errors`,
        ...report.conflicts.slice(0, 50).map((c) => `conflict: ${String(c.key)} is on backend ${c.current}, file says ${c.backend} (not changed)`),
        ...report.errors.slice(0, 50).map((e) => `error: ${String(e.key)} -> ${e.backend}: ${e.error}`)
      ])
      if (report.conflicts.length > 0 || report.errors.length > 0) {
        yield* Effect.sync(() => process.stderr.write(`doveroute: import: ${report.conflicts.length} conflicts and ${report.errors.length} errors (existing rows were not changed)\n`))
        yield* Effect.sync(() => { process.exitCode = 3 })
      }
    }))
).pipe(Command.withDescription("import user→backend mappings (CSV user,backend or JSON [{user, backend}]); idempotent; conflicts reported (exit 3)"))
