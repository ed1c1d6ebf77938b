/**
 * Stores for doveroute on the Lua director's tables: SQLite (embedded default), PostgreSQL,
 * MySQL/MariaDB — one SQL code path, migrations, error classification.
 *
 * @since 0.1.0
 */
export * from "./StoreUrl.js"
export * from "./Classify.js"
export * as Schema from "./Schema.js"
export * as Migrations from "./Migrations.js"
export * as Journal from "./Journal.js"
export { SchemaError } from "./Migrations.js"
export * as SqlRouteStore from "./SqlRouteStore.js"
export * as SqlClientLayer from "./SqlClientLayer.js"
export * as Admin from "./Admin.js"
export * as AdminOps from "./AdminOps.js"
export * as UserTags from "./UserTags.js"
export * as BackendPlan from "./BackendPlan.js"
export * as Operations from "./Operations.js"
export * as Ring from "./Ring.js"
export * from "./StoreLayer.js"
export * as Health from "./Health.js"
export * as SqliteFiles from "./SqliteFiles.js"
export * as MysqlUrl from "./MysqlUrl.js"
export { pgHostUrls, type PgHostUrl } from "./PgUrl.js"
export * as CheckPort from "./CheckPort.js"
export * as ChangeFeed from "./ChangeFeed.js"
export * as TagsTable from "./TagsTable.js"
