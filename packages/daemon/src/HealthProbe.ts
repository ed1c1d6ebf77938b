/**
 * One health probe of one backend: connect (plain or implicit TLS), run the protocol's dialog
 * (HealthDialogs.ts: greeting, STARTTLS, optional login, QUIT/LOGOUT) under one deadline, and
 * return a {@link ProbeResult} whose `detail` goes to `backends.last_health` and the log lines.
 *
 * Certificates are verified (unless `tls_verify` is false) against `tls_ca_file` or the system
 * CAs and against the backend's `hostname`, which is also sent as SNI; the TCP connection goes to
 * `hostip` when set. A failing handshake or certificate is a failed probe of kind `tls`.
 *
 * The login password is written to the socket only; it never appears in a result: the detail is
 * built from the server's replies and scrubbed of the password all the same.
 *
 * Plain promises and sockets (no Effect): the checker runs one probe per backend per round.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as os from "node:os"
import * as tls from "node:tls"
import { DIALOGS, type DialogOptions } from "./HealthDialogs.js"
import { type FailureKind, ProbeFailure, shown, Wire } from "./HealthWire.js"
import { type HealthProtocol, type HealthTls, unfitPassword } from "./HealthSettings.js"

export type { FailureKind } from "./HealthWire.js"
export { FAILURE_KINDS } from "./HealthWire.js"

/** One check's outcome. */
export interface ProbeResult {
  readonly ok: boolean
  /** Set when `ok` is false. */
  readonly failure?: FailureKind
  /** Short text for `last_health`: `ok 3ms imap starttls: * OK …` or `fail tls: …`. */
  readonly detail: string
}

/** Where to connect and which name the certificate must carry. */
export interface ProbeTarget {
  /** Address to connect to (`hostip`, else `hostname`). */
  readonly address: string
  /** The backend's `hostname`: SNI and the name checked in the certificate. */
  readonly hostname: string
  readonly port: number
}

export interface ProbeOptions {
  readonly protocol: HealthProtocol
  readonly tls: HealthTls
  readonly tlsVerify: boolean
  /** PEM of the trusted CAs; undefined = the system's. */
  readonly tlsCa: string | undefined
  readonly timeoutMs: number
  readonly login: { readonly user: string; readonly password: string } | undefined
}

/** The TLS options for a target: verification, CAs, SNI (only a name, never an address). */
export const tlsOptions = (target: ProbeTarget, o: Pick<ProbeOptions, "tlsVerify" | "tlsCa">): tls.ConnectionOptions => ({
  host: target.address,
  port: target.port,
  rejectUnauthorized: o.tlsVerify,
  ...(o.tlsCa !== undefined ? { ca: o.tlsCa } : {}),
  ...(net.isIP(target.hostname) === 0 ? { servername: target.hostname } : {}),
  checkServerIdentity: (_host, cert) => tls.checkServerIdentity(target.hostname, cert)
})

/** EHLO/LHLO name: this host's name when it looks like a domain, else an address literal. */
const heloName = (): string => {
  const h = os.hostname()
  return /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(h) ? h : "[127.0.0.1]"
}

/** The mode words in a result: `imap`, `imap starttls`, `imap tls`, plus `login` with a login probe. */
const modeLabel = (o: ProbeOptions): string =>
  [o.protocol, ...(o.tls === "implicit" ? ["tls"] : o.tls === "starttls" ? ["starttls"] : []), ...(o.login !== undefined ? ["login"] : [])].join(" ")

/** Run one probe; never rejects. */
export const probe = async (target: ProbeTarget, o: ProbeOptions): Promise<ProbeResult> => {
  const started = Date.now()
  const where = `${target.address}:${target.port}`
  const wire = new Wire()
  const timer = setTimeout(() => wire.abort(new ProbeFailure("timeout", `no answer within ${o.timeoutMs}ms (${wire.phase})`)), o.timeoutMs)
  const scrub = (text: string): string =>
    o.login === undefined || o.login.password.length === 0 ? text : text.split(o.login.password).join("xxx")
  try {
    // settings refuse such a password already; a probe built otherwise never sends it
    const unfit = o.login === undefined ? undefined : unfitPassword(o.login.password)
    if (unfit !== undefined) throw new ProbeFailure("login", `not sent: the health.login.password ${unfit}`)
    const tlsOpts = tlsOptions(target, o)
    if (o.tls === "implicit") await wire.tls(tlsOpts)
    else await wire.connect(target.address, target.port)
    const dialog: DialogOptions = {
      startTls: o.tls === "starttls" ? () => wire.tls(tlsOpts, true) : undefined,
      login: o.login,
      heloName: heloName()
    }
    const greeting = await DIALOGS[o.protocol](wire, dialog)
    return { ok: true, detail: scrub(`ok ${Date.now() - started}ms ${modeLabel(o)}: ${shown(greeting)}`) }
  } catch (e) {
    const f = e instanceof ProbeFailure ? e : new ProbeFailure("network", e instanceof Error ? e.message : String(e))
    return { ok: false, failure: f.kind, detail: scrub(`fail ${f.kind}: ${target.hostname} ${where} ${modeLabel(o)}: ${f.message}`) }
  } finally {
    clearTimeout(timer)
    wire.destroy()
  }
}
