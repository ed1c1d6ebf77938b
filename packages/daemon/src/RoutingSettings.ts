/**
 * Routing and operator settings (config file keys; `DOVEROUTE_CACHE_REFRESH` … in the environment):
 *
 * ```json
 * { "table": { "mode": "full", "max_stale": "0 seconds", "keep_changes": 100000 },
 *   "cache": { "enabled": true, "ttl": "60 seconds", "refresh": "1 second", "max_entries": 1000000 },
 *   "placement": "random",
 *   "normalize": { "lowercase": false, "strip_domain": false },
 *   "kick_command": "doveadm proxy kick %u",
 *   "kick_proxies": [],
 *   "kick_hold": "30 seconds",
 *   "heartbeat_interval": "10 seconds",
 *   "tags": { "domains": ["example.org=pool1"] } }
 * ```
 * - `table`: how the daemon answers known users. `full` (default): every mapping and backend in
 *   memory, kept in step by the store's change feed every `cache.refresh` (TableFeed.ts); known
 *   users are routed from memory however long the store is away (`max_stale` > 0 bounds that);
 *   `keep_changes` feed entries are kept. `cache`: the bounded lookup cache below instead.
 * - `cache`: the daemon's lookup cache (`table.mode = cache`; `cache.refresh` also paces the feed).
 *   `cache.enabled: false` turns routing from memory off in both modes: every lookup reads the store. Every daemon reads the store's routes version every
 *   `cache.refresh` and clears its cache when it changed, so an admin change (or hand-written SQL)
 *   reaches every daemon within `cache.refresh` plus one query; `ttl` bounds any entry's age.
 * - `placement`: `random` (reference), `weighted` (by `backends.weight`), `least-loaded` (fewest
 *   mapped users per weight). `weight = 0` never receives new users.
 * - `normalize`: applied to the user name before the key (user row or shard) is computed; off by
 *   default (the scripts use the raw name). `lowercase` is Dovecot's `%Lu`, `strip_domain` `%n`.
 * - `kick_command`: run by `doveroute user move|move-many --kick` and `backend flush --kick`, once
 *   per entry of `kick_proxies` (`%h` = the entry, `%u` = the user), or once when the list is
 *   empty. Split on spaces into argv (no shell): `ssh %h doveadm proxy kick %u`,
 *   `chroot /srv/root doveadm -c /etc/dovecot.conf proxy kick %u`. `kick_hold` bounds how long
 *   logins of a moving user are held if the command dies.
 * - `tags.domains`: the domain rule of tags (pools, like the Director's `director_tag`): `domain=tag`
 *   entries; a user whose name ends in `@domain` (compared in lower case) has that tag unless the
 *   store or the request gives one (the precedence: routing's Tags.ts). Tags need strategy
 *   `mapping`: refused with `shard`.
 * - `heartbeat_interval`: how often the daemon refreshes its row in `doveroute_daemons` (the ring
 *   `doveroute status` lists; a daemon not seen for three intervals is marked).
 *
 * @since 0.1.0
 */
import { type Normalize, parseDomainTags, Placement, PLACEMENTS, type RouteCacheOptions } from "@doveroute/routing"
import { Config, ConfigError, Duration, Either } from "effect"

export const TABLE_MODES = ["full", "cache"] as const
export type TableMode = (typeof TABLE_MODES)[number]

export interface RoutingSettings {
  readonly table: { readonly mode: TableMode; readonly maxStale: Duration.Duration; readonly keepChanges: number }
  readonly cache: RouteCacheOptions & { readonly refresh: Duration.Duration }
  readonly placement: Placement.Placement
  readonly normalize: Normalize
  readonly kickCommand: string
  readonly kickProxies: ReadonlyArray<string>
  readonly kickHold: Duration.Duration
  /** How often the daemon refreshes its row in `doveroute_daemons` (Ring.ts). */
  readonly heartbeatInterval: Duration.Duration
  /** `tags.domains`: lower-case domain → tag. */
  readonly tags: { readonly domains: ReadonlyMap<string, string> }
}

export const routingSettingsConfig: Config.Config<RoutingSettings> = Config.all({
  table: Config.nested(Config.all({
    mode: Config.literal(...TABLE_MODES)("mode").pipe(Config.withDefault("full" as TableMode)),
    maxStale: Config.duration("max_stale").pipe(Config.withDefault(Duration.zero)),
    keepChanges: Config.integer("keep_changes").pipe(
      Config.withDefault(100_000),
      Config.validate({ message: "table.keep_changes must be at least 1000", validation: (n) => n >= 1000 })
    )
  }), "table"),
  cache: Config.nested(Config.all({
    enabled: Config.boolean("enabled").pipe(Config.withDefault(true)),
    ttl: Config.duration("ttl").pipe(Config.withDefault(Duration.seconds(60))),
    refresh: Config.duration("refresh").pipe(
      Config.withDefault(Duration.seconds(1)),
      Config.validate({ message: "cache.refresh must be more than 0", validation: (d) => Duration.toMillis(d) > 0 })
    ),
    maxEntries: Config.integer("max_entries").pipe(
      Config.withDefault(1_000_000),
      Config.validate({ message: "cache.max_entries must be at least 1", validation: (n) => n >= 1 })
    )
  }), "cache"),
  placement: Config.literal(...PLACEMENTS)("placement").pipe(Config.withDefault("random" as Placement.Placement)),
  normalize: Config.nested(Config.all({
    lowercase: Config.boolean("lowercase").pipe(Config.withDefault(false)),
    stripDomain: Config.boolean("strip_domain").pipe(Config.withDefault(false))
  }), "normalize"),
  kickCommand: Config.string("kick_command").pipe(Config.withDefault("doveadm proxy kick %u")),
  kickProxies: Config.array(Config.string(), "kick_proxies").pipe(Config.withDefault([] as Array<string>)),
  kickHold: Config.duration("kick_hold").pipe(Config.withDefault(Duration.seconds(30))),
  heartbeatInterval: Config.duration("heartbeat_interval").pipe(
    Config.withDefault(Duration.seconds(10)),
    Config.validate({ message: "heartbeat_interval must be at least 100 millis", validation: (d) => Duration.toMillis(d) >= 100 })
  ),
  tags: Config.nested(Config.all({
    domains: Config.array(Config.string(), "domains").pipe(
      Config.withDefault([] as Array<string>),
      Config.mapOrFail((specs) => {
        try {
          // ConfigProvider.fromJson renders an empty JSON array as the single value "<nil>"
          return Either.right(parseDomainTags(specs.filter((x) => x.length > 0 && x !== "<nil>")))
        } catch (e) {
          return Either.left(ConfigError.InvalidData(["tags", "domains"], (e as Error).message))
        }
      })
    )
  }), "tags")
})
