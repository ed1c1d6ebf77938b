/**
 * Test certificates made with openssl: a throw-away CA and server certificates it signs (EC P-256,
 * subjectAltName with DNS names and IP addresses), including expired ones (`days: -1`).
 */
import { writeFileSync } from "node:fs"
import * as path from "node:path"
import { runChecked } from "./Exec.js"

/** A CA: its certificate (PEM file, give it to a client as the trusted CA) and key. */
export interface TestCa {
  readonly certFile: string
  readonly keyFile: string
}

/** A server certificate and its key (PEM files). */
export interface TestCert {
  readonly certFile: string
  readonly keyFile: string
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

/** A self-signed CA in `dir/<name>-ca.{crt,key}`. */
export async function makeTestCa(dir: string, name = "test"): Promise<TestCa> {
  const certFile = path.join(dir, `${name}-ca.crt`)
  const keyFile = path.join(dir, `${name}-ca.key`)
  await runChecked("openssl", [
    "req", "-x509", ...EC_KEY, "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", `/CN=doveroute ${name} CA`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"
  ])
  return { certFile, keyFile }
}

/**
 * A server certificate for `names` (the first is the CN; entries that are IP addresses go in as
 * `IP:`), signed by `ca`, valid for `days` (negative: already expired), in `dir/<file>.{crt,key}`.
 */
export async function issueTestCert(ca: TestCa, dir: string, o: { readonly file: string; readonly names: ReadonlyArray<string>; readonly days?: number }): Promise<TestCert> {
  const certFile = path.join(dir, `${o.file}.crt`)
  const keyFile = path.join(dir, `${o.file}.key`)
  const csr = path.join(dir, `${o.file}.csr`)
  const ext = path.join(dir, `${o.file}.ext`)
  const san = o.names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",")
  writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`)
  await runChecked("openssl", ["req", ...EC_KEY, "-keyout", keyFile, "-out", csr, "-subj", `/CN=${o.names[0] ?? "localhost"}`])
  await runChecked("openssl", [
    "x509", "-req", "-in", csr, "-CA", ca.certFile, "-CAkey", ca.keyFile, "-CAcreateserial",
    "-out", certFile, "-days", String(o.days ?? 2), "-extfile", ext
  ])
  return { certFile, keyFile }
}
