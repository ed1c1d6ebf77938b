/**
 * What `doveroute status` (backends and the ring of daemons) and `doveroute dump` do (the options:
 * Ops.ts), imported when one of them runs.
 *
 * @since 0.1.0
 */
import { AdminOps, Ring, UserTags } from "@doveroute/store"
import { Effect } from "effect"
import { output, withReadStore } from "./AdminSupport.js"
import type { Parsed } from "./Lazy.js"
import type { dumpConfig, statusConfig } from "./Ops.js"

const ago = (ms: number) => ms < 120_000 ? `${Math.round(ms / 1000)}s ago` : ms < 7_200_000 ? `${Math.round(ms / 60_000)}m ago` : `${Math.round(ms / 3_600_000)}h ago`

/** The ring: one line per daemon sharing the store, those not seen for three heartbeats marked. */
const daemonLines = (daemons: ReadonlyArray<Ring.DaemonRow>) => [
  ["daemon host", "pid", "version", "started", "last seen", "lookup table", "last store error"].join("\t"),
  ...daemons.map((d) => [
    d.host,
    d.pid,
    d.version,
    new Date(d.startedAt).toISOString(),
    ago(d.ageMs) + (d.stale ? " NOT SEEN RECENTLY" : ""),
    d.tableSize ?? "-",
    d.lastStoreError === null ? "-" : `${new Date(d.lastStoreErrorAt ?? 0).toISOString()} ${d.lastStoreError}`
  ].join("\t")),
  `${daemons.length} daemons, ${daemons.filter((d) => d.stale).length} not seen recently`
]

export const status = (o: Parsed<typeof statusConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const backends = yield* AdminOps.listBackends
      const version = yield* AdminOps.routesVersion
      const daemons = yield* Ring.listDaemons(Date.now())
      const total = backends.reduce((a, b) => a + b.users, 0)
      const out = { strategy: settings.strategy, routesVersion: version, totalUsers: total, backends, daemons }
      yield* output(o.json, out, () => [
        ["mail server ip", "hostname", "id", "state", "weight", "users", "last health"].join("\t"),
        ...backends.map((b) => [b.hostip ?? "-", b.hostname, b.id, b.stateName, b.weight, b.users, b.lastHealth ?? "-"].join("\t")),
        `${backends.length} backends, ${total} ${settings.strategy === "shard" ? "shards" : "users"} mapped, routes version ${version ?? "-"}`,
        "",
        ...(daemons === null ? ["daemons: unknown (no doveroute_daemons table: run doveroute migrate)"] : daemonLines(daemons))
      ])
    }))


const shq = (s: string) => /^[A-Za-z0-9@._:+=\/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`

let pipeWatched = false
/** Write to stdout, waiting while its buffer is full (a million lines never pile up in memory). */
const writeOut = (text: string) =>
  Effect.async<void>((resume) => {
    if (!pipeWatched) {
      pipeWatched = true
      // the reader went away (`dump | head`): stop like a Unix tool killed by SIGPIPE (128 + 13)
      process.stdout.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? 141 : 1))
    }
    if (process.stdout.write(text)) resume(Effect.void)
    else process.stdout.once("drain", () => resume(Effect.void))
  })

/** Rows read per query while dumping. */
const DUMP_PAGE = 10_000

/** Ends the heredoc that carries the mappings in a dump (no CSV line can equal it: it has no comma). */
export const DUMP_END = "DOVEROUTE_DUMP_END"

/** A user name as a CSV field that {@link parseCsvLine} reads back unchanged. */
export const csvField = (s: string) => /^[^\s"#][^\t\r\n\x00]*$/.test(s) && !/\s$/.test(s) ? s : `"${s}"`

export const dump = (o: Parsed<typeof dumpConfig>) =>
  withReadStore(o, (settings) =>
    Effect.gen(function*() {
      const backends = yield* AdminOps.listBackends
      const names = new Map(backends.map((b) => [b.id, b.hostname] as const))
      const shard = settings.strategy === "shard"
      const strat = shard ? " --strategy shard" : ""
      const hostOf = (id: number) => names.get(id) ?? String(id)
      // user tags exist under strategy mapping only (a shard holds users of every tag)
      const userTags = !shard && (yield* UserTags.hasUserTags)
      if (o.json) {
        // one JSON document, written a page at a time:
        // {"strategy", "backends": [... with "tag"], "mappings": [...], "userTags": [{user, tag}] (mapping)}
        yield* writeOut(`{"strategy":${JSON.stringify(settings.strategy)},"backends":${JSON.stringify(backends)},"mappings":[`)
        let first = true
        yield* AdminOps.forEachMappingPage(settings.strategy, DUMP_PAGE, (page) => {
          const text = page.map((m) => JSON.stringify(shard ? { shard: m.key, backend: hostOf(m.backendId) } : { user: m.key, backend: hostOf(m.backendId) }))
          const out = (first ? "\n" : ",\n") + text.join(",\n")
          first = false
          return writeOut(out)
        })
        if (shard) return yield* writeOut("\n]}\n")
        yield* writeOut(`\n],"userTags":[`)
        first = true
        yield* UserTags.forEachUserTagPage(DUMP_PAGE, (page) => {
          const out = (first ? "\n" : ",\n") + page.map((t) => JSON.stringify({ user: t.user, tag: t.tag })).join(",\n")
          first = false
          return writeOut(out)
        })
        return yield* writeOut("\n]}\n")
      }
      // a shell script: the backends (with their tags), then every mapping and user tag through ONE
      // `doveroute import` (stdin): `user,backend` CSV, or `user,backend,tag` when the store has
      // user tags (the mappings as `user,backend,`, then the tags as `user,,tag`)
      const head = [
        "#!/bin/sh",
        `# doveroute dump (strategy ${settings.strategy}): recreates the backends (with their tags), mappings and user tags on an empty store`,
        "# (or one that agrees; a user found on another backend or with another tag is reported, not changed). Replay: sh FILE",
        "set -e",
        ...backends.map((b) =>
          `doveroute backend add ${shq(b.hostname)}${b.hostip ? " --hostip " + shq(b.hostip) : ""} --state ${b.state} --weight ${b.weight}` +
          `${b.checkPort !== null ? " --check-port " + b.checkPort : ""}${b.tag !== null ? " --tag " + shq(b.tag) : ""} --or-update${strat}`),
        `doveroute import${strat} - <<'${DUMP_END}'`,
        shard ? "shard,backend" : userTags ? "user,backend,tag" : "user,backend"
      ]
      yield* writeOut(head.join("\n") + "\n")
      const end = userTags ? ",\n" : "\n"
      yield* AdminOps.forEachMappingPage(settings.strategy, DUMP_PAGE, (page) =>
        writeOut(page.map((m) => `${shard ? m.key : csvField(String(m.key))},${hostOf(m.backendId)}${end}`).join("")))
      if (userTags) {
        yield* writeOut("# user tags (doveroute user tag)\n")
        yield* UserTags.forEachUserTagPage(DUMP_PAGE, (page) => writeOut(page.map((t) => `${csvField(t.user)},,${t.tag}\n`).join("")))
      }
      return yield* writeOut(`${DUMP_END}\n`)
    }))
