// Keyset pagination (KeysetPages.ts) as the dump, the routing table's load and `user tags` use it:
// on SQLite, PostgreSQL and MariaDB, pages of 7 over 53 mappings and 23 user tags give every row
// exactly once, in key order, each page after the last key of the one before; a page size that
// divides the row count ends on an empty page.
import { describe, expect, it } from "@effect/vitest"
import { AdminOps, parseStoreUrl, storeLayer, UserTags } from "@doveroute/store"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { dropFileDatabaseAfterAll, KINDS, withDatabase } from "./helpers.js"

dropFileDatabaseAfterAll()

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`)

describe.concurrent.each(KINDS)("keyset pages on %s", (kind) => {
  it.live("mappings and user tags: every row once, in key order, across pages", () =>
    withDatabase(kind, (url) =>
      Effect.gen(function*() {
        const users = names("u", 53)
        const tagged = names("u", 23)
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO backends ${sql.insert([{ id: 1, hostname: "b1.test", state: 0 }, { id: 2, hostname: "b2.test", state: 0 }])}`
          yield* sql`INSERT INTO user_backend ${sql.insert(users.map((u, i) => ({ backend_id: 1 + (i % 2), user: u })))}`
          yield* sql`INSERT INTO doveroute_user_tags ${sql.insert(tagged.map((u) => ({ user_name: u, tag: "pool" })))}`
          const pages: Array<Array<string>> = []
          yield* AdminOps.forEachMappingPage("mapping", 7, (page) => Effect.sync(() => void pages.push(page.map((r) => String(r.key)))))
          expect(pages.flat()).toEqual(users)
          expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 7, 7, 7, 7, 4])
          const tagPages: Array<Array<string>> = []
          yield* UserTags.forEachUserTagPage(7, (page) => Effect.sync(() => void tagPages.push(page.map((r) => r.user))))
          expect(tagPages.flat()).toEqual(tagged)
          expect(tagPages.map((p) => p.length)).toEqual([7, 7, 7, 2])
          const exact: Array<number> = []
          yield* UserTags.forEachUserTagPage(23, (page) => Effect.sync(() => void exact.push(page.length)))
          expect(exact).toEqual([23])
        }).pipe(Effect.provide(storeLayer({ url: parseStoreUrl(url), strategy: "mapping" })))
      })))
})
