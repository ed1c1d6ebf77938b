/**
 * `doveroute import FILE` (CSV or JSON mappings), `--from-director FILE` (a Dovecot 2.3 Director
 * ring's `doveadm director dump` and `map` output), `--from-director-config FILE` (its
 * `director_mail_servers`); `--dry-run` shows what would change and writes nothing.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { AdminOps } from "@doveroute/store"
import { Effect } from "effect"
import { adminOptions } from "../CommonOptions.js"
import { output, requireStrategy, withReadStore, withStore } from "./AdminSupport.js"
import { backendLines, importFromDirector, importFromDirectorConfig, notCarriedLines } from "./DirectorImport.js"
import { requireFile } from "./Lines.js"
import { importFile } from "./Ops.js"

/** The summary and the first conflicts and errors of a mapping import. */
const reportLines = (r: AdminOps.ImportReport, dryRun: boolean) => [
  `${r.total} rows: ${r.inserted} ${dryRun ? "would be inserted" : "inserted"}, ${r.unchanged} unchanged, ${r.conflictCount} conflicts, ${r.errorCount} errors` +
  (dryRun ? " (dry run: nothing written)" : ""),
  ...r.conflicts.slice(0, 50).map((c) => `conflict: ${String(c.key)} is on backend ${c.current}, file says ${c.backend} (not changed)`),
  ...r.errors.slice(0, 50).map((e) => `error: ${String(e.key)} -> ${e.backend}: ${e.error}`)
]

const stderr = (lines: ReadonlyArray<string>) => Effect.sync(() => { for (const l of lines) process.stderr.write(`doveroute: import: ${l}\n`) })

/** Exit 3 when rows were not imported (conflicts, errors, or `lost` other rows). */
const finish = (r: AdminOps.ImportReport, lost = 0) =>
  r.conflictCount > 0 || r.errorCount > 0 || lost > 0
    ? Effect.zipRight(
      stderr([`${r.conflictCount} conflicts and ${r.errorCount} errors${lost > 0 ? `, ${lost} users not carried over` : ""} (existing rows were not changed)`]),
      Effect.sync(() => { process.exitCode = 3 })
    )
    : Effect.void

const options = {
  ...adminOptions,
  fromDirector: Options.boolean("from-director").pipe(Options.withDescription(
    "FILE is `doveadm director dump` and/or `doveadm director map` output of a Dovecot 2.3 Director ring: its hosts become backends, its named users mappings"
  )),
  fromDirectorConfig: Options.boolean("from-director-config").pipe(Options.withDescription(
    "FILE holds a 2.3 `director_mail_servers` value (`doveconf -h director_mail_servers`) or setting: one backend per host"
  )),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("show what would change; write nothing (the store must exist and be migrated)")),
  file: Args.text({ name: "FILE" }).pipe(Args.withDescription("CSV, JSON or Director output, or - for stdin"))
} as const

export const importCommand = Command.make("import", options, (o) => {
  const withIt = o.dryRun ? withReadStore : withStore
  return withIt(o, (settings) =>
    Effect.gen(function*() {
      yield* requireFile(o.file)
      if (o.fromDirector && o.fromDirectorConfig) {
        return yield* new AdminOps.AdminError({ reason: "Invalid", detail: "give --from-director or --from-director-config, not both" })
      }
      if (o.fromDirectorConfig) {
        const r = yield* importFromDirectorConfig(o.file, o.dryRun)
        yield* output(o.json, r, () => [
          ...backendLines(o.dryRun, r.backends),
          ...r.multiAddress.map((m) => `note: ${m.host} has ${m.addresses.length} addresses (${m.addresses.join(", ")}): one backend per address, named by the address`)
        ])
        return yield* stderr(notCarriedLines(r))
      }
      if (o.fromDirector) {
        yield* requireStrategy(settings, "mapping", "the Director maps users, and doveroute's shards are not its hashes")
        const r = yield* importFromDirector(o.file, o.dryRun)
        yield* output(o.json, r, () => [...backendLines(o.dryRun, r.backends), ...reportLines(r.mappings, o.dryRun)])
        yield* stderr(notCarriedLines(r))
        return yield* finish(r.mappings, r.unnamedCount)
      }
      const report = yield* importFile(o.file, settings.strategy, o.dryRun)
      yield* output(o.json, { ...report, dryRun: o.dryRun }, () => reportLines(report, o.dryRun))
      return yield* finish(report)
    }))
}).pipe(Command.withDescription(
  "import user→backend mappings (CSV user,backend streamed, or JSON [{user, backend}]; FILE or - for stdin; a backend by hostname, id or hostip); " +
    "--from-director: a 2.3 Director ring's dump/map output; --from-director-config: its director_mail_servers; --dry-run: show, write nothing; idempotent; conflicts reported (exit 3)"
))
