/**
 * The routing core: one function every front-end calls (dict, auth-client, relays, HTTP, CLI).
 *
 * Flow (the scripts' flow, docs/lua-director.md §2, without their defects §5):
 * 1. key = user (mapping) or `shardKey(user)` (shard);
 * 2. the stored row wins; a row on a backend with `state != 0` is handled by the down policy
 *    (`keep` = reference behaviour);
 * 3. no row → placement among `state = 0` backends (and weight > 0 when the store reports weights):
 *    `random` (uniform, the scripts' rule; default), `weighted` or `least-loaded` (Placement.ts)
 *    → race-safe insert-ignore-then-read, so concurrent first logins of one user agree on one
 *    backend;
 * 4. no usable backend → {@link RouteError} `NoBackend` (front-ends answer `temp_fail`).
 *
 * Tags (Tags.ts): a placement (first login, or a move off a down backend under `reassign`) chooses
 * only among backends of the user's tag (store tag, then the request's `director_tag`, then the
 * domain rule); an untagged user only among untagged backends. A stored row is used whatever its
 * backend's tag.
 *
 * First logins are grouped (FirstLogins.ts) when the store can store several rows at once
 * (`assignMany`): with the routing table loaded, a key it has no row for joins a group at once;
 * otherwise (lookup cache mode, or the table still loading) a key the store has no row for
 * joins one after that read. The logins that arrive in one turn of the event loop, or while the
 * previous groups are in flight, are placed together and stored by one `assignMany` (one
 * multi-row insert-ignore plus the read-back of the stored rows), and each answer names the
 * stored row. A key a group cannot settle is routed alone (`place` + `assign`). A store that can
 * read what a group needs in one call (`groupReads`: SQLite in the daemon) is asked once; the
 * decisions stay here.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Either, Layer, Option, Runtime } from "effect"
import type { Backend } from "./Backend.js"
import { makeGrouper } from "./FirstLogins.js"
import { type Normalize, normalizeUser, RouteHolds } from "./Holds.js"
import {
  type BackendLoad,
  candidates,
  choose,
  chooseLeastLoaded,
  chooseWeighted,
  type Placement,
  PlacementInfo
} from "./Placement.js"
import { ReasonError } from "./ReasonError.js"
import { RouteCache } from "./RouteCache.js"
import type { RoutingTable } from "./RoutingTable.js"
import { RouteStore, StoreError } from "./RouteStore.js"
import { shardKey } from "./ShardKey.js"
import type { DownPolicy, RouteKey, Strategy } from "./Strategy.js"
import { RouteTable } from "./TableFeed.js"
import { requestTag, resolveTag, type TagSource, validTag } from "./Tags.js"

/**
 * Why no backend can be given. Front-ends answer every reason with a temporary failure.
 * - `NoBackend`: no backend with `state = 0` for a new user (or for `reassign`).
 * - `BackendDown`: the user's backend has `state != 0` and the policy is `tempfail`.
 * - `InvalidUser`: empty user name, or one containing TAB, CR, LF or NUL.
 * - `InvalidTag`: the request's tag is not a tag name (Tags.ts `TAG_RE`), or the strategy is
 *   `shard` (tags need `mapping`).
 * - `Held`: the user is being moved (`doveroute user move --kick`); new logins wait for the kick.
 */
export class RouteError extends ReasonError("RouteError")<"NoBackend" | "BackendDown" | "InvalidUser" | "InvalidTag" | "Held">() {}

/** The outcome of a successful routing decision. */
export interface Route {
  readonly user: string
  readonly key: RouteKey
  readonly backend: Backend
  /** `existing`: the stored row; `assigned`: first assignment by this call or a concurrent one; `reassigned`: moved off a down backend. */
  readonly source: "existing" | "assigned" | "reassigned"
}

/** A dry-run answer for `doveroute lookup`: what routing would do, without writing. */
export interface RoutePreview {
  readonly user: string
  readonly key: RouteKey
  readonly backend: Option.Option<Backend>
  readonly wouldInsert: boolean
  /** The tag a placement would use (`null`: untagged) and where it came from (Tags.ts). */
  readonly tag: string | null
  readonly tagSource: TagSource
  readonly candidates: ReadonlyArray<Backend>
}

/** Router settings. */
export interface RouterOptions {
  readonly strategy: Strategy
  readonly downPolicy: DownPolicy
  /** Injectable randomness for placement (default `Math.random`). */
  readonly random?: () => number
  /** Placement of new users (default `random`; see Placement.ts). */
  readonly placement?: Placement
  /** Username normalisation before the key is computed (default: none). */
  readonly normalize?: Normalize
  /** The domain rule (`tags.domains`): lower-case domain → tag (Tags.ts). */
  readonly tagDomains?: ReadonlyMap<string, string>
  /**
   * Group concurrent first logins when the store can (default true). `false`: every first login
   * is placed and stored alone (the path a group falls back to; tests use it to reach that path).
   */
  readonly groupFirstLogins?: boolean
}

const INVALID_USER = /[\t\r\n\x00]/

/** Distinct keys per first-login group at most (3 bound parameters each). */
export const FIRST_LOGIN_GROUP_MAX = 500

/** A group member the group could not settle: it is routed one by one (`routeUncached`). */
const ALONE = Symbol("alone")

/** One first login in a group: its key, the user name (domain rule) and the request's tag. */
interface GroupItem {
  readonly key: RouteKey
  readonly user: string
  readonly tag: string | undefined
}

/** The routing key for a user under a strategy (after the optional normalisation). */
export const routeKey = (strategy: Strategy, user: string, normalize?: Normalize): RouteKey => {
  const u = normalizeUser(user, normalize)
  return strategy === "shard" ? shardKey(u) : u
}

/** Build the router over a {@link RouteStore}. */
export const make = (options: RouterOptions) =>
  Effect.gen(function*() {
    const store = yield* RouteStore
    const cache = yield* RouteCache
    const random = options.random ?? Math.random
    const placement = options.placement ?? "random"
    const info = yield* Effect.serviceOption(PlacementInfo)
    const holds = yield* Effect.serviceOption(RouteHolds)
    const table = Option.map(yield* Effect.serviceOption(RouteTable), (t) => t.table)
    const keyOf = (user: string) => routeKey(options.strategy, user, options.normalize)
    const runtime = yield* Effect.runtime<never>()
    const tagDomains: ReadonlyMap<string, string> = options.strategy === "shard" ? new Map() : options.tagDomains ?? new Map()
    /** How a NoBackend detail names the pool: a tag, untagged only where tags are in use, else nothing. */
    const tagWords = (tag: string | null, all: ReadonlyArray<Backend>) =>
      tag !== null ? ` in tag ${tag}` : all.some((b) => (b.tag ?? null) !== null) ? " among untagged backends" : ""

    /** A request tag that cannot be used: malformed, or any tag under strategy shard. */
    const checkTag = (tag: string | undefined): Effect.Effect<void, RouteError> => {
      const t = requestTag(tag)
      if (t === undefined) return Effect.void
      if (options.strategy === "shard") {
        return Effect.fail(new RouteError({ reason: "InvalidTag", detail: "the request carries a tag, but tags need strategy mapping (a shard holds users of every tag)" }))
      }
      return validTag(t)
        ? Effect.void
        : Effect.fail(new RouteError({ reason: "InvalidTag", detail: "the request's tag is not 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)" }))
    }

    /** The store's per-user tags of these keys (none under shard, or without the store's table). */
    const storedTags = (keys: ReadonlyArray<RouteKey>): Effect.Effect<ReadonlyMap<string, string>, StoreError> =>
      options.strategy === "shard" || store.userTags === undefined || keys.length === 0 ? Effect.succeed(new Map()) : store.userTags(keys)

    /** The tag a placement of `user` uses, by the precedence of Tags.ts. */
    const tagFor = (user: string, key: RouteKey, request: string | undefined) =>
      Effect.map(storedTags([key]), (m) => resolveTag(m.get(String(key)), request, tagDomains, user))

    /** What one placement needs besides the backends: weights or loads (when the store reports them). */
    const placementData: Effect.Effect<
      { readonly weights?: ReadonlyMap<number, number>; readonly loads?: ReadonlyMap<number, BackendLoad> },
      StoreError
    > = Option.isNone(info)
      ? Effect.succeed({})
      : placement === "least-loaded"
      ? Effect.map(info.value.loads, (loads) => ({ loads }))
      : Effect.map(info.value.weights, (weights) => ({ weights }))

    /**
     * A chooser for a group: each call places one more key. Under `least-loaded` each pick counts
     * for the next, so a group is spread as one-by-one placement would spread it.
     */
    const groupPicker = (
      all: ReadonlyArray<Backend>,
      data: { readonly weights?: ReadonlyMap<number, number>; readonly loads?: ReadonlyMap<number, BackendLoad> },
      tag: string | null,
      sharedLoads?: Map<number, BackendLoad>
    ): () => Backend | undefined => {
      if (data.loads !== undefined) {
        const loads = sharedLoads ?? new Map(data.loads)
        const weights = new Map([...loads].map(([id, l]) => [id, l.weight] as const))
        const cands = candidates(all, weights, tag)
        return () => {
          const b = chooseLeastLoaded(cands, loads)
          if (b !== undefined) {
            const l = loads.get(b.id) ?? { weight: 1, users: 0 }
            loads.set(b.id, { weight: l.weight, users: l.users + 1 })
          }
          return b
        }
      }
      const cands = candidates(all, data.weights, tag)
      return placement === "weighted" && data.weights !== undefined
        ? () => chooseWeighted(cands, data.weights!, random)
        : () => choose(cands, random)
    }

    const pickBackend = (all: ReadonlyArray<Backend>, tag: string | null): Effect.Effect<Backend | undefined, StoreError> => {
      if (Option.isNone(info)) return Effect.succeed(choose(candidates(all, undefined, tag), random))
      if (placement === "least-loaded") {
        return Effect.map(info.value.loads, (loads) => {
          const weights = new Map([...loads].map(([id, l]) => [id, l.weight] as const))
          return chooseLeastLoaded(candidates(all, weights, tag), loads)
        })
      }
      return Effect.map(info.value.weights, (weights) =>
        placement === "weighted"
          ? chooseWeighted(candidates(all, weights, tag), weights, random)
          : choose(candidates(all, weights, tag), random))
    }

    /** A backend of the user's tag for `key`; `NoBackend` when the tag has no usable one (never another pool's). */
    const place = (user: string, key: RouteKey, request: string | undefined, why: string) =>
      Effect.flatMap(tagFor(user, key, request), ({ tag }) =>
        Effect.flatMap(store.listBackends, (all) =>
          Effect.flatMap(pickBackend(all, tag), (pick) =>
            pick === undefined
              ? Effect.fail(new RouteError({ reason: "NoBackend", detail: `no backend with state=0 and weight>0${tagWords(tag, all)} ${why}` }))
              : Effect.succeed(pick))))

    const checkHold = (key: RouteKey): Effect.Effect<void, RouteError | StoreError> =>
      Option.isNone(holds) ? Effect.void : Effect.flatMap(
        Effect.zip(holds.value.heldUntil(key), Clock.currentTimeMillis),
        ([until, now]) =>
          Option.isSome(until) && until.value > now
            ? Effect.fail(new RouteError({ reason: "Held", detail: `${String(key)} is being moved; logins are held until the kick is done` }))
            : Effect.void
      )

    /** Whether a non-empty request tag may be used (a valid name, strategy mapping). */
    const tagUsable = (tag: string) => options.strategy !== "shard" && validTag(tag)

    const checkUser = (user: string) =>
      user.length === 0 || INVALID_USER.test(user)
        ? Effect.fail(new RouteError({ reason: "InvalidUser", detail: "empty user name or one with TAB/CR/LF/NUL" }))
        : Effect.void

    const routeUncached = Effect.fn("Router.route")(function*(user: string, tag?: string, alone?: boolean) {
      yield* checkUser(user)
      yield* checkTag(tag)
      const key = keyOf(user)
      yield* checkHold(key)
      const found = yield* store.findAssigned(key)
      if (Option.isSome(found)) {
        const backend = found.value
        if (backend.state === 0 || options.downPolicy === "keep") {
          return { user, key, backend, source: "existing" } satisfies Route
        }
        if (options.downPolicy === "tempfail") {
          return yield* new RouteError({
            reason: "BackendDown",
            detail: `backend ${backend.id} (${backend.hostname}) has state=${backend.state}`
          })
        }
        const target = yield* place(user, key, tag, `to move ${String(key)} off backend ${backend.id}`)
        const moved = yield* store.reassign(key, backend.id, target.id)
        return { user, key, backend: moved, source: "reassigned" } satisfies Route
      }
      if (alone !== true && grouper !== undefined) {
        const b = yield* grouper.submit(String(key), { key, user, tag: requestTag(tag) })
        if (b !== ALONE) return { user, key, backend: b, source: "assigned" } satisfies Route
      }
      const target = yield* place(user, key, tag, `for new ${options.strategy === "shard" ? "shard" : "user"} ${String(key)}`)
      const stored = yield* store.assign(key, target.id)
      return { user, key, backend: stored, source: "assigned" } satisfies Route
    })

    const heldMany = (keys: ReadonlyArray<RouteKey>): Effect.Effect<ReadonlyMap<string, number>, StoreError> => {
      if (Option.isNone(holds)) return Effect.succeed(new Map())
      const h = holds.value
      if (h.heldMany !== undefined) return h.heldMany(keys)
      return Effect.map(
        Effect.forEach(keys, (k) => Effect.map(h.heldUntil(k), (u) => [String(k), u] as const), { concurrency: "unbounded" }),
        (pairs) => {
          const m = new Map<string, number>()
          for (const [k, u] of pairs) if (Option.isSome(u)) m.set(k, u.value)
          return m
        }
      )
    }

    /**
     * What a group reads before it places: the holds, the backends, the placement data and the
     * stored user tags. With the store's combined read (`groupReads`) one call (least-loaded keeps
     * its own count of rows per backend); otherwise the four reads, concurrently. Both read the
     * same things: holds only with {@link RouteHolds}, weights only with {@link PlacementInfo},
     * tags only under `mapping`.
     */
    const groupInputs = (keys: ReadonlyArray<RouteKey>): Effect.Effect<{
      readonly held: ReadonlyMap<string, number>
      readonly all: ReadonlyArray<Backend>
      readonly data: { readonly weights?: ReadonlyMap<number, number>; readonly loads?: ReadonlyMap<number, BackendLoad> }
      readonly stored: ReadonlyMap<string, string>
    }, StoreError> => {
      const combined = store.groupReads
      if (combined === undefined) {
        return Effect.map(
          Effect.all([heldMany(keys), store.listBackends, placementData, storedTags(keys)], { concurrency: "unbounded" }),
          ([held, all, data, stored]) => ({ held, all, data, stored })
        )
      }
      const leastLoaded = Option.isSome(info) && placement === "least-loaded"
      const want = {
        holds: Option.isSome(holds),
        weights: Option.isSome(info) && !leastLoaded,
        userTags: options.strategy !== "shard" && store.userTags !== undefined && keys.length > 0
      }
      return Effect.flatMap(combined(keys, want), (r) => {
        // only what was asked for counts (a hold without RouteHolds is not the router's to apply)
        const rest = { held: want.holds ? r.holds : new Map<string, number>(), all: r.backends, stored: want.userTags ? r.userTags : new Map<string, string>() }
        if (leastLoaded) return Effect.map(placementData, (data) => ({ ...rest, data }))
        if (!want.weights) return Effect.succeed({ ...rest, data: {} })
        // a store that did not read the weights it was asked for: the separate read
        return r.weights !== undefined
          ? Effect.succeed({ ...rest, data: { weights: r.weights } })
          : Effect.map(placementData, (data) => ({ ...rest, data }))
      })
    }

    /**
     * One group of first logins: the holds, backends, placement data and user tags (`groupInputs`), a
     * backend for each key that is not held, one `assignMany`, and per key the stored row. A key the
     * group cannot settle (no usable backend now, a row naming a deleted backend, a row on a down
     * backend under `tempfail`/`reassign`, a row the read-back missed) is routed one by one, as is
     * every member when the group's statement fails with a query error (one bad key cannot fail
     * the others); a store that is down or times out fails every member (`temp_fail`).
     */
    const runGroup = (assignMany: NonNullable<typeof store.assignMany>) =>
    (
      items: ReadonlyMap<string, GroupItem>
    ): Effect.Effect<ReadonlyMap<string, Either.Either<Backend | typeof ALONE, RouteError | StoreError>>, StoreError> =>
      Effect.gen(function*() {
        const keys = [...items.values()].map((i) => i.key)
        const { held, all, data, stored } = yield* groupInputs(keys)
        const now = yield* Clock.currentTimeMillis
        // one chooser per tag: each key of the group is placed among its own tag's backends only
        // (least-loaded: the counts are shared, every pick counts for the next)
        const sharedLoads = data.loads !== undefined ? new Map(data.loads) : undefined
        const pickers = new Map<string | null, () => Backend | undefined>()
        const pickerOf = (tag: string | null) => {
          let p = pickers.get(tag)
          if (p === undefined) pickers.set(tag, p = groupPicker(all, data, tag, sharedLoads))
          return p
        }
        const out = new Map<string, Either.Either<Backend | typeof ALONE, RouteError | StoreError>>()
        const rows: Array<{ key: RouteKey; backendId: number }> = []
        for (const [id, item] of items) {
          const until = held.get(id)
          if (until !== undefined && until > now) {
            out.set(id, Either.left(new RouteError({ reason: "Held", detail: `${id} is being moved; logins are held until the kick is done` })))
            continue
          }
          const { tag } = resolveTag(stored.get(id), item.tag, tagDomains, item.user)
          const b = pickerOf(tag)()
          // no backend in the tag now: routed alone, which answers NoBackend (or finds a row)
          if (b === undefined) out.set(id, Either.right(ALONE))
          else rows.push({ key: item.key, backendId: b.id })
        }
        if (rows.length === 0) return out
        const storedRows = yield* Effect.catchIf(
          assignMany(rows),
          (e) => e.reason === "Query" && rows.length > 1,
          () => Effect.succeed(new Map<string, Backend | null>())
        )
        for (const r of rows) {
          const id = String(r.key)
          const b = storedRows.get(id)
          out.set(id, Either.right(b === undefined || b === null || (b.state !== 0 && options.downPolicy !== "keep") ? ALONE : b))
        }
        return out
      })

    const grouper = store.assignMany !== undefined && options.groupFirstLogins !== false
      ? makeGrouper({
        run: runGroup(store.assignMany),
        maxSize: FIRST_LOGIN_GROUP_MAX,
        maxInFlight: store.groupsInFlight ?? 1,
        ...(store.groupWaitMs !== undefined ? {
          maxWaitMs: store.groupWaitMs,
          late: () => new StoreError({ reason: "Timeout", detail: `no answer for a first login within ${store.groupWaitMs} ms (query_timeout)` })
        } : {}),
        fork: (eff) => {
          Runtime.runFork(runtime)(eff)
        }
      })
      : undefined

    /** A first login (the table is loaded and has no row for the key): joins the next group. */
    const routeFirst = (submit: NonNullable<typeof grouper>["submit"], user: string, key: RouteKey, tag: string | undefined) =>
      user.length === 0 || INVALID_USER.test(user)
        ? routeUncached(user, tag)
        : Effect.zipRight(
          checkTag(tag),
          Effect.flatMap(submit(String(key), { key, user, tag: requestTag(tag) }), (b): Effect.Effect<Route, RouteError | StoreError> =>
            b === ALONE ? routeUncached(user, tag, true) : Effect.succeed({ user, key, backend: b, source: "assigned" }))
        )

    /**
     * Route through the store and remember the answer: in the table, a first assignment (unless the
     * feed changed the table meanwhile: the feed brings the row); in the cache, any route (unless
     * the cache was cleared meanwhile).
     */
    const route = (user: string, tag?: string): Effect.Effect<Route, RouteError | StoreError> => {
      if (Option.isSome(table)) {
        const t = table.value
        const gen = t.generation()
        const key = keyOf(user)
        const eff = grouper !== undefined && t.loaded() && !t.has(String(key))
          ? routeFirst(grouper.submit, user, key, tag)
          : routeUncached(user, tag)
        return Effect.tap(eff, (r) =>
          Effect.sync(() => {
            if (r.source === "assigned") t.addAssigned(String(r.key), r.backend.id, gen)
          }))
      }
      if (!cache.enabled) return routeUncached(user, tag)
      const gen = cache.generation()
      return Effect.tap(routeUncached(user, tag), (r) => Effect.sync(() => cache.set(user, r, gen)))
    }

    /**
     * From memory, synchronously: the table's backend for the key (a held key, a key whose backend
     * the table does not hold, or a down backend under `tempfail`/`reassign` goes the store path).
     */
    const fromTable = (t: RoutingTable) => (user: string, tag?: string): Route | undefined => {
      if (user.length === 0 || INVALID_USER.test(user) || (tag !== undefined && tag !== "" && !tagUsable(tag))) return undefined
      const key = keyOf(user)
      const backend = t.lookup(String(key), Date.now())
      if (backend === undefined || (backend.state !== 0 && options.downPolicy !== "keep")) return undefined
      return { user, key, backend, source: "existing" }
    }

    const preview = Effect.fn("Router.preview")(function*(user: string, tag?: string) {
      yield* checkUser(user)
      yield* checkTag(tag)
      const key = keyOf(user)
      const found = yield* store.findAssigned(key)
      const weights = Option.isSome(info) ? yield* info.value.weights : undefined
      const resolved = yield* tagFor(user, key, tag)
      const cands = candidates(yield* store.listBackends, weights, resolved.tag)
      return {
        user,
        key,
        backend: found,
        wouldInsert: Option.isNone(found),
        tag: resolved.tag,
        tagSource: resolved.source,
        candidates: cands
      } satisfies RoutePreview
    })

    return {
      strategy: options.strategy,
      /** The routing key of a user name (normalisation + strategy). */
      keyOf,
      /**
       * A cached route for `user`, synchronously, or `undefined` (then call {@link route}). A
       * mapped user is answered whatever `tag` says (Tags.ts); an unusable tag is never answered
       * from memory (the store path refuses it).
       */
      cached: Option.isSome(table)
        ? fromTable(table.value)
        : (user: string, tag?: string): Route | undefined => (tag !== undefined && tag !== "" && !tagUsable(tag) ? undefined : cache.get(user)),
      /** Route `user`; `tag` is the request's tag (the passdb's `director_tag`; `""` = none). */
      route,
      preview: preview as (user: string, tag?: string) => Effect.Effect<RoutePreview, RouteError | StoreError>,
      /** First-login groups so far (`undefined` when the store cannot store several rows at once). */
      firstLoginGroups: () => grouper?.stats()
    } as const
  })

/** The router service. */
export class Router extends Context.Tag("doveroute/Router")<Router, Effect.Effect.Success<ReturnType<typeof make>>>() {
  /** Layer without a lookup cache (CLI, tests); needs a {@link RouteStore}. */
  static readonly layer = (options: RouterOptions) => Layer.effect(Router, make(options)).pipe(Layer.provide(RouteCache.disabled))
  /**
   * Layer using the {@link RouteCache} in context (the daemon), and the {@link RouteTable} when
   * there is one (then the cache is not used); needs a {@link RouteStore}.
   */
  static readonly layerCached = (options: RouterOptions) => Layer.effect(Router, make(options))
}
