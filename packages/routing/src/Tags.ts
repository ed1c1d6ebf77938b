/**
 * Tags (pools), like the 2.3 Director's `director_tag`: a backend may carry a tag
 * (`backends.tag`); a user placed for the first time goes only to an up backend with the user's
 * tag, and an untagged user only to an untagged backend. No up backend in the tag → `NoBackend`
 * (temp_fail), never a backend of another pool.
 *
 * A user's tag, first match wins:
 * 1. the store's per-user tag (`doveroute_user_tags`, set by `doveroute user tag USER TAG`): an
 *    operator's explicit decision for one user;
 * 2. the tag the request carries: the passdb's `director_tag` (dict key `tag/<T>/<user>`, HTTP
 *    `tag=`, the relays' `director_tag` reply field); empty = none;
 * 3. the domain rule (`tags.domains`: `domain=tag`, the part after the user name's last `@`,
 *    compared in lower case);
 * 4. none: untagged.
 *
 * The tag matters only when a backend is chosen (first login, or a move off a down backend under
 * `down_policy = reassign`). A mapped user stays on their backend whatever its tag (the Director
 * kept a mapped user where they were too): moving users between pools is an admin action
 * (`doveroute user move`); `doveroute user show` reports a user whose backend is in another pool.
 *
 * Tags need strategy `mapping`: a shard holds users of any tag. Under `shard` the settings refuse
 * `tags.domains`, the CLI refuses per-user tags, a request carrying a tag is answered temp_fail
 * (`InvalidTag`), and shards are placed on untagged backends only.
 *
 * @since 0.3.0
 */
import type { Backend } from "./Backend.js"

/** What a tag may look like: 1-64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit. */
export const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

/** Whether `tag` is a usable tag name. */
export const validTag = (tag: string): boolean => TAG_RE.test(tag)

/** The tag of a backend (`null`: untagged). */
export const backendTag = (b: Backend): string | null => b.tag ?? null

/** Whether a user of `tag` (`null`: untagged) may be placed on `b`. */
export const inTag = (b: Backend, tag: string | null): boolean => backendTag(b) === tag

/** A request's tag: `undefined` and `""` are none. */
export const requestTag = (tag: string | undefined): string | undefined => (tag === undefined || tag === "" ? undefined : tag)

/**
 * Parse `tags.domains` entries (`domain=tag`): domains are compared in lower case; a domain given
 * twice, an empty domain or a bad tag is an error (thrown, with the entry).
 */
export const parseDomainTags = (specs: ReadonlyArray<string>): ReadonlyMap<string, string> => {
  const out = new Map<string, string>()
  for (const spec of specs) {
    const eq = spec.indexOf("=")
    const domain = (eq === -1 ? "" : spec.slice(0, eq)).trim().toLowerCase()
    const tag = eq === -1 ? "" : spec.slice(eq + 1).trim()
    if (domain.length === 0 || domain.includes("@") || /\s/.test(domain)) {
      throw new Error(`tags.domains entry ${JSON.stringify(spec)}: expected domain=tag (e.g. example.org=pool1)`)
    }
    if (!validTag(tag)) throw new Error(`tags.domains entry ${JSON.stringify(spec)}: the tag must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)`)
    if (out.has(domain)) throw new Error(`tags.domains names domain ${domain} twice`)
    out.set(domain, tag)
  }
  return out
}

/** The domain rule's tag for a user name (the part after the last `@`, lower case), if any. */
export const domainTag = (domains: ReadonlyMap<string, string>, user: string): string | undefined => {
  if (domains.size === 0) return undefined
  const at = user.lastIndexOf("@")
  return at === -1 ? undefined : domains.get(user.slice(at + 1).toLowerCase())
}

/** Where a user's tag came from (`none`: untagged). */
export type TagSource = "store" | "request" | "domain" | "none"

/** The precedence above: store, request, domain rule, none. */
export const resolveTag = (
  stored: string | undefined,
  request: string | undefined,
  domains: ReadonlyMap<string, string>,
  user: string
): { readonly tag: string | null; readonly source: TagSource } => {
  if (stored !== undefined) return { tag: stored, source: "store" }
  const r = requestTag(request)
  if (r !== undefined) return { tag: r, source: "request" }
  const d = domainTag(domains, user)
  if (d !== undefined) return { tag: d, source: "domain" }
  return { tag: null, source: "none" }
}
