/**
 * Daemon composition: settings, logging, layers.
 *
 * @since 0.1.0
 */
export * from "./Settings.js"
export * from "./SettingsSources.js"
export * from "./RoutingSettings.js"
export * as Logging from "./Logging.js"
export * from "./RoutingLayer.js"
export * from "./Daemon.js"
export * as HealthCheck from "./HealthCheck.js"
export * as Metrics from "./Metrics.js"
export * as Systemd from "./Systemd.js"
export * as Secrets from "./Secrets.js"
export * as SettingValues from "./SettingValues.js"
export * as StrictSettings from "./StrictSettings.js"
export * as HealthProbe from "./HealthProbe.js"
