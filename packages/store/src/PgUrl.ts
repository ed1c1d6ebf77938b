/**
 * The hosts of a `postgres://` store URL. A URL may name several servers, as libpq accepts them
 * (a primary and its standbys):
 *
 * - in the authority, comma-separated, each with its own port:
 *   `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`; a host may be a
 *   percent-encoded socket directory (`%2Fvar%2Frun%2Fpostgresql:5432`) or `[v6]:port`;
 * - or in the `host` parameter, comma-separated (socket directories or names), with `port` holding
 *   one port for all or one per host: `postgres://user@/db?host=/run/pg1,/run/pg2&port=5432,5433`.
 *
 * Each host becomes a one-host URL of its own (the same user, password, database and parameters),
 * which `pg` reads exactly as it reads a one-host store URL. doveroute always writes, so with
 * several hosts `target_session_attrs` may only be `read-write` (the default) or `primary`; the
 * connection keeps the one host that is neither in recovery nor read-only (PgFailover.ts). A URL
 * naming one host is left as it is.
 *
 * @since 0.1.0
 */

/** One server of a multi-host URL: `label` (`host:port`, never a password) and its one-host URL. */
export interface PgHostUrl {
  readonly label: string
  readonly url: string
}

/** `target_session_attrs` values a multi-host store URL accepts (doveroute writes to its store). */
export const PG_SESSION_ATTRS = ["read-write", "primary"] as const

const PORT = /^[0-9]{1,5}$/

const checkPort = (port: string, where: string) => {
  if (port !== "" && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    throw new Error(`PostgreSQL store URL: ${where}: port ${JSON.stringify(port)} is not a port number`)
  }
}

/** `host[:port]`, `[v6][:port]` or a percent-encoded socket directory `%2F…[:port]`, split. */
const splitEntry = (entry: string, n: number): { readonly host: string; readonly port: string } => {
  const v6 = /^(\[[^\]]*\])(?::(.*))?$/.exec(entry)
  const [host, port] = v6 !== null
    ? [v6[1]!, v6[2] ?? ""]
    : entry.includes(":")
    ? [entry.slice(0, entry.lastIndexOf(":")), entry.slice(entry.lastIndexOf(":") + 1)]
    : [entry, ""]
  if (host === "") throw new Error(`PostgreSQL store URL: host ${n} of the list is empty`)
  checkPort(port, `host ${n}`)
  return { host, port }
}

const labelOf = (host: string, port: string): string => {
  let h = host
  try {
    h = decodeURIComponent(host)
  } catch {
    // left as written
  }
  return `${h}:${port === "" ? "5432" : port}`
}

/**
 * The servers a PostgreSQL store URL names, in the URL's order: one entry (the URL unchanged) for a
 * one-host URL, one per host otherwise. Throws an `Error` (naming the host by its position, never
 * the password) for an empty host, a bad port, a `port` list that does not match the `host` list,
 * or a `target_session_attrs` other than `read-write`/`primary` with several hosts.
 */
export const pgHostUrls = (raw: string): ReadonlyArray<PgHostUrl> => {
  const s = raw.trim()
  const m = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/is.exec(s)
  if (m === null) return [{ label: "", url: s }]
  const scheme = m[1]!
  const authority = m[2]!
  const rest = m[3]!
  const at = authority.lastIndexOf("@")
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : ""
  const hostList = authority.slice(at + 1)
  const qIndex = rest.indexOf("?")
  const hashIndex = rest.indexOf("#")
  const pathPart = qIndex >= 0 ? rest.slice(0, qIndex) : hashIndex >= 0 ? rest.slice(0, hashIndex) : rest
  const query = qIndex >= 0 ? rest.slice(qIndex + 1, hashIndex > qIndex ? hashIndex : undefined) : ""
  const params = new URLSearchParams(query)
  const hostParam = params.get("host")
  const portParam = params.get("port")

  let urls: Array<PgHostUrl>
  if (hostList.includes(",")) {
    if (hostParam !== null && hostParam.includes(",")) {
      throw new Error("PostgreSQL store URL: hosts listed both in the URL and in its host parameter; keep one list")
    }
    urls = hostList.split(",").map((entry, i) => {
      const { host, port } = splitEntry(entry, i + 1)
      return { label: labelOf(host, portParam ?? port), url: `${scheme}${userinfo}${host}${port === "" ? "" : `:${port}`}${rest}` }
    })
  } else if (hostParam !== null && hostParam.includes(",")) {
    const hosts = hostParam.split(",")
    const ports = portParam === null ? [""] : portParam.split(",")
    if (ports.length !== 1 && ports.length !== hosts.length) {
      throw new Error(`PostgreSQL store URL: the port parameter lists ${ports.length} ports for ${hosts.length} hosts (give one, or one per host)`)
    }
    urls = hosts.map((host, i) => {
      if (host === "") throw new Error(`PostgreSQL store URL: host ${i + 1} of the host parameter is empty`)
      const port = ports.length === 1 ? ports[0]! : ports[i]!
      checkPort(port, `host ${i + 1}`)
      const p = new URLSearchParams(params)
      p.set("host", host)
      if (port === "") p.delete("port")
      else p.set("port", port)
      const fragment = hashIndex >= 0 ? rest.slice(hashIndex) : ""
      return { label: labelOf(host, port), url: `${scheme}${authority}${pathPart}?${p.toString()}${fragment}` }
    })
  } else {
    return [{ label: "", url: s }]
  }
  const attrs = params.get("target_session_attrs")
  if (attrs !== null && !(PG_SESSION_ATTRS as ReadonlyArray<string>).includes(attrs)) {
    throw new Error(
      `PostgreSQL store URL: target_session_attrs=${attrs} with several hosts; doveroute writes to its store, so use read-write (the default) or primary`
    )
  }
  for (const [i, u] of urls.entries()) {
    try {
      new URL(u.url)
    } catch {
      throw new Error(`PostgreSQL store URL: host ${i + 1} of the list (${u.label}) does not make a valid URL`)
    }
  }
  return urls
}
