/**
 * Front-ends: UNIX-socket listeners speaking Dovecot's protocols, all calling the one routing core.
 *
 * @since 0.1.0
 */
export * as UnixListener from "./UnixListener.js"
export { ListenerError } from "./UnixListener.js"
export * from "./Lookup.js"
export * as DictServer from "./DictServer.js"
