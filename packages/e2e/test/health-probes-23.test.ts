// The health probes (HealthProbe.probe) against one real Dovecot 2.3 backend with IMAP, POP3,
// LMTP and submission listeners, plain, STARTTLS and implicit TLS, with a test CA and
// certificates made by openssl for this run:
// - every protocol passes its greeting (+ EHLO/LHLO, QUIT) in every TLS mode it offers;
// - a certificate from another CA, an expired one and one for another name fail as `tls`, and pass
//   with tls_verify off; without the test CA the system CAs do not trust it;
// - the login probe passes with the real passdb user and fails as `login` with a wrong password,
//   which appears nowhere in the result.
import { describe, expect, it } from "vitest"
import { HealthProbe } from "@doveroute/daemon"
import {
  backendTls23,
  dovecot23Available,
  freePorts,
  issueTestCert,
  makeTempDir,
  makeTestCa,
  startBackend23,
  waitForTcp,
  type Backend
} from "@doveroute/testkit"
import * as fs from "node:fs"
import { afterAll, beforeAll } from "vitest"

const IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
const PASSWORD = "Pr0be-pässword"

describe("health probes against a real Dovecot 2.3", () => {
  const tmp = makeTempDir()
  let be: Backend
  let ca: string
  let ports: { imaps: number; pop3s: number; submission: number; submissions: number }

  beforeAll(async () => {
    expect(dovecot23Available(), "Dovecot 2.3 (/usr/sbin/dovecot) is missing: run scripts/install-deps.sh").toBe(true)
    const good = await makeTestCa(tmp.path, "good")
    const other = await makeTestCa(tmp.path, "other")
    ca = fs.readFileSync(good.certFile, "utf8")
    // 127.0.0.2: b1.test from the good CA; 127.0.0.3: signed by another CA; 127.0.0.4: expired
    const cert = await issueTestCert(good, tmp.path, { file: "b1", names: ["b1.test"] })
    const wrongCa = await issueTestCert(other, tmp.path, { file: "b2", names: ["b2.test"] })
    const expired = await issueTestCert(good, tmp.path, { file: "b3", names: ["b3.test"], days: -1 })
    const [imaps, pop3s, submission, submissions] = await freePorts(4, IPS[0], IPS.slice(1))
    ports = { imaps: imaps!, pop3s: pop3s!, submission: submission!, submissions: submissions! }
    be = await startBackend23(tmp.path, {
      listen: IPS,
      users: { "probe@example.com": PASSWORD, alice: "secret" },
      extra: backendTls23({
        certFile: cert.certFile,
        keyFile: cert.keyFile,
        byAddress: { [IPS[1]!]: wrongCa, [IPS[2]!]: expired },
        imapsPort: ports.imaps,
        pop3sPort: ports.pop3s,
        submissionPort: ports.submission,
        submissionsPort: ports.submissions
      })
    })
    for (const p of Object.values(ports)) await waitForTcp(IPS[0]!, p)
  }, 60_000)

  afterAll(async () => {
    await be?.stop()
    await tmp.cleanup()
  })

  const run = (
    o: Partial<HealthProbe.ProbeOptions> & Pick<HealthProbe.ProbeOptions, "protocol">,
    port: number,
    target: { readonly address?: string | undefined; readonly hostname?: string } = {}
  ) =>
    HealthProbe.probe(
      { address: target.address ?? IPS[0]!, hostname: target.hostname ?? "b1.test", port },
      { tls: "none", tlsVerify: true, tlsCa: ca, timeoutMs: 5000, login: undefined, ...o }
    )

  it("passes every protocol in every TLS mode the backend offers", async () => {
    const cases: Array<[HealthProbe.ProbeOptions["protocol"], HealthProbe.ProbeOptions["tls"], number, RegExp]> = [
      ["imap", "none", be.imapPort, /^ok \d+ms imap: \* OK .*backend ready\.$/],
      ["imap", "starttls", be.imapPort, /^ok \d+ms imap starttls: \* OK /],
      ["imap", "implicit", ports.imaps, /^ok \d+ms imap tls: \* OK /],
      ["pop3", "none", be.pop3Port, /^ok \d+ms pop3: \+OK /],
      ["pop3", "starttls", be.pop3Port, /^ok \d+ms pop3 starttls: \+OK /],
      ["pop3", "implicit", ports.pop3s, /^ok \d+ms pop3 tls: \+OK /],
      ["lmtp", "none", be.lmtpPort, /^ok \d+ms lmtp: 220 /],
      ["lmtp", "starttls", be.lmtpPort, /^ok \d+ms lmtp starttls: 220 /],
      ["submission", "none", ports.submission, /^ok \d+ms submission: 220 /],
      ["submission", "starttls", ports.submission, /^ok \d+ms submission starttls: 220 /],
      ["submission", "implicit", ports.submissions, /^ok \d+ms submission tls: 220 /]
    ]
    for (const [protocol, tls, port, want] of cases) {
      const r = await run({ protocol, tls }, port)
      expect(r, `${protocol} ${tls}`).toMatchObject({ ok: true })
      expect(r.detail, `${protocol} ${tls}`).toMatch(want)
    }
    // the wrong protocol on a port is a protocol failure, not a pass
    const wrong = await run({ protocol: "pop3" }, be.imapPort)
    expect(wrong).toMatchObject({ ok: false, failure: "protocol" })
    expect(wrong.detail).toMatch(/^fail protocol: b1\.test 127\.0\.0\.2:\d+ pop3: unexpected POP3 greeting: \* OK/)
    // LMTP greets, then the probe says LHLO and QUIT: Dovecot logs the session
    expect(be.log()).toMatch(/lmtp\(\d+\): Info: Connect from 127\.0\.0\.1/)
  })

  it("fails a certificate from another CA, an expired one and one for another name; passes them with tls_verify off", async () => {
    const otherCa = await run({ protocol: "imap", tls: "implicit" }, ports.imaps, { address: IPS[1], hostname: "b2.test" })
    expect(otherCa).toMatchObject({ ok: false, failure: "tls" })
    expect(otherCa.detail).toMatch(/^fail tls: b2\.test 127\.0\.0\.3:\d+ imap tls: certificate not trusted/)
    const expired = await run({ protocol: "pop3", tls: "starttls" }, be.pop3Port, { address: IPS[2], hostname: "b3.test" })
    expect(expired).toMatchObject({ ok: false, failure: "tls" })
    expect(expired.detail).toMatch(/certificate has expired \(CERT_HAS_EXPIRED/)
    const wrongName = await run({ protocol: "submission", tls: "starttls" }, ports.submission, { hostname: "elsewhere.test" })
    expect(wrongName).toMatchObject({ ok: false, failure: "tls" })
    expect(wrongName.detail).toMatch(/certificate does not match the backend's hostname \(ERR_TLS_CERT_ALTNAME_INVALID: .*elsewhere\.test/)
    // the system CAs do not know the test CA
    const systemCas = await run({ protocol: "imap", tls: "starttls", tlsCa: undefined }, be.imapPort)
    expect(systemCas).toMatchObject({ ok: false, failure: "tls" })
    for (const [port, target] of [[ports.imaps, { address: IPS[1], hostname: "b2.test" }], [ports.imaps, { hostname: "elsewhere.test" }]] as const) {
      expect(await run({ protocol: "imap", tls: "implicit", tlsVerify: false }, port, target)).toMatchObject({ ok: true })
    }
  })

  it("logs in with the passdb user (IMAP, POP3, submission) and reports a refused login without the password", async () => {
    const good = { user: "probe@example.com", password: PASSWORD }
    const bad = { user: "probe@example.com", password: "not-the-Pr0be-password" }
    for (const [protocol, tls, port] of [
      ["imap", "starttls", be.imapPort],
      ["pop3", "implicit", ports.pop3s],
      ["submission", "starttls", ports.submission]
    ] as const) {
      const ok = await run({ protocol, tls, login: good }, port)
      expect(ok, `${protocol} login`).toMatchObject({ ok: true })
      expect(ok.detail).toMatch(new RegExp(`^ok \\d+ms ${protocol} \\w+ login: `))
      const refused = await run({ protocol, tls, login: bad }, port)
      expect(refused, `${protocol} wrong password`).toMatchObject({ ok: false, failure: "login" })
      expect(refused.detail).toMatch(/login as probe@example\.com refused: /)
      expect(refused.detail).not.toContain(bad.password)
      expect(JSON.stringify(refused)).not.toContain("not-the")
    }
    // Dovecot saw the real logins and the refusals
    expect(be.log()).toMatch(/imap-login: Info: Login: user=<probe@example\.com>/)
    expect(be.log()).toMatch(/submission-login: Info: Login: user=<probe@example\.com>/)
    expect(be.log()).toMatch(/pop3-login: Info: Login: user=<probe@example\.com>/)
    expect(be.log()).toMatch(/auth failed|Password mismatch/)
  })

  it("fails a closed port as network and a silent one as timeout", async () => {
    const [closed] = await freePorts(1, IPS[0])
    const refused = await run({ protocol: "imap" }, closed!)
    expect(refused).toMatchObject({ ok: false, failure: "network" })
    expect(refused.detail).toMatch(/ECONNREFUSED/)
    const net = await import("node:net")
    const silent = net.createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r))
    try {
      const port = (silent.address() as { port: number }).port
      const t0 = Date.now()
      const r = await run({ protocol: "lmtp", timeoutMs: 300 }, port, { address: "127.0.0.1" })
      expect(r).toMatchObject({ ok: false, failure: "timeout" })
      expect(r.detail).toMatch(/no answer within 300ms \(greeting\)/)
      expect(Date.now() - t0).toBeLessThan(3000)
    } finally {
      silent.close()
    }
  })
})
