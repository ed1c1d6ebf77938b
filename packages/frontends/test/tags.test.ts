// The request's tag (the passdb's director_tag) as each front-end reads it: the dict key
// `shared/tag/<T>/<user>`, HTTP `tag=`, and the `director_tag` field of a reply a relay completes
// (handed to the lookup, which places the user in that tag: store/test/tags.test.ts).
import { ProxyFields } from "@doveroute/protocol"
import { describe, expect, it } from "vitest"
import { DictServer, HttpRoute, type LookupService, RelayRoute } from "../src/index.js"

describe("the request's tag", () => {
  it("dict keys: tag/<T>/<user> carries the tag, an empty tag is none, passdb/ and route/ carry none", () => {
    expect(DictServer.requestFromKey("shared/tag/pool1/alice@example.org")).toEqual({ user: "alice@example.org", tag: "pool1" })
    expect(DictServer.requestFromKey("shared/tag//alice")).toEqual({ user: "alice", tag: "" })
    expect(DictServer.requestFromKey("shared/tag/pool1/")).toBeUndefined()
    expect(DictServer.requestFromKey("shared/tag/pool1")).toBeUndefined()
    expect(DictServer.requestFromKey("shared/passdb/alice")).toEqual({ user: "alice" })
    expect(DictServer.requestFromKey("shared/route/imap/alice")).toEqual({ user: "alice" })
  })

  it("dict keys with more slashes: split at the last one, so a director_tag with a slash is a malformed tag, never another user", () => {
    // director_tag "a/b" for alice: not user "b/alice" in tag a
    expect(DictServer.requestFromKey("shared/tag/a/b/alice")).toEqual({ user: "alice", tag: "a/b" })
    expect(DictServer.requestFromKey("shared/tag//a/alice")).toEqual({ user: "alice", tag: "/a" })
    expect(DictServer.requestFromKey("shared/tag///alice")).toEqual({ user: "alice", tag: "/" })
    expect(DictServer.requestFromKey("shared/tag/a/")).toBeUndefined()
  })

  it("HTTP: tag given twice (empty, malformed or another pool) is a bad request, never the first one alone", () => {
    for (const url of ["/route?user=alice&tag=&tag=pool1", "/route?user=alice&tag=pool1&tag=a%2Fb", "/route?user=alice&tag=a&tag=b", "/route?user=alice&tag=a&t%61g=b", "/route?user=alice&tag=a&tag"]) {
      let detail: string | undefined
      try {
        HttpRoute.parseRouteRequest(url)
      } catch (e) {
        detail = (e as { detail?: string }).detail
      }
      expect(detail, url).toMatch(/more than once/)
    }
    expect(HttpRoute.parseRouteRequest("/route?user=alice&tag=pool1&protocol=imap")).toEqual({ user: "alice", protocol: "imap", tag: "pool1" })
  })

  it("HTTP: tag= is passed on, empty is none, a malformed one is a bad request", () => {
    expect(HttpRoute.parseRouteRequest("/route?user=alice&tag=pool1")).toEqual({ user: "alice", protocol: "", tag: "pool1" })
    expect(HttpRoute.parseRouteRequest("/route?user=alice&tag=")).toEqual({ user: "alice", protocol: "" })
    expect(() => HttpRoute.parseRouteRequest("/route?user=alice&tag=a%2Fb")).toThrow()
  })

  it("relays: the reply's director_tag goes to the lookup with the user", async () => {
    const asked: Array<[string, string, string | undefined]> = []
    const lookup: LookupService = {
      lookup: (user, frontend, tag) => {
        asked.push([user, frontend, tag])
        return Promise.resolve({ _tag: "TempFail", reason: "NoBackend", detail: "test" })
      }
    }
    const ctx = { lookup, ports: { fallback: undefined, byProtocol: new Map() }, log: () => {}, frontend: "login-relay" }
    for (const [line, tag] of [["OK\t7\tuser=alice\tproxy\tdirector_tag=pool1", "pool1"], ["OK\t8\tuser=bob\tproxy", undefined]] as const) {
      const reply = ProxyFields.parseReplyLine(line)!
      const out = await RelayRoute.completeProxyReply(ctx, Buffer.from(line), reply, undefined)
      expect(String(out)).toContain("code=temp_fail")
      expect(asked.at(-1)).toEqual([reply.fields.find((f) => f.key === "user")!.value, "login-relay", tag])
    }
  })
})
