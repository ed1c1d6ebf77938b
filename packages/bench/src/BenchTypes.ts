/** The benchmark's options, result rows and report (Bench.ts runs it, Report.ts prints it). */
import type { LoadMode, LoadResult } from "./LoadGen.js"
import type { ProfileSummary } from "./Profile.js"

export const GROUPS = ["sqlite", "lua", "bare", "pg", "mysql", "memory", "profile"] as const
export type Group = (typeof GROUPS)[number]

export interface BenchOptions {
  readonly quick: boolean
  /** Measured window per run, ms. */
  readonly durationMs: number
  /** Untimed load at the start of each run, ms. */
  readonly warmupMs: number
  readonly levels: ReadonlyArray<number>
  readonly depth: number
  /** Warm user pool size. */
  readonly users: number
  readonly build: boolean
  readonly groups: ReadonlySet<Group>
  /** Also run Dovecot with the Lua passdb in the auth process (`blocking=no`). */
  readonly luaInProcess: boolean
  /** `--lua-script FILE`: the passdb script of the Dovecot + Lua cases instead of lua/director.lua. */
  readonly luaScript?: string
  /** `--sqlite-journal wal`: switch the SQLite store to WAL (`doveroute migrate --journal wal`) before the runs. */
  readonly sqliteJournal?: "wal" | "delete"
  /** `--churn`: health checks every second and one `user move` per second during the runs (Churn.ts). */
  readonly churn: boolean
  readonly memoryUsers: number
  readonly memoryLookups: number
  /** Which load the `profile` group profiles. */
  readonly profile: "warm" | "cold"
  readonly outDir: string
  readonly log: (line: string) => void
}

/** The Lua passdb script the Dovecot + Lua cases run, as the report names it. */
export const luaScriptName = (o: { readonly luaScript?: string | undefined }): string =>
  o.luaScript === undefined ? "lua/director.lua" : `${o.luaScript} (--lua-script)`

export type ServerKind = "doveroute" | "dovecot-lua" | "dovecot-lua-inproc" | "bare"
export type StoreKind = "sqlite" | "postgres" | "mysql" | "-"
export type Temperature = "warm" | "cold" | "-"
/** A non-default doveroute setting of a row (`nocache`: `cache.enabled = false`, every lookup reads the store). */
export type Variant = "nocache"

export interface Row {
  readonly id: string
  readonly server: ServerKind
  readonly frontend: LoadMode
  readonly store: StoreKind
  readonly temperature: Temperature
  readonly variant?: Variant
  readonly connections: number
  readonly result: LoadResult
  /** Server CPU time during the run (warm-up and drain included) per reply, µs. */
  readonly cpuUsPerReply: number
  /** Peak RSS of the server so far, MiB. */
  readonly peakRssMb: number
  /** First-time users looked up again afterwards: how many, how many named another host. */
  verify?: { checked: number; mismatches: number; errors: number }
}

export interface MemoryCheck {
  readonly frontend: LoadMode
  readonly mappedUsers: number
  readonly lookedUp: number
  readonly lookupRps: number
  readonly lookupErrors: number
  readonly rssAfterStartMb: number
  readonly rssAfterLookupsMb: number
  readonly peakRssMb: number
  readonly insertSeconds: number
}

export interface BenchReport {
  readonly date: string
  readonly command: string
  readonly machine: { readonly cpus: number; readonly cpuModel: string; readonly memGb: number; readonly node: string; readonly loadBefore: ReadonlyArray<number>; loadAfter?: ReadonlyArray<number> }
  readonly options: Omit<BenchOptions, "log" | "groups"> & { readonly groups: ReadonlyArray<string> }
  readonly bundle: string
  readonly authSocket: boolean
  readonly rows: Array<Row>
  readonly skipped: Array<{ readonly what: string; readonly why: string }>
  memory?: MemoryCheck
  profile?: ProfileSummary
  /** The profiled run (slowed by sampling; not in the table). */
  profileRow?: Row
  readonly notes: Array<string>
}
