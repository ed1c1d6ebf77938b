/**
 * Where the HTTP route endpoint (HttpRoute.ts) listens: the listen address parsed and checked
 * (loopback TCP or a UNIX socket path) and the refusals shared by the settings and the layer. Its
 * own module, without the HTTP server, so that loading the settings (every admin command) does not
 * load it.
 *
 * @since 0.1.0
 */
import { ReasonError } from "@doveroute/routing"
import * as net from "node:net"

/** Where the endpoint listens. */
export type HttpListen =
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Unix"; readonly path: string }

/** A listen address that cannot be used (`reason` says why). */
export class HttpListenError extends ReasonError("HttpListenError")<"Malformed" | "NotLoopback">() {}

/** Why a TCP listener without a token is refused (settings and the layer use the same words). */
export const TCP_NEEDS_TOKEN =
  "a TCP http.listen needs a shared token (http.token_file, the systemd credential http_token, DOVEROUTE_HTTP_TOKEN or http.token) " +
  "that lua/http-route.lua sends; without one every local user could ask where each user's mail is and create rows. " +
  "Or listen on a UNIX socket path (mode/owner/group decide who may connect)"

/** Why a UNIX socket every local user may connect to (mode with "other" bits) without a token is refused. */
export const OPEN_SOCKET_NEEDS_TOKEN = (mode: number): string =>
  `a UNIX socket http.listen with mode 0${mode.toString(8)} lets every local user connect; ` +
  "set a shared token (http.token_file, the systemd credential http_token, DOVEROUTE_HTTP_TOKEN or http.token) " +
  "or a mode without the \"other\" bits (0660 with http.group)"

/**
 * Why a listener cannot start as configured, or `undefined`: a TCP address off loopback, TCP
 * without a token, a UNIX socket others may connect to without a token. The settings (so `config
 * check` says it) and the layer ask the same question.
 */
export const listenProblem = (listen: HttpListen, mode: number | undefined, hasToken: boolean): string | undefined => {
  if (listen._tag === "Tcp" && !isLoopback(listen.host)) return "refusing a non-loopback address for the HTTP route endpoint"
  if (listen._tag === "Tcp" && !hasToken) return TCP_NEEDS_TOKEN
  if (listen._tag === "Unix" && ((mode ?? 0o660) & 0o007) !== 0 && !hasToken) return OPEN_SOCKET_NEEDS_TOKEN(mode ?? 0o660)
  return undefined
}

/** True for an IPv4 address in 127.0.0.0/8 or the IPv6 loopback `::1`. */
export const isLoopback = (ip: string): boolean => {
  if (net.isIPv4(ip)) return ip.startsWith("127.")
  if (!net.isIPv6(ip)) return false
  try {
    return new URL(`http://[${ip}]/`).hostname === "[::1]"
  } catch {
    return false
  }
}

/**
 * Parse `127.0.0.1:PORT`, `[::1]:PORT` (any 127.x.y.z) or an absolute UNIX socket path.
 * Throws {@link HttpListenError}: `NotLoopback` for any other IP (`0.0.0.0`, `[::]`, a LAN
 * address), `Malformed` for host names, a missing or invalid port, a relative path.
 */
export const parseHttpListen = (spec: string): HttpListen => {
  const s = spec.trim()
  if (s.startsWith("/")) return { _tag: "Unix", path: s }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s)
  if (m === null) {
    throw new HttpListenError({
      reason: "Malformed",
      detail: `http listen address ${JSON.stringify(spec)}: expected 127.0.0.1:PORT, [::1]:PORT or an absolute UNIX socket path`
    })
  }
  const host = m[1]!
  const port = Number(m[2])
  if (net.isIP(host) === 0) {
    throw new HttpListenError({
      reason: "Malformed",
      detail: `http listen address ${JSON.stringify(spec)}: ${JSON.stringify(host)} is not an IP address (host names are not accepted; use 127.0.0.1 or [::1])`
    })
  }
  if (!isLoopback(host)) {
    throw new HttpListenError({
      reason: "NotLoopback",
      detail: `refusing to listen on ${host}: the HTTP route endpoint reveals every user's backend; ` +
        `listen on a loopback address (127.0.0.1:PORT, [::1]:PORT) or a UNIX socket path`
    })
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new HttpListenError({ reason: "Malformed", detail: `http listen address ${JSON.stringify(spec)}: port must be 1-65535` })
  }
  return { _tag: "Tcp", host, port }
}

/** `127.0.0.1:8080`, `[::1]:8080` or the socket path. */
export const formatHttpListen = (l: HttpListen): string =>
  l._tag === "Unix" ? l.path : net.isIPv6(l.host) ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`
