// The health checker in `doveroute serve` against a real Dovecot 2.3 backend with TLS (test CA and
// certificates made by openssl here), STARTTLS and a login probe with a real passdb user:
// - per-backend check ports (`backend add --check-port`, `backend check-port`) win over
//   health.port, which points at a closed port: a backend without one goes health_down, and comes
//   back up once the CLI gives it one;
// - a certificate from another CA and one for another name fail the check (`fail tls: …` in
//   last_health), the backends go health_down, the log names from -> to;
// - a wrong password (SIGHUP reload with another password file) takes the backend down with a
//   `fail login` detail; the right one (reload again) brings it back; neither password appears in
//   the daemon's logs or in last_health; the failure kinds are counted in the metrics.
import { describe, expect, it } from "vitest"
import {
  backendTls23,
  dovecot23Available,
  freePort,
  issueTestCert,
  makeTempDir,
  makeTestCa,
  runCli,
  startBackend23,
  type Backend,
  type RunningDaemon
} from "@doveroute/testkit"
import * as fs from "node:fs"
import { backends, httpGet, metric, parseProm, startHealthDaemon, waitUntil } from "./ops-support.js"

const PASSWORD = "Right-h3alth-pw"
const WRONG = "Wrong-h3alth-pw"

describe("health checker with TLS, check ports and a login probe (Dovecot 2.3)", () => {
  it("check ports, certificate failures, login failure and recovery, each a logged transition; no password anywhere", async () => {
    expect(dovecot23Available(), "Dovecot 2.3 (/usr/sbin/dovecot) is missing: run scripts/install-deps.sh").toBe(true)
    const tmp = makeTempDir()
    const db = tmp.join("store.db")
    let be: Backend | undefined
    let daemon: RunningDaemon | undefined
    try {
      const ca = await makeTestCa(tmp.path, "good")
      const other = await makeTestCa(tmp.path, "other")
      const cert = await issueTestCert(ca, tmp.path, { file: "backend", names: ["b1.test", "b2.test"] })
      const foreign = await issueTestCert(other, tmp.path, { file: "foreign", names: ["b3.test"] })
      be = await startBackend23(tmp.path, {
        users: { "probe@example.com": PASSWORD },
        extra: backendTls23({ certFile: cert.certFile, keyFile: cert.keyFile, byAddress: { "127.0.0.3": foreign } })
      })
      const imap = String(be.imapPort)
      const closed = await freePort("127.0.0.2", ["127.0.0.3"])
      const cli = async (...args: Array<string>) => {
        const r = await runCli([...args, "--store", `sqlite:${db}`])
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0)
        return r.stdout
      }
      // 1 b1: own port, good certificate; 2 b2: no own port (health.port is closed);
      // 3 b3: certificate from another CA; 4 wrong.test: certificate names b1/b2 only
      expect(await cli("backend", "add", "b1.test", "--hostip", "127.0.0.2", "--check-port", imap)).toMatch(/check port \d+/)
      await cli("backend", "add", "b2.test", "--hostip", "127.0.0.2")
      await cli("backend", "add", "b3.test", "--hostip", "127.0.0.3", "--check-port", imap)
      await cli("backend", "add", "wrong.test", "--hostip", "127.0.0.2", "--check-port", imap)
      const passwordFile = tmp.join("health-password")
      fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })
      const started = await startHealthDaemon(tmp, db, {
        enabled: true, protocol: "imap", port: closed, tls: "starttls", tls_ca_file: ca.certFile,
        login: { user: "probe@example.com", password_file: passwordFile },
        interval: "200 millis", timeout: "2 seconds", fall: 2, rise: 2
      })
      daemon = started.daemon
      const { metricsPort } = started
      const d = daemon
      const rows = async () => backends(db)
      const until = (what: string, pred: (r: Map<number, { state: number; lastHealth: string | undefined }>) => boolean) =>
        waitUntil(what, async () => (pred(await rows()) ? await rows() : undefined))

      let r = await until("b2, b3, wrong.test down; b1 up and logged in", (m) =>
        m.get(2)?.state === 3 && m.get(3)?.state === 3 && m.get(4)?.state === 3 && /^ok /.test(m.get(1)?.lastHealth ?? ""))
      expect(r.get(1)).toMatchObject({ state: 0 })
      expect(r.get(1)!.lastHealth).toMatch(/^ok \d+ms imap starttls login: \* OK .*backend ready\./)
      expect(r.get(2)!.lastHealth).toMatch(new RegExp(`^fail network: b2\\.test 127\\.0\\.0\\.2:${closed} imap starttls login: .*ECONNREFUSED`))
      expect(r.get(3)!.lastHealth).toMatch(/^fail tls: b3\.test 127\.0\.0\.3:\d+ imap starttls login: certificate not trusted/)
      expect(r.get(4)!.lastHealth).toMatch(/^fail tls: wrong\.test 127\.0\.0\.2:\d+ .*certificate does not match the backend's hostname/)
      expect(be.log()).toMatch(/imap-login: Info: Login: user=<probe@example\.com>.*TLS/)
      expect(d.logs()).toMatch(/backend marked down by the health checker \(up -> health_down\).*backend=b3\.test.*failure=tls/)

      // the CLI gives b2 its own port: it comes back up
      expect(await cli("backend", "check-port", "b2.test", imap)).toMatch(new RegExp(`check port none -> ${imap}`))
      r = await until("b2 up", (m) => m.get(2)?.state === 0)
      expect(d.logs()).toMatch(/backend marked up by the health checker \(health_down -> up\).*backend=b2\.test/)
      expect(await cli("backend", "list")).toMatch(new RegExp(`^2\\tb2\\.test\\t127\\.0\\.0\\.2\\tup\\t1\\t0\\t${imap}\\tok `, "m"))

      // a wrong password: b1 and b2 go down with a login failure
      fs.writeFileSync(passwordFile, `${WRONG}\n`)
      process.kill(d.pid, "SIGHUP")
      r = await until("b1 and b2 down by login", (m) => m.get(1)?.state === 3 && m.get(2)?.state === 3)
      expect(r.get(1)!.lastHealth).toMatch(/^fail login: b1\.test 127\.0\.0\.2:\d+ imap starttls login: login as probe@example\.com refused: b NO \[AUTHENTICATIONFAILED\]/)
      expect(d.logs()).toMatch(/backend marked down by the health checker \(up -> health_down\).*backend=b1\.test.*failure=login/)
      expect(be.log()).toMatch(/Password mismatch/)

      // the right one again: both up
      fs.writeFileSync(passwordFile, `${PASSWORD}\n`)
      process.kill(d.pid, "SIGHUP")
      r = await until("b1 and b2 up", (m) => m.get(1)?.state === 0 && m.get(2)?.state === 0)
      expect([...r.values()].map((b) => b.state)).toEqual([0, 0, 3, 3])

      const scrape = parseProm((await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body)
      expect(metric(scrape, "doveroute_health_check_failures_total", { backend: "b3.test", kind: "tls" })).toBeGreaterThan(0)
      expect(metric(scrape, "doveroute_health_check_failures_total", { backend: "b1.test", kind: "login" })).toBeGreaterThan(0)
      expect(metric(scrape, "doveroute_health_check_failures_total", { backend: "b2.test", kind: "network" })).toBeGreaterThan(0)
      expect(metric(scrape, "doveroute_health_transitions_total", { backend: "b1.test", from: "health_down", to: "up" })).toBe(1)

      // dump carries the check ports (a replay recreates them)
      expect(await cli("dump")).toMatch(new RegExp(`backend add '?b1\\.test'? --hostip '?127\\.0\\.0\\.2'? --state 0 --weight 1 --check-port ${imap} --or-update`))
      expect(await d.stop()).toBe(0)
      daemon = undefined
      // no password, plain or in the AUTH PLAIN encoding, in the daemon's output or the store
      const stored = [...(await rows()).values()].map((b) => b.lastHealth).join("\n")
      for (const secret of [PASSWORD, WRONG, Buffer.from(`\u0000probe@example.com\u0000${WRONG}`).toString("base64")]) {
        expect(d.logs()).not.toContain(secret)
        expect(stored).not.toContain(secret)
      }
    } finally {
      await daemon?.stop()
      await be?.stop()
      await tmp.cleanup()
    }
  }, 120_000)
})
