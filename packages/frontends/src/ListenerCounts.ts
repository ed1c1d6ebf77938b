/**
 * Open client connections per listener, for the metrics scrape
 * (`doveroute_listener_connections{listener}`).
 *
 * Each listener registers a function returning its current count (the UNIX listeners: the size of
 * the connection map they keep anyway; the HTTP route: a number changed on connect and close). Nothing
 * runs per request: the counts are read only when {@link snapshot} is called.
 *
 * @since 0.1.0
 */

const sources = new Map<symbol, { readonly listener: string; readonly count: () => number }>()

/** Register a listener's live count under its name (`dict`, `auth`, `login-relay`, `userdb-relay`, `http`); returns the unregister function. */
export const register = (listener: string, count: () => number): (() => void) => {
  const key = Symbol(listener)
  sources.set(key, { listener, count })
  return () => {
    sources.delete(key)
  }
}

/** Current open connections per listener name (summed when one name is registered twice). */
export const snapshot = (): ReadonlyMap<string, number> => {
  const out = new Map<string, number>()
  for (const s of sources.values()) out.set(s.listener, (out.get(s.listener) ?? 0) + s.count())
  return out
}
