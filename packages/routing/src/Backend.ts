/**
 * A backend row of the Lua director's `backends` table.
 *
 * Columns (the scripts' documented schema, docs/lua-director.md §1): `id` int primary key, `hostname`
 * varchar(255), `hostip` varchar(255) nullable, `state` smallint (0 = may receive new users).
 * doveroute adds `weight` (additive migration; 1 when the column is absent) and `tag` (migration
 * 0011: the backend's pool, like the 2.3 Director's `director_tag`; NULL = untagged).
 *
 * @since 0.1.0
 */
export interface Backend {
  readonly id: number
  readonly hostname: string
  /** IP the proxy connects to; `null` when unset (then `hostname` is used as `host`). */
  readonly hostip: string | null
  /** 0 = up (may receive new users); any other value = not for new users. */
  readonly state: number
  /** The backend's pool (`backends.tag`); absent = untagged. Tags.ts says who may be placed here. */
  readonly tag?: string | null
}

/** `state = 0`: the backend may receive new users (the scripts' rule). */
export const isUp = (backend: Backend): boolean => backend.state === 0

/** The `hostip` to send: only when neither NULL nor empty (reference behaviour). */
export const usableHostip = (backend: Backend): string | undefined =>
  backend.hostip !== null && backend.hostip !== "" ? backend.hostip : undefined
