// The metrics endpoint as an operator's Prometheus and Grafana see it, on a real `doveroute serve`
// (SQLite store, dict and HTTP listeners, health checker against banner servers):
// - `/metrics` passes `promtool check metrics` with no lint message at all;
// - doveroute_build_info carries the version `doveroute --version` prints and this Node;
// - doveroute_listener_connections follows connects and closes per listener;
// - a backend that stops answering goes up -> health_down and back, each counted in
//   doveroute_health_transitions_total and logged naming backend, from, to and reason;
// - SIGHUP reloads are counted by result (ok, failed);
// - a store error is counted once, its reason label in snake case and equal to the lookup's result;
// - with metrics.allow_remote the endpoint listens on a non-loopback address and answers there;
// - installing the prometheus package for promtool started no Prometheus server;
// - contrib/prometheus: `promtool check rules` and `promtool test rules` pass, and every metric the
//   rules name is exported; contrib/grafana: the dashboard parses, every panel's PromQL is valid
//   (promtool) and names only metrics the daemon exports (a renamed metric fails here);
// - docs/metrics.md lists exactly the doveroute_* metrics the daemon exports.
import { freePort, makeTempDir, REPO_ROOT, runCli, runCommand, seedSqliteStore, sqlite, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { bannerServer, httpGet, metric, parseProm, waitUntil, type BannerServer, type Sample } from "./ops-support.js"
import { DictClient } from "./store-support.js"

const PROMETHEUS_DIR = path.join(REPO_ROOT, "contrib", "prometheus")
const DASHBOARD = path.join(REPO_ROOT, "contrib", "grafana", "doveroute.json")

/** Metric families of a scrape: sample names plus the names in `# TYPE` lines. */
const exportedNames = (text: string): Set<string> => {
  const names = new Set(parseProm(text).map((s) => s.name))
  for (const m of text.matchAll(/^# TYPE (\S+) /gm)) names.add(m[1]!)
  return names
}

/** Metric names a PromQL expression uses: identifiers directly followed by a selector or range, or with our prefixes. */
const metricNamesIn = (expr: string): Set<string> => {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, "\"\"")
  const out = new Set<string>()
  for (const m of withoutStrings.matchAll(/(?<![a-zA-Z0-9_:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{[])/g)) out.add(m[1]!)
  for (const m of withoutStrings.matchAll(/\b((?:doveroute|process|nodejs)_[a-zA-Z0-9_:]*)/g)) out.add(m[1]!)
  return out
}

/** The first non-loopback IPv4 address of this machine. */
const nonLoopbackIPv4 = (): string | undefined => {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address
  }
  return undefined
}

const promtool = async (args: ReadonlyArray<string>, input?: string) => {
  const r = await runCommand("promtool", args, { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) })
  return { ...r, out: `${r.stdout}${r.stderr}` }
}

/** What the daemon test scraped, for the contrib checks below (sequential tests of one file). */
let scraped: { readonly text: string; readonly names: Set<string> } | undefined

describe("metrics an operator's Prometheus scrapes", () => {
  it("passes promtool check metrics; build info, listener connections, health transitions and reloads follow the daemon; allow_remote serves a non-loopback address", async () => {
    expect((await runCommand("promtool", ["--version"]).catch(() => ({ code: -1 }))).code, "promtool missing: scripts/install-deps.sh installs the prometheus package").toBe(0)
    const remoteIp = nonLoopbackIPv4()
    expect(remoteIp, "this test needs a non-loopback IPv4 address to check metrics.allow_remote").toBeDefined()
    const tmp = makeTempDir()
    const db = tmp.join("store.db")
    let daemon: RunningDaemon | undefined
    let up: BannerServer | undefined
    let flaky: BannerServer | undefined
    const clients: Array<DictClient> = []
    const raws: Array<net.Socket> = []
    try {
      const port = await freePort()
      up = await bannerServer("127.0.0.2", port)
      flaky = await bannerServer("127.0.0.3", port)
      await seedSqliteStore(db, { backends: [{ hostname: "up.test", hostip: "127.0.0.2" }, { hostname: "flaky.test", hostip: "127.0.0.3" }] })
      const metricsPort = await freePort()
      const dictSock = tmp.join("dict.sock")
      const httpSock = tmp.join("http.sock")
      const config = tmp.join("doveroute.json")
      const settings = {
        store: `sqlite:${db}`,
        dict: { socket: dictSock },
        http: { listen: httpSock },
        metrics: { listen: `0.0.0.0:${metricsPort}`, allow_remote: true },
        health: { enabled: true, protocol: "imap", port, interval: "200 millis", timeout: "1 second", fall: 1, rise: 1 }
      }
      fs.writeFileSync(config, JSON.stringify(settings))
      daemon = await startDaemon({ args: ["--config", config], waitFor: [dictSock, httpSock], waitForTcp: [{ host: remoteIp!, port: metricsPort }] })
      const d = daemon
      // scraped over the non-loopback address: allow_remote took effect
      const scrape = async (): Promise<{ text: string; samples: Array<Sample> }> => {
        const r = await httpGet(`http://${remoteIp}:${metricsPort}/metrics`)
        expect(r.status).toBe(200)
        return { text: r.body, samples: parseProm(r.body) }
      }

      // build info: the CLI's version and this Node
      const version = (await runCli(["--version"])).stdout.trim().split(/\s+/).pop()
      const first = await scrape()
      expect(metric(first.samples, "doveroute_build_info", { version: version!, node: process.versions.node })).toBe(1)

      // listener connections: counted on connect, uncounted on close
      for (let i = 0; i < 2; i++) clients.push(await DictClient.connect(dictSock))
      expect((await clients[0]!.lookup("someone@example.com")).line).toMatch(/^O/)
      const raw = net.connect({ path: httpSock })
      raws.push(raw)
      await new Promise<void>((r, j) => raw.once("connect", () => r()).once("error", j))
      await waitUntil("2 dict and 1 http connections", async () => {
        const s = (await scrape()).samples
        return metric(s, "doveroute_listener_connections", { listener: "dict" }) === 2 &&
            metric(s, "doveroute_listener_connections", { listener: "http" }) === 1
          ? true
          : undefined
      })
      for (const c of clients.splice(0)) c.close()
      for (const s of raws.splice(0)) s.destroy()
      await waitUntil("connections closed", async () => {
        const s = (await scrape()).samples
        return metric(s, "doveroute_listener_connections", { listener: "dict" }) === 0 &&
            metric(s, "doveroute_listener_connections", { listener: "http" }) === 0
          ? true
          : undefined
      })

      // health: flaky.test stops answering (up -> health_down), then answers again (health_down -> up)
      await waitUntil("both backends healthy", async () => {
        const s = (await scrape()).samples
        return metric(s, "doveroute_backend_health_up", { backend: "flaky.test" }) === 1 &&
            metric(s, "doveroute_backend_health_up", { backend: "up.test" }) === 1
          ? true
          : undefined
      })
      await flaky.close()
      flaky = undefined
      await waitUntil("flaky.test up -> health_down counted", async () =>
        metric((await scrape()).samples, "doveroute_health_transitions_total", { backend: "flaky.test", id: "2", from: "up", to: "health_down" }) === 1
          ? true
          : undefined)
      flaky = await bannerServer("127.0.0.3", port)
      await waitUntil("flaky.test health_down -> up counted", async () =>
        metric((await scrape()).samples, "doveroute_health_transitions_total", { backend: "flaky.test", from: "health_down", to: "up" }) === 1
          ? true
          : undefined)
      const logs = d.logs()
      const lineOf = (re: RegExp) => logs.split("\n").find((l) => re.test(l)) ?? ""
      const down = lineOf(/backend marked down by the health checker \(up -> health_down\)/)
      expect(down).toMatch(/ backend=flaky\.test /)
      expect(down).toMatch(/ from=up /)
      expect(down).toMatch(/ to=health_down/)
      expect(down).toMatch(/ reason="1 failed checks in a row \(fall 1\): fail network: flaky\.test 127\.0\.0\.3:\d+ \w+: connect ECONNREFUSED/)
      expect(down).toMatch(/ failure=network /)
      const back = lineOf(/backend marked up by the health checker \(health_down -> up\)/)
      expect(back).toMatch(/ backend=flaky\.test /)
      expect(back).toMatch(/ from=health_down /)
      expect(back).toMatch(/ to=up/)
      expect(back).toMatch(/ reason="1 passed checks in a row \(rise 1\): ok \d+ms imap: \* OK fake IMAP ready"/)
      expect(logs).not.toMatch(/marked (down|up)[^\n]*backend=up\.test/)

      // reloads: one that applies, one refused (an unknown key), both counted by result
      process.kill(d.pid, "SIGHUP")
      await waitUntil("reload ok counted", async () =>
        metric((await scrape()).samples, "doveroute_config_reloads_total", { result: "ok" }) === 1 ? true : undefined)
      fs.writeFileSync(config, JSON.stringify({ ...settings, helth: {} }))
      process.kill(d.pid, "SIGHUP")
      const last = await waitUntil("reload failed counted", async () => {
        const s = await scrape()
        return metric(s.samples, "doveroute_config_reloads_total", { result: "failed" }) === 1 ? s : undefined
      })
      expect(metric(last.samples, "doveroute_config_reloads_total", { result: "ok" })).toBe(1)

      // a store error: the table of mappings is gone; a new user's lookup answers F, counted with a
      // snake-case reason, the same value in both metrics
      await sqlite(db, "ALTER TABLE user_backend RENAME TO user_backend_gone;")
      const c = await DictClient.connect(dictSock)
      clients.push(c)
      expect((await c.lookup("newcomer@example.com")).line).toMatch(/^F/)
      await sqlite(db, "ALTER TABLE user_backend_gone RENAME TO user_backend;")
      expect((await c.lookup("newcomer2@example.com")).line).toMatch(/^O/)
      const withError = (await scrape()).samples
      const errs = withError.filter((x) => x.name === "doveroute_store_errors_total" && x.value > 0)
      expect(errs).toHaveLength(1)
      expect(errs[0]!.value).toBe(1)
      expect(errs[0]!.labels["reason"]).toMatch(/^[a-z]+(_[a-z]+)*$/)
      expect(metric(withError, "doveroute_lookups_total", { frontend: "dict", result: errs[0]!.labels["reason"]! })).toBe(1)

      // promtool's own parser and linter on the real endpoint: nothing to report
      const check = await promtool(["check", "metrics"], last.text)
      expect(check.out).toBe("")
      expect(check.code).toBe(0)
      scraped = { text: last.text, names: exportedNames(last.text) }
      expect(await d.stop()).toBe(0)
      daemon = undefined
    } finally {
      for (const c of clients) c.close()
      for (const s of raws) s.destroy()
      await daemon?.stop()
      await up?.close()
      await flaky?.close()
      tmp.cleanup()
    }
  }, 120_000)

  it("installing the prometheus package (for promtool) started no Prometheus server", () => {
    expect(fs.existsSync("/usr/bin/promtool"), "promtool missing: scripts/install-deps.sh installs the prometheus package").toBe(true)
    const servers: Array<string> = []
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      let exe = ""
      try {
        exe = fs.readlinkSync(`/proc/${pid}/exe`)
      } catch {
        continue // gone, or not ours to read
      }
      if (exe === "/usr/bin/prometheus") servers.push(pid)
    }
    expect(servers, "a system Prometheus runs (install-deps must never start it)").toEqual([])
  })

  it("promtool check metrics would catch what prom-client exported before (a gauge named _total)", async () => {
    const r = await promtool(["check", "metrics"], "# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n")
    expect(r.out).toMatch(/non-counter metrics should not have "_total" suffix/)
  })
})

describe("contrib/prometheus and contrib/grafana against the daemon's real metrics", () => {
  const names = () => {
    expect(scraped, "the daemon test above must run first (it scrapes /metrics)").toBeDefined()
    return scraped!.names
  }

  it("the alert rules pass promtool check rules and promtool test rules, and name only exported metrics", async () => {
    const rules = fs.readdirSync(PROMETHEUS_DIR).filter((f) => f.endsWith(".yml")).map((f) => path.join(PROMETHEUS_DIR, f))
    expect(rules.length).toBeGreaterThan(0)
    const check = await promtool(["check", "rules", ...rules])
    expect(check.out).toMatch(/SUCCESS: \d+ rules found/)
    expect(check.code, check.out).toBe(0)
    const tests = fs.readdirSync(path.join(PROMETHEUS_DIR, "tests")).filter((f) => f.endsWith(".yml")).map((f) => path.join(PROMETHEUS_DIR, "tests", f))
    expect(tests.length).toBeGreaterThan(0)
    const unit = await promtool(["test", "rules", ...tests])
    expect(unit.code, unit.out).toBe(0)
    expect(unit.out).toMatch(/SUCCESS/)
    const exported = names()
    for (const file of rules) {
      const exprs = [...fs.readFileSync(file, "utf8").matchAll(/expr:\s*(\|\n(?:\s{10,}.*\n)+|.*)/g)].map((m) => m[1]!)
      expect(exprs.length).toBeGreaterThan(0)
      for (const e of exprs) {
        for (const n of metricNamesIn(e)) {
          if (n === "up") continue // Prometheus' own series per target
          expect(exported.has(n), `${path.basename(file)}: ${n} is not exported by the daemon (expr: ${e.trim()})`).toBe(true)
        }
      }
    }
  })

  it("the Grafana dashboard parses; every panel's PromQL is valid and names only exported metrics", async () => {
    const dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")) as {
      title: string
      uid: string
      panels: Array<{ id: number; title: string; targets?: Array<{ expr: string; refId: string }> }>
    }
    expect(dash.title).toBe("doveroute")
    expect(dash.panels.length).toBeGreaterThan(0)
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length)
    const exported = names()
    const used = new Set<string>()
    const recording: Array<{ record: string; expr: string }> = []
    for (const p of dash.panels) {
      expect(p.targets?.length ?? 0, `panel "${p.title}" has no query`).toBeGreaterThan(0)
      for (const t of p.targets!) {
        // Grafana's variables, as Grafana substitutes them
        const expr = t.expr.replaceAll("$__rate_interval", "5m").replaceAll("$job", "doveroute").replaceAll("$instance", ".*")
        expect(expr, `panel "${p.title}" uses an unknown variable`).not.toMatch(/\$/)
        const ns = metricNamesIn(expr)
        expect(ns.size, `panel "${p.title}" names no metric`).toBeGreaterThan(0)
        for (const n of ns) {
          if (n === "up") continue
          expect(exported.has(n), `panel "${p.title}": ${n} is not exported by the daemon`).toBe(true)
          used.add(n)
        }
        recording.push({ record: `dashboard:panel${p.id}:${t.refId.toLowerCase()}`, expr })
      }
    }
    // every doveroute metric family is on the dashboard
    const families = [...exported].filter((n) => n.startsWith("doveroute_") && !/_(bucket|sum|count)$/.test(n))
    for (const f of families) {
      expect([...used].some((u) => u === f || u.startsWith(`${f}_`)), `${f} is on no dashboard panel`).toBe(true)
    }
    // PromQL syntax: promtool parses each query as a recording rule (YAML accepts JSON)
    const tmp = makeTempDir()
    try {
      const file = tmp.join("dashboard-queries.yml")
      fs.writeFileSync(file, JSON.stringify({ groups: [{ name: "dashboard", rules: recording }] }))
      const r = await promtool(["check", "rules", file])
      expect(r.code, r.out).toBe(0)
      expect(r.out).toContain(`SUCCESS: ${recording.length} rules found`)
    } finally {
      tmp.cleanup()
    }
  })

  it("docs/metrics.md lists exactly the doveroute metrics the daemon exports", () => {
    const exported = [...names()].filter((n) => n.startsWith("doveroute_") && !/_(bucket|sum|count)$/.test(n)).sort()
    const doc = fs.readFileSync(path.join(REPO_ROOT, "docs/metrics.md"), "utf8")
    const documented = [...new Set([...doc.matchAll(/`(doveroute_[a-z0-9_]+)/g)].map((m) => m[1]!))]
      .filter((n) => !/_(bucket|sum|count)$/.test(n))
      .sort()
    expect(documented).toEqual(exported)
  })
})
