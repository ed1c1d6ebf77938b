/**
 * The listener of both relays as a layer (the login relay and the userdb relay differ only in
 * their {@link RelayRules}, their names and their log lines).
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Resolver } from "./BackendAddress.js"
import { type BackendPorts, NO_PORTS } from "./BackendPort.js"
import { runtimeLog } from "./ListenerLog.js"
import { Lookup } from "./Lookup.js"
import { RelayConnection, type RelayRules } from "./Relay.js"
import type { RelayRouteContext } from "./RelayRoute.js"
import { type ConnectionLimits, listen, type SocketPermissions } from "./UnixListener.js"

/** Relay settings. */
export interface RelayOptions extends SocketPermissions, ConnectionLimits {
  /** Where Dovecot's clients connect instead of Dovecot's own socket. */
  readonly path: string
  /** Dovecot's own socket. */
  readonly upstream: string
  readonly ports?: BackendPorts
  readonly resolver?: Resolver
  readonly resolveTimeoutMs?: number
}

/** What tells one relay from the other. */
export interface RelayKind {
  /** Listener and front-end name (`login-relay`, `userdb-relay`). */
  readonly name: string
  /** The rules for one new connection. */
  readonly rules: (ctx: RelayRouteContext) => RelayRules
  /** Logged (Warning) when Dovecot's socket cannot be reached. */
  readonly upstreamFailed: string
  /** Logged (Warning) when the rules refuse a client line. */
  readonly refused?: string
  /** Runs once listening (the ready log line, warnings about the settings). */
  readonly ready: Effect.Effect<void>
}

/** A relay as a layer: listens for the layer's lifetime. Needs {@link Lookup}. */
export const relayLayer = (kind: RelayKind, options: RelayOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const lookup = yield* Lookup
      const ctx: RelayRouteContext = {
        lookup,
        ports: options.ports ?? NO_PORTS,
        frontend: kind.name,
        resolver: options.resolver,
        resolveTimeoutMs: options.resolveTimeoutMs,
        log: yield* runtimeLog(kind.name)
      }
      const refused = kind.refused
      yield* listen(
        { ...options, name: kind.name },
        (socket, flow) =>
          new RelayConnection(
            socket,
            options.upstream,
            kind.rules(ctx),
            (detail) => ctx.log("Warning", kind.upstreamFailed, { upstream: options.upstream, detail }),
            flow,
            options.maxRequests,
            refused === undefined ? undefined : (why) => ctx.log("Warning", refused, { detail: why })
          )
      )
      yield* kind.ready
    })
  )
