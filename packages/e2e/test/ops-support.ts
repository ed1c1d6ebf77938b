// Support for the operations tests (health checker, metrics, systemd supervision): banner servers,
// polling, a Prometheus text parser and SQLite reads.
import { freePort, runChecked, type RunningDaemon, sleep, sqlite, startDaemon, type TempDir } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"

/** A TCP server that greets every connection with `banner` (an IMAP/POP3/LMTP look-alike). */
export interface BannerServer {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export function bannerServer(host: string, port: number, banner = "* OK fake IMAP ready"): Promise<BannerServer> {
  const conns = new Set<net.Socket>()
  const server = net.createServer((s) => {
    conns.add(s)
    s.on("close", () => conns.delete(s))
    s.on("error", () => {})
    s.end(`${banner}\r\n`)
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () =>
      resolve({
        host,
        port,
        close: () =>
          new Promise((r) => {
            for (const c of conns) c.destroy()
            server.close(() => r())
          })
      })
    )
  })
}

/** Poll `fn` until it returns a value other than undefined; throws with `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last !== undefined ? ` (last error: ${String(last)})` : ""}`)
    await sleep(100)
  }
}

/** One backends row of a SQLite store. */
/**
 * `doveroute serve --config` on the SQLite store `db` with a dict socket, a metrics listener on
 * 127.0.0.1 and `health` as the config's `health` section; returns once both listen.
 */
export async function startHealthDaemon(
  tmp: TempDir,
  db: string,
  health: Readonly<Record<string, unknown>>
): Promise<{ readonly daemon: RunningDaemon; readonly sock: string; readonly metricsPort: number }> {
  const metricsPort = await freePort()
  const sock = tmp.join("dict.sock")
  const config = tmp.join("doveroute.json")
  fs.writeFileSync(config, JSON.stringify({
    store: `sqlite:${db}`,
    dict: { socket: sock },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    health
  }))
  const daemon = await startDaemon({ args: ["--config", config], waitFor: [sock], waitForTcp: [{ host: "127.0.0.1", port: metricsPort }] })
  return { daemon, sock, metricsPort }
}

export interface BackendRow {
  readonly id: number
  readonly hostname: string
  readonly state: number
  readonly lastHealth: string | undefined
}

/** Whether the store has the last_health columns (the migration of the operations issue). */
export async function hasHealthColumns(file: string): Promise<boolean> {
  const out = await sqlite(file, "SELECT name FROM pragma_table_info('backends');")
  return out.split("\n").includes("last_health")
}

/** Every backend of a SQLite store, by id. */
export async function backends(file: string): Promise<Map<number, BackendRow>> {
  const cols = await hasHealthColumns(file)
  const out = (await runChecked("sqlite3", ["-batch", "-separator", "\t", file,
    `SELECT id, hostname, state${cols ? ", COALESCE(last_health, '')" : ""} FROM backends ORDER BY id;`])).stdout
  const m = new Map<number, BackendRow>()
  for (const line of out.split("\n").filter((l) => l.length > 0)) {
    const [id, hostname, state, lastHealth] = line.split("\t")
    m.set(Number(id), { id: Number(id), hostname: hostname!, state: Number(state), lastHealth: cols ? lastHealth : undefined })
  }
  return m
}

/** GET `url`; resolves with status and body. */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d: string) => { body += d })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    }).on("error", reject)
  })
}

/** One Prometheus sample: name, labels, value. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parse the Prometheus text format (no escapes inside label values beyond `\"`). */
export function parseProm(text: string): Array<Sample> {
  const out: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (m === null) throw new Error(`bad metrics line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of the samples of `name` whose labels include `match`. */
export function metric(samples: ReadonlyArray<Sample>, name: string, match: Readonly<Record<string, string>> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0)
}
