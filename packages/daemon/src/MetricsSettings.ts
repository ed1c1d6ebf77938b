/**
 * The Prometheus metrics endpoint's settings (`metrics` section): `metrics.listen` `host:port`,
 * loopback unless `metrics.allow_remote` is true.
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Either, Option } from "effect"

/** The metrics endpoint (`metrics` section). */
export interface MetricsSettings {
  readonly host: string
  readonly port: number
}

/**
 * Parse `metrics.listen`: `127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT`; any other address
 * only with `allowRemote` (`metrics.allow_remote: true`, the admin's explicit choice).
 */
export const parseMetricsListen = (spec: string, allowRemote = false): MetricsSettings => {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec.trim())
  if (m === null) throw new Error(`metrics.listen must be HOST:PORT (loopback), got ${JSON.stringify(spec)}`)
  const host = (m[1] ?? m[2])!
  const port = Number(m[3])
  if (port < 1 || port > 65535) throw new Error(`metrics.listen: bad port ${m[3]}`)
  if (!allowRemote && !(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1" || host === "localhost")) {
    throw new Error(
      `metrics.listen must be a loopback address (127.0.0.0/8, [::1], localhost), got ${host}: ` +
        "set metrics.allow_remote to true to serve metrics on another address"
    )
  }
  return { host, port }
}

export const metricsConfig = Config.nested(
  Config.all({
    listen: Config.option(Config.string("listen")),
    allowRemote: Config.boolean("allow_remote").pipe(Config.withDefault(false))
  }),
  "metrics"
).pipe(
  Config.mapOrFail(({ allowRemote, listen: l }): Either.Either<MetricsSettings | undefined, ConfigError.ConfigError> => {
    if (Option.isNone(l)) return Either.right(undefined)
    try {
      return Either.right(parseMetricsListen(l.value, allowRemote))
    } catch (e) {
      return Either.left(ConfigError.InvalidData(["metrics", "listen"], (e as Error).message))
    }
  })
)
