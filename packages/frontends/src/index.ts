/**
 * Front-ends: UNIX-socket listeners speaking Dovecot's protocols, all calling the one routing core.
 *
 * @since 0.1.0
 */
export * as UnixListener from "./UnixListener.js"
export * as SocketFile from "./SocketFile.js"
export { ListenerError } from "./UnixListener.js"
export * from "./Lookup.js"
export * as DictServer from "./DictServer.js"
export * as HttpRoute from "./HttpRoute.js"
export * as AuthPenalty from "./AuthPenalty.js"
export * as AuthServer from "./AuthServer.js"
export * as Authenticator from "./Authenticator.js"
export * as Pam from "./Pam.js"
export * as BackendAddress from "./BackendAddress.js"
export * as BackendPort from "./BackendPort.js"
export * as ListenerLog from "./ListenerLog.js"
export * as ListenerCounts from "./ListenerCounts.js"
export * as Relay from "./Relay.js"
export * as RelayRoute from "./RelayRoute.js"
export * as RelayListener from "./RelayListener.js"
export * as Destination from "./Destination.js"
export * as LoginRelay from "./LoginRelay.js"
export * as UserdbRelay from "./UserdbRelay.js"
