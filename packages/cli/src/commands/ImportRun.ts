/**
 * What `doveroute import` does (the options: Import.ts), imported when it runs.
 *
 * @since 0.1.0
 */
import { AdminOps, UserTags } from "@doveroute/store"
import { Effect } from "effect"
import { output, requireStrategy, withReadStore, withStore } from "./AdminSupport.js"
import { backendLines, importFromDirector, importFromDirectorConfig, notCarriedLines } from "./DirectorImport.js"
import { backendChangeLines } from "./DumpBackends.js"
import { importFile } from "./ImportFile.js"
import type { importConfig } from "./Import.js"
import type { Parsed } from "./Lazy.js"
import { requireFile } from "./Lines.js"

/** The summary and the first conflicts and errors of a mapping import. */
const reportLines = (r: AdminOps.ImportReport, dryRun: boolean) => [
  `${r.total} rows: ${r.inserted} ${dryRun ? "would be inserted" : "inserted"}, ${r.unchanged} unchanged, ${r.conflictCount} conflicts, ${r.errorCount} errors` +
  (dryRun ? " (dry run: nothing written)" : ""),
  ...r.conflicts.slice(0, 50).map((c) => `conflict: ${String(c.key)} is on backend ${c.current}, file says ${c.backend} (not changed)`),
  ...r.errors.slice(0, 50).map((e) => `error: ${String(e.key)} -> ${e.backend}: ${e.error}`)
]

const stderr = (lines: ReadonlyArray<string>) => Effect.sync(() => { for (const l of lines) process.stderr.write(`doveroute: import: ${l}\n`) })

/** The summary and the first conflicts and errors of a user-tag import (none when the file had no tags). */
const tagLines = (r: UserTags.TagImportReport, dryRun: boolean) =>
  r.total === 0 ? [] : [
    `${r.total} user tags: ${r.inserted} ${dryRun ? "would be set" : "set"}, ${r.unchanged} unchanged, ${r.conflictCount} conflicts, ${r.errorCount} errors` +
    (dryRun ? " (dry run: nothing written)" : ""),
    ...r.conflicts.slice(0, 50).map((c) => `conflict: ${c.key} has tag ${c.current}, file says ${c.tag} (not changed)`),
    ...r.errors.slice(0, 50).map((e) => `error: ${e.key} tag ${JSON.stringify(e.tag)}: ${e.error}`)
  ]

/** Exit 3 when rows were not imported (conflicts, errors, or `lost` other rows), user tags included. */
const finish = (r: AdminOps.ImportReport, lost = 0, tags?: UserTags.TagImportReport) => {
  const conflicts = r.conflictCount + (tags?.conflictCount ?? 0)
  const errors = r.errorCount + (tags?.errorCount ?? 0)
  return conflicts > 0 || errors > 0 || lost > 0
    ? Effect.zipRight(
      stderr([`${conflicts} conflicts and ${errors} errors${lost > 0 ? `, ${lost} users not carried over` : ""} (existing rows were not changed)`]),
      Effect.sync(() => { process.exitCode = 3 })
    )
    : Effect.void
}

export const importCommand = (o: Parsed<typeof importConfig>) => {
  const withIt = o.dryRun ? withReadStore : withStore
  return withIt(o, (settings) =>
    Effect.gen(function*() {
      yield* requireFile(o.file)
      if (o.fromDirector && o.fromDirectorConfig) {
        return yield* new AdminOps.AdminError({ reason: "Invalid", detail: "give --from-director or --from-director-config, not both" })
      }
      if (o.fromDirectorConfig) {
        const r = yield* importFromDirectorConfig(o.file, o.dryRun)
        return yield* output(o.json, r, () => [
          ...backendLines(o.dryRun, r.backends),
          ...r.multiAddress.map((m) => `note: ${m.host} has ${m.addresses.length} addresses (${m.addresses.join(", ")}): one backend per address, named by the address`),
          ...(settings.strategy === "shard" && r.backends.some((b) => b.tag !== null)
            ? ["note: strategy shard places shards on untagged backends only: the tagged ones receive none (tags need strategy mapping)"]
            : [])
        ])
      }
      if (o.fromDirector) {
        yield* requireStrategy(settings, "mapping", "the Director maps users, and doveroute's shards are not its hashes")
        const r = yield* importFromDirector(o.file, o.dryRun)
        yield* output(o.json, r, () => [...backendLines(o.dryRun, r.backends), ...reportLines(r.mappings, o.dryRun)])
        yield* stderr(notCarriedLines(r))
        return yield* finish(r.mappings, r.unnamedCount)
      }
      const r = yield* importFile(o.file, settings.strategy, o.dryRun)
      // --json: the mapping report at the top level (as before tags), the user tags and backends beside it
      yield* output(o.json, { ...r.mappings, userTags: r.userTags, backends: r.backends, dryRun: o.dryRun }, () => [
        ...backendChangeLines(r.backends, o.dryRun),
        ...reportLines(r.mappings, o.dryRun),
        ...tagLines(r.userTags, o.dryRun)
      ])
      return yield* finish(r.mappings, 0, r.userTags)
    }))
}
