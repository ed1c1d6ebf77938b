// What the first-login tests share: three backends (two up, one down) and waiting for a
// daemon's routing table to hold them.
import { RouteTable } from "@doveroute/routing"
import { Admin } from "@doveroute/store"
import { Effect } from "effect"

/** backend1.test and backend2.test up, backend3.test down (state 1). */
export const seed = Effect.gen(function*() {
  yield* Admin.addBackend({ hostname: "backend1.test", hostip: "127.0.0.2" })
  yield* Admin.addBackend({ hostname: "backend2.test", hostip: "127.0.0.3" })
  yield* Admin.addBackend({ hostname: "backend3.test", hostip: "127.0.0.4", state: 1 })
})

/** Wait until the daemon's table is loaded and holds the three backends. */
export const tableReady = Effect.gen(function*() {
  const { table } = yield* RouteTable
  for (let i = 0; i < 200; i++) {
    if (table.loaded() && table.backends().length === 3) return table
    yield* Effect.sleep("25 millis")
  }
  return yield* Effect.dieMessage("routing table not loaded within 5 s")
})
