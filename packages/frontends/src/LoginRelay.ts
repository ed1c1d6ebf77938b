/**
 * Director-style login relay (`docs/protocols.md` §8): Dovecot authenticates, doveroute routes.
 *
 * Login processes connect here instead of to Dovecot's `login/login` (2.3:
 * `service imap-login { executable = imap-login <socket> }`; 2.4: `login_socket_path = <socket>`);
 * for each connection doveroute opens its own connection to Dovecot's login socket (`login/login`
 * or `auth-login`) and relays the auth-client protocol:
 *
 * - every byte from the login process goes to Dovecot unchanged (handshake, CPID, AUTH, CONT,
 *   CANCEL): the real auth's SPID and COOKIE reach the login process, so non-proxied logins and
 *   the master `REQUEST` that follows them keep working;
 * - every line from Dovecot comes back unchanged, except `OK` lines that ask for proxying without
 *   a `host=`: those get `host`/`hostip` (and `port` when configured for the request's protocol)
 *   appended, or are replaced by `FAIL\t<id>\tcode=temp_fail` ({@link completeProxyReply});
 * - failed logins (`FAIL`) never reach the router: a wrong password writes no route;
 * - Dovecot unreachable: the client connection is closed (the login process reconnects).
 *
 * Answers may overtake a reply waiting for routing (auth-client replies are matched by id).
 *
 * @since 0.1.0
 */
import { AuthClient } from "@doveroute/protocol"
import { Effect } from "effect"
import type { Lookup } from "./Lookup.js"
import type { RelayRules } from "./Relay.js"
import { relayLayer, type RelayOptions } from "./RelayListener.js"
import { proxyRewriter, type RelayRouteContext, rememberRequest, RequestTable, rewriteErrorLine } from "./RelayRoute.js"

/** Login relay settings (`upstream`: Dovecot's login socket, `<base_dir>/login/login` or `<base_dir>/auth-login`). */
export type LoginRelayOptions = RelayOptions

const FINAL = new Set(["FAIL"])

/** The relay rules for one login connection. */
export const loginRelayRules = (ctx: RelayRouteContext): RelayRules => {
  const requests = new RequestTable()
  return {
    ordered: false,
    observeClientLine: (line) => {
      if (line.startsWith("AUTH\t")) {
        rememberRequest(requests, line)
      } else if (line.startsWith("CANCEL\t")) {
        requests.take(line.slice(7))
      }
    },
    // Dovecot disconnects on longer lines anyway; bounds what one client makes the relay buffer
    clientMaxLine: AuthClient.AUTH_CLIENT_MAX_LINE,
    rewrite: proxyRewriter(ctx, "OK", requests, FINAL),
    onRewriteError: rewriteErrorLine
  }
}

/** The login relay as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const layer = (options: LoginRelayOptions) =>
  relayLayer({
    name: "login-relay",
    rules: loginRelayRules,
    upstreamFailed: "Dovecot login socket connection failed; closing the client",
    ready: Effect.logInfo("login relay ready").pipe(Effect.annotateLogs({ upstream: options.upstream }))
  }, options)
