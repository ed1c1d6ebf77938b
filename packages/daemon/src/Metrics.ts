/**
 * Prometheus metrics (`metrics.listen`; loopback only unless `metrics.allow_remote`) with `prom-client` on its own registry,
 * served as `GET /metrics` by a small `node:http` server.
 *
 * Hot path: one counter increment and one histogram observation per lookup (a wrapper around the
 * {@link Lookup} service). Everything else is computed on scrape: hits/misses from the routing
 * table (or `RouteCache.stats()`), the feed's state, the checker's last results, and backend states
 * and users per backend: from the loaded routing table, else from one store query cached for
 * {@link BACKEND_QUERY_TTL_MS}. A scrape never fails because the store is away: the last values
 * read are reported (and `doveroute_store_up` says 0).
 *
 * @since 0.1.0
 */
import { ListenerCounts, Lookup, type LookupResult } from "@doveroute/frontends"
import { isStoreErrorReason, RouteCache, RouteTable } from "@doveroute/routing"
import { Health } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer, Option, Runtime } from "effect"
import * as http from "node:http"
import * as client from "prom-client"
import { HealthChecker } from "./HealthCheck.js"
import * as OpsEvents from "./OpsEvents.js"
import type { MetricsSettings } from "./Settings.js"
import { VERSION } from "./Version.js"

/** How long the users-per-backend query result is reused between scrapes. */
export const BACKEND_QUERY_TTL_MS = 5000

/** The longest a scrape waits for the store (then the last values are reported). */
export const BACKEND_QUERY_TIMEOUT = "1 second"

/** The routing table's feed: whether the store answers, how old the table is, reloads, changes applied. */
const feedMetrics = (registers: Array<client.Registry>, t: Context.Tag.Service<RouteTable>) => {
  new client.Gauge({
    name: "doveroute_store_up",
    help: "1 when the last read of the store's change feed worked, 0 while the store is away (known users are routed from memory)",
    registers,
    collect() {
      this.set(t.status().storeUp ? 1 : 0)
    }
  })
  new client.Gauge({
    name: "doveroute_table_age_seconds",
    help: "Seconds since the routing table last read the store's change feed successfully (-1 before the first read)",
    registers,
    collect() {
      const at = t.status().lastReadAt
      this.set(at === 0 ? -1 : (Date.now() - at) / 1000)
    }
  })
  new client.Counter({
    name: "doveroute_table_reloads_total",
    help: "Full loads of the routing table (the start, then reloads after a gap in the change feed)",
    registers,
    collect() {
      this.reset()
      this.inc(t.status().reloads)
    }
  })
  new client.Counter({
    name: "doveroute_table_changes_total",
    help: "Change feed entries applied to the routing table",
    registers,
    collect() {
      this.reset()
      this.inc(t.status().applied)
    }
  })
}

/** prom-client default metrics that are gauges with a `_total` name (refused by `promtool check metrics`). */
export const LINT_FAILING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"] as const

export interface MetricsService {
  readonly registry: client.Registry
  readonly lookups: client.Counter<"frontend" | "result">
  readonly latency: client.Histogram<"frontend">
  readonly storeErrors: client.Counter<"reason">
}

export class Metrics extends Context.Tag("doveroute/Metrics")<Metrics, MetricsService>() {}

/** The result label of a lookup outcome: `ok`, or the temp-fail reason in snake case. */
export const resultLabel = (r: LookupResult): string => r._tag === "Routed" ? "ok" : snakeCase(r.reason)

/** A reason as a label value: `NoBackend` → `no_backend` (the label convention, docs/metrics.md). */
export const snakeCase = (reason: string): string => reason.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()

/** The registry, its metrics and the HTTP endpoint; needs a `SqlClient` (RouteCache and HealthChecker when present). */
export const layer = (settings: MetricsSettings) =>
  Layer.scoped(
    Metrics,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const cache = yield* Effect.serviceOption(RouteCache)
      const table = yield* Effect.serviceOption(RouteTable)
      const memory = Option.isSome(table)
        ? { stats: () => table.value.table.stats(), size: () => table.value.table.size() }
        : Option.isSome(cache) ? cache.value : undefined
      const checker = yield* Effect.serviceOption(HealthChecker)
      const runtime = yield* Effect.runtime<never>()
      const registry = new client.Registry()
      client.collectDefaultMetrics({ register: registry })
      // prom-client exports these as gauges named `_total`, which Prometheus' lint refuses
      // (`promtool check metrics`); `nodejs_active_handles`/`_requests`/`_resources` carry the same counts by type
      for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name)
      const registers = [registry]
      new client.Gauge({
        name: "doveroute_build_info",
        help: "Always 1; the labels name the doveroute version and the Node.js version running it",
        labelNames: ["version", "node"] as const,
        registers
      }).set({ version: VERSION, node: process.versions.node }, 1)
      new client.Gauge({
        name: "doveroute_listener_connections",
        help: "Open client connections per listener (dict, auth, login-relay, userdb-relay, http)",
        labelNames: ["listener"] as const,
        registers,
        collect() {
          this.reset()
          for (const [listener, n] of ListenerCounts.snapshot()) this.set({ listener }, n)
        }
      })
      new client.Counter({
        name: "doveroute_config_reloads_total",
        help: "SIGHUP configuration reloads by result: ok (applied) or failed (running settings kept)",
        labelNames: ["result"] as const,
        registers,
        collect() {
          this.reset()
          for (const [result, n] of OpsEvents.reloadCounts()) this.inc({ result }, n)
        }
      })
      new client.Counter({
        name: "doveroute_health_transitions_total",
        help: "Backend state changes made by this daemon's health checker, by backend and from/to state name",
        labelNames: ["backend", "id", "from", "to"] as const,
        registers,
        collect() {
          this.reset()
          for (const t of OpsEvents.transitionCounts()) this.inc({ backend: t.backend, id: t.id, from: t.from, to: t.to }, t.count)
        }
      })
      const lookups = new client.Counter({
        name: "doveroute_lookups_total",
        help: "Routing lookups by front-end and result (ok, or the temp-fail reason)",
        labelNames: ["frontend", "result"] as const,
        registers
      })
      const latency = new client.Histogram({
        name: "doveroute_lookup_duration_seconds",
        help: "Lookup latency (cache hit or store query) by front-end",
        labelNames: ["frontend"] as const,
        buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers
      })
      const storeErrors = new client.Counter({
        name: "doveroute_store_errors_total",
        help: "Lookups answered temp_fail because of a store error, by reason",
        labelNames: ["reason"] as const,
        registers
      })
      new client.Counter({
        name: "doveroute_cache_hits_total",
        help: "Lookups answered from memory (the routing table, or the lookup cache with table.mode cache)",
        registers,
        collect() {
          this.reset()
          if (memory !== undefined) this.inc(memory.stats().hits)
        }
      })
      new client.Counter({
        name: "doveroute_cache_misses_total",
        help: "Lookups memory could not answer (first logins, held users, table not loaded): they went to the store",
        registers,
        collect() {
          this.reset()
          if (memory !== undefined) this.inc(memory.stats().misses)
        }
      })
      new client.Gauge({
        name: "doveroute_cache_entries",
        help: "Routes held in memory (routing table rows, or lookup cache entries)",
        registers,
        collect() {
          this.set(memory !== undefined ? memory.size() : 0)
        }
      })
      if (Option.isSome(table)) feedMetrics(registers, table.value)
      // from the loaded table; else a store query on scrape, reused for a few seconds, and the
      // last rows read while the store fails
      let cached: { at: number; rows: ReadonlyArray<Health.BackendUsers> } | undefined
      let inflight: Promise<ReadonlyArray<Health.BackendUsers>> | undefined
      const backendRows = async (): Promise<ReadonlyArray<Health.BackendUsers>> => {
        if (Option.isSome(table) && table.value.table.loaded()) return table.value.table.backends()
        if (cached !== undefined && Date.now() - cached.at < BACKEND_QUERY_TTL_MS) return cached.rows
        inflight ??= Runtime.runPromise(runtime)(
          Health.backendUsers.pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.timeout(BACKEND_QUERY_TIMEOUT))
        ).then((rows) => {
          cached = { at: Date.now(), rows }
          return rows
        }, () => {
          failures.inc()
          return cached?.rows ?? []
        }).finally(() => {
          inflight = undefined
        })
        return inflight
      }
      const perBackend = (name: string, help: string, value: (b: Health.BackendUsers) => number) =>
        new client.Gauge({
          name,
          help,
          labelNames: ["backend", "id"] as const,
          registers,
          async collect() {
            this.reset()
            for (const b of await backendRows()) this.set({ backend: b.hostname, id: String(b.id) }, value(b))
          }
        })
      const failures = new client.Counter({
        name: "doveroute_store_query_failures_total",
        help: "Failed store queries of metrics scrapes (users per backend); the last values read were reported",
        registers
      })
      perBackend("doveroute_backend_state", "Backend state in the store: 0 up, 1 down (admin), 2 drain, 3 down by the health checker", (b) => b.state)
      perBackend("doveroute_backend_users", "Rows in user_backend per backend (users; shards with the shard strategy)", (b) => b.users)
      new client.Gauge({
        name: "doveroute_backend_health_up",
        help: "Last health check of this daemon's checker: 1 passed, 0 failed (absent when the checker is off)",
        labelNames: ["backend", "id"] as const,
        registers,
        collect() {
          this.reset()
          if (Option.isNone(checker)) return
          for (const [id, h] of checker.value.status()) this.set({ backend: h.hostname, id: String(id) }, h.ok ? 1 : 0)
        }
      })
      new client.Counter({
        name: "doveroute_health_check_failures_total",
        help: "Failed health probes of this daemon's checker by backend and kind: network, timeout, tls, protocol, login",
        labelNames: ["backend", "id", "kind"] as const,
        registers,
        collect() {
          this.reset()
          if (Option.isNone(checker)) return
          for (const f of checker.value.failures()) this.inc({ backend: f.hostname, id: String(f.id), kind: f.kind }, f.count)
        }
      })

      const server = http.createServer((req, res) => {
        if (req.method !== "GET" || (req.url !== "/metrics" && req.url !== "/")) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /metrics\n")
          return
        }
        registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
          (e: unknown) => {
            res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${String(e)}\n`)
          }
        )
      })
      yield* Effect.acquireRelease(
        Effect.async<void, Error>((resume) => {
          server.once("error", (e) => resume(Effect.fail(new Error(`metrics listener ${settings.host}:${settings.port}: ${e.message}`))))
          server.listen(settings.port, settings.host, () => resume(Effect.void))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
      )
      yield* Effect.logInfo("metrics listening").pipe(Effect.annotateLogs("metrics", `${settings.host}:${settings.port}`))
      return { registry, lookups, latency, storeErrors }
    })
  )

/** {@link Lookup} counted into the metrics: needs the plain Lookup and {@link Metrics}. */
export const lookupLayer = Layer.effect(
  Lookup,
  Effect.gen(function*() {
    const base = yield* Lookup
    const m = yield* Metrics
    const count = (frontend: string, r: LookupResult, seconds: number): LookupResult => {
      m.latency.observe({ frontend }, seconds)
      m.lookups.inc({ frontend, result: resultLabel(r) })
      if (r._tag === "TempFail" && isStoreErrorReason(r.reason)) m.storeErrors.inc({ reason: snakeCase(r.reason) })
      return r
    }
    const cached = base.cached
    return {
      lookup: (user: string, frontend: string, tag?: string) => {
        const start = performance.now()
        return base.lookup(user, frontend, tag).then((r) => count(frontend, r, (performance.now() - start) / 1000))
      },
      ...(cached !== undefined
        ? {
          cached: (user: string, frontend: string, tag?: string) => {
            const start = performance.now()
            const r = cached(user, frontend, tag)
            return r === undefined ? undefined : count(frontend, r, (performance.now() - start) / 1000)
          }
        }
        : {})
    }
  })
)
