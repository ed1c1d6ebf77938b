/**
 * Pure Dovecot protocol codecs: tab-escaping, line framing, dict proxy, auth-client, SASL, and the
 * auth-master line limit and userdb filter.
 * No I/O, no clocks, no Effect runtime.
 *
 * @since 0.1.0
 */
export * as TabEscape from "./TabEscape.js"
export * as Dict from "./Dict.js"
export { LineSplitter, LineTooLongError } from "./LineSplitter.js"
export * as AuthClient from "./AuthClient.js"
export * as AuthMaster from "./AuthMaster.js"
export * as Sasl from "./Sasl.js"
export * as ProxyFields from "./ProxyFields.js"
export * as FieldCheck from "./FieldCheck.js"
export { AuthClientSession } from "./AuthClientSession.js"
export { IdTable } from "./IdTable.js"
export { parseUint32 } from "./internal/parse.js"
