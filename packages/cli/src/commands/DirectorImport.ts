/**
 * `doveroute import --from-director FILE` and `--from-director-config FILE`: a Dovecot 2.3
 * Director ring's hosts and user mappings into `backends` and `user_backend` (DirectorFormat.ts
 * reads the text). Nothing is guessed: a host is matched to an existing backend by its IP
 * (hostname or `hostip`) or added named by its IP, with the host's tag (`HOST@TAG`, the pool of
 * the 2.3 `director_tag`) as its `backends.tag`; a user is imported only under a name doveadm
 * printed; hashes without a name and removed hosts are reported.
 *
 * @since 0.1.0
 */
import { Router } from "@doveroute/routing"
import { AdminOps, BackendPlan, Operations } from "@doveroute/store"
import { Effect } from "effect"
import * as dns from "node:dns"
import { isIP } from "node:net"
import { type MailServer, parseDirectorLine, parseMailServers } from "./DirectorFormat.js"
import { linePasses, readError } from "./Lines.js"
import { chunkedImport, progressReporter } from "./ImportFile.js"

/** How many hashes without a user name a report lists (all are counted). */
const UNNAMED_DETAILS = 50

/** One backend step as reported. */
export interface StepReport {
  readonly action: "add" | "update" | "unchanged"
  readonly hostname: string
  readonly hostip: string | null
  readonly id: number | null
  readonly weight: number
  readonly state: string
  /** The backend's tag (pool); null = untagged. */
  readonly tag: string | null
  readonly weightBefore?: number
  readonly stateBefore?: string
  readonly tagBefore?: string | null
}

const stepReport = (s: BackendPlan.BackendStep): StepReport =>
  s.action === "add"
    ? { action: "add", hostname: s.hostname, hostip: s.hostip, id: null, weight: s.weight, state: Operations.stateName(s.state), tag: s.tag }
    : s.action === "update"
    ? {
      action: "update", hostname: s.backend.hostname, hostip: s.backend.hostip, id: s.backend.id,
      weight: s.weight, state: Operations.stateName(s.state), tag: s.tag,
      weightBefore: s.backend.weight, stateBefore: s.backend.stateName, tagBefore: s.backend.tag
    }
    : {
      action: "unchanged", hostname: s.backend.hostname, hostip: s.backend.hostip, id: s.backend.id,
      weight: s.backend.weight, state: s.backend.stateName, tag: s.backend.tag
    }

/** Plan the backends, and add/update them unless this is a dry run. */
const backendsFor = (wanted: ReadonlyArray<BackendPlan.WantedBackend>, dryRun: boolean) =>
  Effect.gen(function*() {
    const steps = yield* BackendPlan.planBackends(wanted)
    if (!dryRun) yield* BackendPlan.applyBackendPlan(steps)
    return steps
  })

/** A host's tag as the Director prints it ("" = none) as a backend's tag (null = untagged). */
const tagOf = (tag: string): string | null => tag === "" ? null : tag

/** The result of `import --from-director`. */
export interface DirectorReport {
  readonly dryRun: boolean
  readonly backends: ReadonlyArray<StepReport>
  /** Hosts removed from the ring, with the backend that still has their IP (if any). */
  readonly removedHosts: ReadonlyArray<{ readonly ip: string; readonly backend: { readonly id: number; readonly hostname: string } | null }>
  readonly mappings: AdminOps.ImportReport
  readonly unnamedCount: number
  readonly unnamed: ReadonlyArray<{ readonly hash: string; readonly ip: string }>
}

/**
 * Read `doveadm director dump` and/or `doveadm director map` output (one file, any order, or
 * stdin): first every line is checked (a bad line stops the import before anything is written),
 * then the hosts become backends, then the named users are imported (idempotent, conflicts
 * reported) under the daemon's user name normalisation.
 */
export const importFromDirector = (file: string, dryRun: boolean) =>
  Effect.gen(function*() {
    const router = yield* Router
    const pass = linePasses(file)
    // a host of the dump or of `status` (which alone has the up/down state), by IP in file order
    const hosts = new Map<string, { ip: string; tag: string; vhosts: number; state?: number }>()
    const removedHosts: Array<string> = []
    const unnamed: Array<{ hash: string; ip: string }> = []
    let unnamedCount = 0
    let users = 0
    yield* pass((line, lineNo) =>
      Effect.try({ try: () => parseDirectorLine(line, lineNo), catch: readError(file) }).pipe(Effect.map((l) => {
        if (l?.kind === "host") hosts.set(l.ip, { ...hosts.get(l.ip), ip: l.ip, tag: l.tag, vhosts: l.vhosts })
        else if (l?.kind === "status") hosts.set(l.ip, { ip: l.ip, tag: l.tag, vhosts: l.vhosts, state: l.down ? Operations.STATE.down : Operations.STATE.up })
        else if (l?.kind === "removed") removedHosts.push(l.ip)
        else if (l?.kind === "user") users++
        else if (l?.kind === "unknown" && unnamedCount++ < UNNAMED_DETAILS) unnamed.push({ hash: l.hash, ip: l.ip })
      })))
    if (hosts.size === 0 && removedHosts.length === 0 && users === 0 && unnamedCount === 0) {
      return yield* new AdminOps.AdminError({ reason: "Invalid", detail: `${file} holds no "doveadm director status", "dump" or "map" output` })
    }
    const ring = [...hosts.values()]
    const steps = yield* backendsFor(ring.map((h) => ({ hostname: h.ip, hostip: h.ip, weight: h.vhosts, state: h.state, tag: tagOf(h.tag) })), dryRun)
    const imp = yield* AdminOps.importer("mapping", { dryRun, plannedNames: BackendPlan.plannedNames(steps) })
    const rows = chunkedImport(imp, users >= 1000 ? progressReporter(users) : undefined)
    yield* pass((line, lineNo) =>
      Effect.flatMap(Effect.try({ try: () => parseDirectorLine(line, lineNo), catch: readError(file) }), (l) =>
        l?.kind === "user" ? rows.push({ key: router.keyOf(l.user), backend: l.ip }) : Effect.void))
    yield* rows.end
    const all = yield* AdminOps.listBackends
    return {
      dryRun,
      backends: steps.map(stepReport),
      removedHosts: removedHosts.map((ip) => {
        const b = all.find((x) => x.hostip === ip || x.hostname === ip)
        return { ip, backend: b === undefined ? null : { id: b.id, hostname: b.hostname } }
      }),
      mappings: imp.report(),
      unnamedCount,
      unnamed
    } satisfies DirectorReport
  })

/** The result of `import --from-director-config`. */
export interface DirectorConfigReport {
  readonly dryRun: boolean
  readonly backends: ReadonlyArray<StepReport>
  /** Host names with several addresses: one backend per address, named by the address. */
  readonly multiAddress: ReadonlyArray<{ readonly host: string; readonly addresses: ReadonlyArray<string> }>
}

const resolve = (s: MailServer) =>
  isIP(s.host) !== 0
    ? Effect.succeed([s.host])
    : Effect.tryPromise({
      try: () => dns.promises.lookup(s.host, { all: true, verbatim: true }).then((as) => [...new Set(as.map((a) => a.address))]),
      catch: (e) => new AdminOps.AdminError({ reason: "Invalid", detail: `director_mail_servers: cannot resolve ${s.host}: ${(e as Error).message}` })
    })

/**
 * Read a `director_mail_servers` value (or a file with that setting) and add one backend per
 * host: an IP is named by itself; a host name with one address keeps its name (hostip = the
 * address), one with several becomes one backend per address. A host's `@TAG` becomes its
 * backend's tag (no tag: untagged, as on the ring). Existing backends (same hostname or IP) keep
 * their weight and take the tag; new ones get the Director's default vhost count as weight.
 */
export const importFromDirectorConfig = (file: string, dryRun: boolean) =>
  Effect.gen(function*() {
    let text = ""
    yield* linePasses(file)((line) => Effect.sync(() => { text += line + "\n" }))
    const servers = yield* Effect.try({ try: () => parseMailServers(text), catch: readError(file) })
    const resolved = yield* Effect.forEach(servers, (s) => Effect.map(resolve(s), (addresses) => ({ ...s, addresses })))
    const wanted = resolved.flatMap((s) =>
      s.addresses.map((ip) => ({ hostname: s.addresses.length === 1 ? s.host : ip, hostip: ip, tag: tagOf(s.tag) })))
    const steps = yield* backendsFor(wanted, dryRun)
    return {
      dryRun,
      backends: steps.map(stepReport),
      multiAddress: resolved.filter((s) => s.addresses.length > 1).map((s) => ({ host: s.host, addresses: s.addresses }))
    } satisfies DirectorConfigReport
  })

const would = (dryRun: boolean, done: string, will: string) => dryRun ? will : done

/** The backend lines of a report. */
export const backendLines = (dryRun: boolean, backends: ReadonlyArray<StepReport>): Array<string> =>
  backends.map((b) =>
    b.action === "add"
      ? `backend ${b.hostname}: ${would(dryRun, "added", "would be added")} (hostip ${b.hostip}, ${b.state}, weight ${b.weight}${b.tag !== null ? `, tag ${b.tag}` : ""})`
      : b.action === "update"
      ? `backend ${b.hostname} (id ${b.id}): ` +
        [
          b.stateBefore !== b.state ? `${b.stateBefore} -> ${b.state}` : "",
          b.weightBefore !== b.weight ? `weight ${b.weightBefore} -> ${b.weight}` : "",
          b.tagBefore !== b.tag ? `tag ${b.tagBefore ?? "none"} -> ${b.tag ?? "none"}` : ""
        ].filter((x) => x !== "").join(", ") + (dryRun ? " (would be set)" : "")
      : `backend ${b.hostname} (id ${b.id}): unchanged`)

/** Lines about what was not carried over (stderr). */
export const notCarriedLines = (
  r: { readonly removedHosts?: DirectorReport["removedHosts"]; readonly unnamedCount?: number; readonly unnamed?: DirectorReport["unnamed"] }
) => [
  ...(r.removedHosts ?? []).map((h) =>
    h.backend === null
      ? `not carried over: host ${h.ip} was removed from the ring (no backend added)`
      : `not carried over: host ${h.ip} was removed from the ring, but backend ${h.backend.hostname} (id ${h.backend.id}) has its IP and receives new users: ` +
        `"doveroute backend remove ${h.backend.hostname}" (or "backend down") if it should not`
  ),
  ...((r.unnamedCount ?? 0) > 0
    ? [
      `not carried over: ${r.unnamedCount} user hashes without a user name ("<unknown>": give doveadm director map the user names with -f FILE); these users get a backend at their next login`,
      ...(r.unnamed ?? []).map((u) => `  hash ${u.hash} on ${u.ip}`)
    ]
    : [])
]
