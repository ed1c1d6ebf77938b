/**
 * Userdb relay for LMTP (and doveadm) proxying (`docs/protocols.md` §5, §8): mail processes
 * use `auth_socket_path = <this socket>` and doveroute relays the auth-master protocol to
 * Dovecot's `auth-userdb`.
 *
 * Every byte passes unchanged in both directions (VERSION/SPID handshake, USER, LIST, NOTFOUND,
 * FAIL, …), except `PASS` replies that ask for proxying without a `host=`: those get
 * `host`/`hostip` (and `port` when configured for the request's protocol, e.g. `lmtp=24`)
 * appended, or become `FAIL\t<id>\tcode=temp_fail` (LMTP answers 451) when no backend can be given
 * ({@link completeProxyReply}). Dovecot's line order is kept (the auth-master client of 2.3 runs
 * one request at a time and matches by id).
 *
 * @since 0.1.0
 */
import { AuthMaster } from "@doveroute/protocol"
import { Effect } from "effect"
import type { Lookup } from "./Lookup.js"
import type { RelayRules } from "./Relay.js"
import { relayLayer, type RelayOptions } from "./RelayListener.js"
import { proxyRewriter, type RelayRouteContext, rememberRequest, RequestTable, rewriteErrorLine } from "./RelayRoute.js"

/** Userdb relay settings (`path`: LMTP/doveadm's `auth_socket_path`; `upstream`: Dovecot's `<base_dir>/auth-userdb`). */
export type UserdbRelayOptions = RelayOptions

const FINAL = new Set(["FAIL", "NOTFOUND", "USER"])

/**
 * The userdb relay forwards only what an `auth-userdb` socket serves
 * (`AuthMaster.USERDB_COMMANDS`: VERSION, USER, PASS, LIST). `REQUEST`, `CACHE-FLUSH`, `CPID` or
 * anything else closes the client's connection (as Dovecot's auth-userdb does: "BUG: Unknown
 * command in userdb socket"), so a relay pointed at `auth-master` by mistake still never passes
 * master-only commands. Returns why a line is refused, or undefined.
 */
export const userdbClientFilter: (line: Buffer) => string | undefined = AuthMaster.userdbRefusal

/** The relay rules for one userdb connection. */
export const userdbRelayRules = (ctx: RelayRouteContext): RelayRules => {
  const requests = new RequestTable()
  return {
    ordered: true,
    observeClientLine: (line) => {
      if (!line.startsWith("PASS\t")) return
      rememberRequest(requests, line)
    },
    clientMaxLine: AuthMaster.AUTH_MASTER_MAX_LINE,
    filterClientLine: userdbClientFilter,
    rewrite: proxyRewriter(ctx, "PASS", requests, FINAL),
    onRewriteError: rewriteErrorLine
  }
}

/** The userdb relay as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const layer = (options: UserdbRelayOptions) =>
  relayLayer({
    name: "userdb-relay",
    rules: userdbRelayRules,
    upstreamFailed: "Dovecot auth-userdb connection failed; closing the client",
    refused: "userdb relay client sent a command auth-userdb does not serve; closing it",
    ready: Effect.gen(function*() {
      if (((options.mode ?? 0o660) & 0o006) !== 0) {
        yield* Effect.logWarning(
          "the userdb relay socket is open to every local user: doveroute asks auth-userdb as itself, so Dovecot's " +
            "per-uid limits for auth-userdb peers do not apply and anyone can run PASS/LIST lookups; use mode 0660 " +
            "with the group LMTP/doveadm run as"
        ).pipe(Effect.annotateLogs({ listener: "userdb-relay", socket: options.path, mode: "0" + (options.mode ?? 0o660).toString(8) }))
      }
      yield* Effect.logInfo("userdb relay ready").pipe(Effect.annotateLogs({ upstream: options.upstream }))
    })
  }, options)
