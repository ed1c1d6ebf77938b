/**
 * What `doveroute config check [--config FILE]` does (the options: ConfigCheck.ts): load the settings exactly as `serve` does (flags,
 * `DOVEROUTE_*`, the config file, defaults; unknown keys and bad values refused) and start nothing:
 * no socket, no store connection. Exit 0 with a short summary, or the one-line error (exit 1).
 *
 * @since 0.1.0
 */
import type { Settings } from "@doveroute/daemon"
import { formatHttpListen } from "@doveroute/frontends/HttpListen"
import { describeStoreUrl } from "@doveroute/store"
import { Console, Effect, Option } from "effect"
import { settingsFrom } from "./AdminSupport.js"
import type { checkConfig } from "./ConfigCheck.js"
import type { Parsed } from "./Lazy.js"

const mode = (m: number) => "0" + m.toString(8).padStart(3, "0")

/** The listeners the settings configure, as `name path (mode)`. */
export const listenerSummary = (s: Settings): Array<string> => [
  ...(s.dict ? [`dict ${s.dict.path} (${mode(s.dict.mode)})`] : []),
  ...(s.auth ? [`auth ${s.auth.path} (${mode(s.auth.mode)}, ${s.auth.authMode})`] : []),
  ...(s.loginRelay ? [`login_relay ${s.loginRelay.path} -> ${s.loginRelay.upstream}`] : []),
  ...(s.userdbRelay ? [`userdb_relay ${s.userdbRelay.path} -> ${s.userdbRelay.upstream}`] : []),
  ...(s.http ? [`http ${formatHttpListen(s.http.listen)}`] : []),
  ...(s.metrics ? [`metrics ${s.metrics.host}:${s.metrics.port}`] : [])
]

export const check = (o: Parsed<typeof checkConfig>) =>
  Effect.gen(function*() {
    const s = yield* settingsFrom(o)
    const listeners = listenerSummary(s)
    const source = Option.match(o.config, { onNone: () => "defaults and DOVEROUTE_* (no --config)", onSome: (f) => f })
    if (o.json) {
      return yield* Console.log(JSON.stringify({
        ok: true,
        config: Option.getOrNull(o.config),
        store: describeStoreUrl(s.store),
        strategy: s.strategy,
        listeners
      }))
    }
    yield* Console.log(`config OK: ${source}`)
    yield* Console.log(`store ${describeStoreUrl(s.store)}, strategy ${s.strategy}, proxy flag ${s.proxyFlag}, down_policy ${s.downPolicy}`)
    yield* Console.log(listeners.length > 0 ? `listeners: ${listeners.join("; ")}` : "listeners: none (serve needs at least one)")
  })
