/**
 * Grouping of concurrent first logins: requests that arrive within one turn of the event loop, or
 * while the previous groups are in flight, are handed to one `run` call (one multi-row statement on
 * the store, see RouteStore `assignMany`). Every member gets its own answer from the group's result;
 * a group that fails fails every member with the group's error (front-ends answer `temp_fail`).
 *
 * Plain callbacks around one fiber per group: a member waits in `Effect.async`, so an interrupted
 * member (the lookup deadline) leaves the queue, or ignores the answer when its group is in flight.
 *
 * @since 0.2.0
 */
import { Effect, Either, Exit } from "effect"

/** Grouping limits. */
export interface GroupOptions<I, A, E> {
  /**
   * Runs one group: `items` maps each distinct id to its item (the first member's); the answer must
   * hold every id. A failure of the whole group fails each member with it.
   */
  readonly run: (items: ReadonlyMap<string, I>) => Effect.Effect<ReadonlyMap<string, Either.Either<A, E>>, E>
  /** Distinct ids per group at most. */
  readonly maxSize: number
  /** Groups in flight at once at most. */
  readonly maxInFlight: number
  /** Starts a group's fiber (the router's runtime). */
  readonly fork: (effect: Effect.Effect<void>) => void
  /**
   * A member not answered within this many ms of joining (queued behind groups that hang on a
   * frozen store, or in a slow group) fails with `late()`; its group goes on in the background.
   */
  readonly maxWaitMs?: number
  readonly late?: () => E
}

interface Waiter<I, A, E> {
  readonly id: string
  readonly item: I
  readonly resume: (answer: Effect.Effect<A, E>) => void
  cancelled: boolean
}

/** Groups stats (tests and metrics). */
export interface GroupStats {
  readonly groups: number
  readonly members: number
  readonly largest: number
}

/** A grouper: `submit(id, item)` joins the next group and answers with the member's result. */
export const makeGrouper = <I, A, E>(options: GroupOptions<I, A, E>) => {
  const maxSize = Math.max(1, Math.floor(options.maxSize))
  const maxInFlight = Math.max(1, Math.floor(options.maxInFlight))
  let queue: Array<Waiter<I, A, E>> = []
  let inFlight = 0
  let scheduled = false
  let groups = 0
  let members = 0
  let largest = 0

  const deliver = (taken: ReadonlyArray<Waiter<I, A, E>>, exit: Exit.Exit<ReadonlyMap<string, Either.Either<A, E>>, E>) => {
    for (const w of taken) {
      if (w.cancelled) continue
      if (Exit.isFailure(exit)) {
        w.resume(Exit.failCause(exit.cause))
        continue
      }
      const r = exit.value.get(w.id)
      w.resume(
        r === undefined
          ? Effect.dieMessage(`first-login group gave no answer for ${w.id}`)
          : Either.isRight(r)
          ? Effect.succeed(r.right)
          : Effect.fail(r.left)
      )
    }
  }

  const flush = () => {
    scheduled = false
    while (inFlight < maxInFlight && queue.length > 0) {
      const items = new Map<string, I>()
      const taken: Array<Waiter<I, A, E>> = []
      let i = 0
      for (; i < queue.length; i++) {
        const w = queue[i]!
        if (w.cancelled) continue
        if (!items.has(w.id)) {
          if (items.size >= maxSize) break
          items.set(w.id, w.item)
        }
        taken.push(w)
      }
      queue = i >= queue.length ? [] : queue.slice(i)
      if (taken.length === 0) return
      inFlight++
      groups++
      members += taken.length
      if (items.size > largest) largest = items.size
      options.fork(
        Effect.flatMap(Effect.exit(options.run(items)), (exit) =>
          Effect.sync(() => {
            inFlight--
            deliver(taken, exit)
            schedule()
          }))
      )
    }
  }

  // after the current turn's I/O callbacks: every request read in this turn joins the group
  const schedule = () => {
    if (scheduled || inFlight >= maxInFlight || queue.length === 0) return
    scheduled = true
    setImmediate(flush)
  }

  const maxWaitMs = options.maxWaitMs !== undefined && options.maxWaitMs > 0 && options.late !== undefined ? options.maxWaitMs : 0
  const submit = (id: string, item: I): Effect.Effect<A, E> =>
    Effect.async<A, E>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const w: Waiter<I, A, E> = {
        id,
        item,
        resume: (answer) => {
          if (timer !== undefined) clearTimeout(timer)
          resume(answer)
        },
        cancelled: false
      }
      if (maxWaitMs > 0) {
        timer = setTimeout(() => {
          w.cancelled = true
          resume(Effect.fail(options.late!()))
        }, maxWaitMs)
      }
      queue.push(w)
      schedule()
      return Effect.sync(() => {
        if (timer !== undefined) clearTimeout(timer)
        w.cancelled = true
      })
    })

  return {
    submit,
    stats: (): GroupStats => ({ groups, members, largest })
  }
}
