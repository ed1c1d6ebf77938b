// A SIGHUP reload never makes doveroute answer `nopassword` beside `proxy_maybe`. Extra fields
// apply live on reload, proxy_flag needs a restart: a new file with `proxy_flag proxy` and
// `nopassword` passes the settings check on its own, but what would run is the RUNNING
// proxy_maybe with the new nopassword (a user whose backend is this Dovecot server logs in
// locally with any password). The reload is refused on a real `doveroute serve` with a real dict
// socket: the reply keeps no nopassword, an error line names the risk, the reload is counted as
// failed; a safe reload afterwards still applies, on the dict socket and the HTTP endpoint alike.
import { freePort, makeTempDir, seedSqliteStore, startDaemon, type RunningDaemon } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as http from "node:http"
import { describe, expect, it } from "vitest"
import { httpGet, metric, parseProm, waitUntil } from "./ops-support.js"
import { DictClient } from "./store-support.js"

/** GET /route over the HTTP endpoint's UNIX socket: the reply body. */
const httpRoute = (socketPath: string, user: string): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get({ socketPath, path: `/route?user=${user}&protocol=imap` }, (res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString()))
      res.on("end", () => resolve(body))
    }).on("error", reject)
  })

const fieldsOf = (line: string): Record<string, unknown> => {
  expect(line.startsWith("O"), line).toBe(true)
  return JSON.parse(line.slice(1)) as Record<string, unknown>
}

describe("SIGHUP reload checks the settings that will really run", () => {
  it("proxy_maybe running + a new file with proxy_flag proxy and nopassword: reload refused, no nopassword in the reply", async () => {
    const tmp = makeTempDir()
    let daemon: RunningDaemon | undefined
    const clients: Array<DictClient> = []
    try {
      const db = tmp.join("routes.db")
      await seedSqliteStore(db, { backends: [{ hostname: "127.0.0.1" }], mappings: { alice: 1 } })
      const sock = tmp.join("dict.sock")
      const metricsPort = await freePort()
      const config = tmp.join("doveroute.json")
      const httpSock = tmp.join("http.sock")
      const base = { store: `sqlite:${db}`, dict: { socket: sock }, http: { listen: httpSock }, metrics: { listen: `127.0.0.1:${metricsPort}` } }
      fs.writeFileSync(config, JSON.stringify(base))
      daemon = await startDaemon({ args: ["--config", config], waitFor: [sock, httpSock], waitForTcp: [{ host: "127.0.0.1", port: metricsPort }] })
      const d = daemon
      const reloads = async (result: string) =>
        metric(parseProm((await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body), "doveroute_config_reloads_total", { result })
      const lookup = async () => {
        const c = await DictClient.connect(sock)
        clients.push(c)
        return fieldsOf((await c.lookup("alice")).line)
      }
      const before = await lookup()
      expect(before["proxy_maybe"]).toBe("y")
      expect(before).not.toHaveProperty("nopassword")

      // the attack: the file alone is safe (proxy + nopassword), the running flag is proxy_maybe
      fs.writeFileSync(config, JSON.stringify({ ...base, proxy_flag: "proxy", extra_fields: ["nopassword"] }))
      process.kill(d.pid, "SIGHUP")
      await waitUntil("reload failed counted", async () => ((await reloads("failed")) === 1 ? true : undefined))
      expect(await reloads("ok")).toBe(0)
      const after = await lookup()
      expect(after).not.toHaveProperty("nopassword")
      expect(after["proxy_maybe"]).toBe("y")
      expect(after).not.toHaveProperty("proxy")
      const refused = d.logs().split("\n").filter((l) => l.includes("reload refused"))
      expect(refused).toHaveLength(1)
      expect(refused[0]).toMatch(/running proxy_flag proxy_maybe \(proxy_flag needs a restart\): extra_fields nopassword with proxy_flag proxy_maybe admits logins no one checks/)
      expect(d.logs()).not.toMatch(/configuration reloaded/)

      // a safe reload still applies live (the mechanism above was really exercised)
      fs.writeFileSync(config, JSON.stringify({ ...base, extra_fields: ["port=10143"] }))
      process.kill(d.pid, "SIGHUP")
      await waitUntil("reload ok counted", async () => ((await reloads("ok")) === 1 ? true : undefined))
      const safe = await lookup()
      expect(safe["port"]).toBe("10143")
      // the HTTP endpoint answers from the same live list
      expect((await httpRoute(httpSock, "alice")).split("\t")).toContain("port=10143")
      expect(safe).not.toHaveProperty("nopassword")
      expect(await d.stop()).toBe(0)
      daemon = undefined
    } finally {
      for (const c of clients) c.close()
      await daemon?.stop()
      await tmp.cleanup()
    }
  })
})
