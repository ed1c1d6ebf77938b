/**
 * The parameters of a `mysql://` (`mariadb://`) store URL, kept as PostgreSQL URLs keep theirs:
 *
 * - `socket=/run/mysqld/mysqld.sock` (also `socketPath`): connect through this UNIX socket; the
 *   URL's host and port are then not used.
 * - `ssl=true`: TLS, the server certificate verified against the system CAs (or `ssl_ca`);
 *   `ssl=false` (the default): no TLS; `ssl=skip-verify`: TLS without checking the certificate (an
 *   explicit choice for a self-signed test server: it does not protect against a man in the middle).
 * - `ssl_ca`, `ssl_cert`, `ssl_key`: PEM files (CA bundle; client certificate and its key); each
 *   turns TLS on unless `ssl=false`, which with them is refused.
 *
 * Any other parameter is refused (mysql2 would ignore it silently), as is a relative path.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"

/** Parameters a MySQL store URL accepts. */
export const MYSQL_URL_PARAMS = ["socket", "socketPath", "ssl", "ssl_ca", "ssl_cert", "ssl_key"] as const

/** What the parameters say, checked (no file read yet). */
export interface MysqlUrlParams {
  readonly socketPath?: string
  readonly ssl?: { readonly verify: boolean; readonly ca?: string; readonly cert?: string; readonly key?: string }
}

const SSL_VALUES = ["true", "false", "skip-verify"] as const

/** Check the query parameters of a MySQL URL; throws an `Error` naming the parameter (values of paths only, never a password). */
export const parseMysqlParams = (search: URLSearchParams): MysqlUrlParams => {
  const seen = new Set<string>()
  for (const key of search.keys()) {
    if (!(MYSQL_URL_PARAMS as ReadonlyArray<string>).includes(key)) {
      throw new Error(`MySQL store URL: unknown parameter ${JSON.stringify(key)}; accepted: ${MYSQL_URL_PARAMS.join(", ")}`)
    }
    if (seen.has(key)) throw new Error(`MySQL store URL: parameter ${JSON.stringify(key)} given twice`)
    seen.add(key)
  }
  if (seen.has("socket") && seen.has("socketPath")) throw new Error("MySQL store URL: give socket or socketPath, not both")
  const path = (key: string): string | undefined => {
    const v = search.get(key)
    if (v === null) return undefined
    if (!v.startsWith("/")) throw new Error(`MySQL store URL: ${key} must be an absolute path, got ${JSON.stringify(v)}`)
    return v
  }
  const socketPath = path("socket") ?? path("socketPath")
  const ssl = search.get("ssl")
  if (ssl !== null && !(SSL_VALUES as ReadonlyArray<string>).includes(ssl)) {
    throw new Error(`MySQL store URL: ssl must be one of ${SSL_VALUES.join(", ")}, got ${JSON.stringify(ssl)}`)
  }
  const files = { ca: path("ssl_ca"), cert: path("ssl_cert"), key: path("ssl_key") }
  const anyFile = files.ca !== undefined || files.cert !== undefined || files.key !== undefined
  if (ssl === "false" && anyFile) throw new Error("MySQL store URL: ssl=false with ssl_ca/ssl_cert/ssl_key; drop one of them")
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error("MySQL store URL: ssl_cert and ssl_key go together")
  const tls = ssl === "true" || ssl === "skip-verify" || (ssl === null && anyFile)
  return {
    ...(socketPath !== undefined ? { socketPath } : {}),
    ...(tls
      ? {
        ssl: {
          verify: ssl !== "skip-verify",
          ...(files.ca !== undefined ? { ca: files.ca } : {}),
          ...(files.cert !== undefined ? { cert: files.cert } : {}),
          ...(files.key !== undefined ? { key: files.key } : {})
        }
      }
      : {})
  }
}

/** mysql2 pool options for the parameters: `socketPath`, and `ssl` with the PEM files read. Throws when a file cannot be read. */
export const mysqlPoolOptions = (p: MysqlUrlParams): { socketPath?: string; ssl?: Record<string, string | boolean> } => {
  const read = (what: string, file: string) => {
    try {
      return fs.readFileSync(file, "utf8")
    } catch (e) {
      throw new Error(`MySQL store URL: cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
  }
  return {
    ...(p.socketPath !== undefined ? { socketPath: p.socketPath } : {}),
    ...(p.ssl !== undefined
      ? {
        ssl: {
          rejectUnauthorized: p.ssl.verify,
          ...(p.ssl.ca !== undefined ? { ca: read("ssl_ca", p.ssl.ca) } : {}),
          ...(p.ssl.cert !== undefined ? { cert: read("ssl_cert", p.ssl.cert) } : {}),
          ...(p.ssl.key !== undefined ? { key: read("ssl_key", p.ssl.key) } : {})
        }
      }
      : {})
  }
}
