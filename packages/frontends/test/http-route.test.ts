import { describe, expect, it } from "@effect/vitest"
import { HttpRoute, Lookup } from "@doveroute/frontends"
import { parseExtraField } from "@doveroute/routing"
import { Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { B1, B2, backend, scopedTmp, scriptedLookup } from "./helpers.js"

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

interface Reply {
  readonly status: number
  readonly body: string
  readonly type: string | undefined
}

const TOKEN = "tok-0123456789abcdef"
const AUTH = { authorization: `Bearer ${TOKEN}` }

const get = (
  target: { port: number } | { socketPath: string },
  pathAndQuery: string,
  method = "GET",
  headers: Record<string, string> = "port" in target ? AUTH : {}
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const req = http.request({ ...("port" in target ? { host: "127.0.0.1", port: target.port } : { socketPath: target.socketPath }), path: pathAndQuery, method, headers, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (d: string) => (body += d))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, type: res.headers["content-type"] }))
    })
    req.on("error", reject)
    req.end()
  })

const scripted = () =>
  scriptedLookup({
    alice: B1,
    bob: B2,
    "jörg": B2,
    down: "fail",
    tabby: backend(5, "bad\thost", null)
  })

/** Start the endpoint with a scripted routing core for the current scope. */
const start = (listen: HttpRoute.HttpListen, s = scripted(), mode?: number, token: string | null = listen._tag === "Tcp" ? TOKEN : null) =>
  Layer.build(
    HttpRoute.layer({
      listen,
      proxyFlag: "proxy_maybe",
      extraFields: [parseExtraField("nopassword"), parseExtraField("port=143"), parseExtraField("password=MASTER-SECRET-1")],
      ...(mode !== undefined ? { mode } : {}),
      ...(token !== null ? { token: Redacted.make(token) } : {})
    }).pipe(Layer.provide(Layer.succeed(Lookup, s.service)))
  ).pipe(Effect.as(s))

describe("parseHttpListen: loopback or a UNIX socket only", () => {
  it("accepts 127.0.0.0/8, [::1] and absolute socket paths", () => {
    expect(HttpRoute.parseHttpListen("127.0.0.1:20180")).toEqual({ _tag: "Tcp", host: "127.0.0.1", port: 20180 })
    expect(HttpRoute.parseHttpListen("127.1.2.3:1")).toEqual({ _tag: "Tcp", host: "127.1.2.3", port: 1 })
    expect(HttpRoute.parseHttpListen("[::1]:8080")).toEqual({ _tag: "Tcp", host: "::1", port: 8080 })
    expect(HttpRoute.parseHttpListen("/run/doveroute/http.sock")).toEqual({ _tag: "Unix", path: "/run/doveroute/http.sock" })
    expect(HttpRoute.formatHttpListen({ _tag: "Tcp", host: "::1", port: 8080 })).toBe("[::1]:8080")
  })

  it("refuses every non-loopback address with a clear message", () => {
    for (const spec of ["0.0.0.0:8080", "192.168.1.10:80", "10.0.0.1:80", "[::]:80", "[2001:db8::1]:80", "[::ffff:127.0.0.1]:80"]) {
      let err: unknown
      try {
        HttpRoute.parseHttpListen(spec)
      } catch (e) {
        err = e
      }
      expect(err, spec).toBeInstanceOf(HttpRoute.HttpListenError)
      expect((err as HttpRoute.HttpListenError).reason, spec).toBe("NotLoopback")
      expect((err as Error).message, spec).toMatch(/refusing to listen on .*loopback/)
    }
  })

  it("refuses host names, missing or bad ports and relative paths", () => {
    for (const spec of ["localhost:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "relative/http.sock", ":8080", ""]) {
      expect(() => HttpRoute.parseHttpListen(spec), spec).toThrow(HttpRoute.HttpListenError)
    }
  })

  it("isLoopback", () => {
    expect(HttpRoute.isLoopback("127.255.0.1")).toBe(true)
    expect(HttpRoute.isLoopback("0:0:0:0:0:0:0:1")).toBe(true)
    expect(HttpRoute.isLoopback("128.0.0.1")).toBe(false)
    expect(HttpRoute.isLoopback("::")).toBe(false)
  })
})

describe("query parsing", () => {
  it("decodes percent-encoded UTF-8 strictly; the first occurrence of a name wins", () => {
    expect(HttpRoute.parseRouteRequest("/route?user=j%C3%B6rg&protocol=imap")).toEqual({ user: "jörg", protocol: "imap" })
    expect(HttpRoute.parseRouteRequest("/route?user=a%2Bb+c&service=pop3&user=x")).toEqual({ user: "a+b c", protocol: "pop3" })
    expect(HttpRoute.parseRouteRequest("/route?user=U%40Example.COM")).toEqual({ user: "U@Example.COM", protocol: "" })
  })

  it("rejects what cannot be routed faithfully", () => {
    for (const url of ["/route", "/route?user=", "/route?user=%FF", "/route?user=%C3", "/route?user=a%09b", "/route?user=a%00", "/route?user=%zz", "/route?user=a&protocol=im%20ap"]) {
      expect(() => HttpRoute.parseRouteRequest(url), url).toThrow()
    }
  })
})

describe("HTTP route endpoint (real HTTP server, scripted routing core)", () => {
  it.scopedLive("200 with TAB-separated fields, built per request: no hostip leaks from one user to the next", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const s = yield* start({ _tag: "Tcp", host: "127.0.0.1", port })
      const a = yield* Effect.promise(() => get({ port }, "/route?user=alice&protocol=imap"))
      expect(a.status).toBe(200)
      expect(a.type).toMatch(/^text\/plain/)
      expect(a.body).toBe("proxy_maybe=y\thost=backend1.test\thostip=127.0.0.2\tnopassword\tport=143")
      const b = yield* Effect.promise(() => get({ port }, "/route?user=bob&protocol=imap"))
      expect(b.body).toBe("proxy_maybe=y\thost=127.0.0.3\tnopassword\tport=143")
      const j = yield* Effect.promise(() => get({ port }, "/route?user=j%C3%B6rg&service=pop3"))
      expect(j.status).toBe(200)
      expect(s.calls.map((c) => [c.user, c.frontend])).toEqual([["alice", "http"], ["bob", "http"], ["jörg", "http"]])
    }))

  it.scopedLive("503 on a routing failure or an unencodable row; 400 on bad requests (the core is not asked); 404 elsewhere", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const s = yield* start({ _tag: "Tcp", host: "127.0.0.1", port })
      const down = yield* Effect.promise(() => get({ port }, "/route?user=down&protocol=imap"))
      expect(down.status).toBe(503)
      expect(down.body).toMatch(/temporary failure/)
      expect((yield* Effect.promise(() => get({ port }, "/route?user=tabby"))).status).toBe(503)
      const before = s.calls.length
      for (const q of ["/route", "/route?user=", "/route?protocol=imap", "/route?user=%FF", "/route?user=a%0Ab"]) {
        expect((yield* Effect.promise(() => get({ port }, q))).status, q).toBe(400)
      }
      expect(s.calls.length).toBe(before)
      expect((yield* Effect.promise(() => get({ port }, "/"))).status).toBe(404)
      expect((yield* Effect.promise(() => get({ port }, "/route/x?user=alice"))).status).toBe(404)
      expect((yield* Effect.promise(() => get({ port }, "/route?user=alice", "POST"))).status).toBe(404)
    }))

  it.scopedLive("a UNIX socket gets the configured mode and is removed when the listener stops", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "http.sock")
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* start({ _tag: "Unix", path: sock }, scripted(), 0o600)
          expect((fs.statSync(sock).mode & 0o777).toString(8)).toBe("600")
          const r = yield* Effect.promise(() => get({ socketPath: sock }, "/route?user=bob"))
          expect(r.status).toBe(200)
          expect(r.body).toMatch(/^proxy_maybe=y\thost=127\.0\.0\.3/)
        })
      )
      expect(fs.existsSync(sock)).toBe(false)
    }))

  it.scopedLive("a port in use fails the start (ListenerError), as does a non-loopback address", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* start({ _tag: "Tcp", host: "127.0.0.1", port })
      const again = yield* Effect.exit(Effect.scoped(start({ _tag: "Tcp", host: "127.0.0.1", port })))
      expect(again._tag).toBe("Failure")
      const open = yield* Effect.exit(Effect.scoped(start({ _tag: "Tcp", host: "0.0.0.0", port: 1 })))
      expect(open._tag).toBe("Failure")
      expect(String(open)).toMatch(/non-loopback/)
    }))
})

describe("HTTP route endpoint: who may ask (issue 11)", () => {
  it.scopedLive("TCP needs a token: without one the listener is refused at start", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const r = yield* Effect.exit(Effect.scoped(start({ _tag: "Tcp", host: "127.0.0.1", port }, scripted(), undefined, null)))
      expect(r._tag).toBe("Failure")
      expect(String(r)).toMatch(/needs a shared token/)
      // nothing listens on the port
      const refused = yield* Effect.promise(() => get({ port }, "/route?user=alice").then(() => "answered", (e: NodeJS.ErrnoException) => e.code))
      expect(refused).toBe("ECONNREFUSED")
    }))

  it.scopedLive("a UNIX socket others may connect to (0666, 0662) needs a token like TCP: refused at start without one, no socket left", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "http.sock")
      for (const mode of [0o666, 0o662]) {
        const r = yield* Effect.exit(Effect.scoped(start({ _tag: "Unix", path: sock }, scripted(), mode, null)))
        expect(r._tag).toBe("Failure")
        expect(String(r)).toMatch(new RegExp(`mode 0${mode.toString(8)} lets every local user connect`))
        expect(fs.existsSync(sock)).toBe(false)
      }
      // with a token the same mode starts; 0660 without a token starts too
      yield* Effect.scoped(Effect.gen(function*() {
        yield* start({ _tag: "Unix", path: sock }, scripted(), 0o666, TOKEN)
        expect((fs.statSync(sock).mode & 0o777).toString(8)).toBe("666")
      }))
      yield* Effect.scoped(start({ _tag: "Unix", path: sock }, scripted(), 0o660, null))
    }))

  it.scopedLive("no token 401, wrong token 403 (also one of another length), the routing core is never asked; the right token 200", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const s = yield* start({ _tag: "Tcp", host: "127.0.0.1", port })
      const none = yield* Effect.promise(() => get({ port }, "/route?user=newuser&protocol=imap", "GET", {}))
      expect(none.status).toBe(401)
      for (const h of [`Bearer ${TOKEN}x`, "Bearer x", `Basic ${TOKEN}`, `Bearer ${TOKEN.slice(0, -1)}X`, ""]) {
        const r = yield* Effect.promise(() => get({ port }, "/route?user=newuser", "GET", { authorization: h }))
        expect(r.status, h).toBe(h.startsWith("Bearer") ? 403 : 401)
        expect(r.body).not.toMatch(/host=/)
      }
      expect(s.calls).toEqual([]) // no lookup, so no row
      const ok = yield* Effect.promise(() => get({ port }, "/route?user=alice", "GET", { authorization: `bearer  ${TOKEN}` }))
      expect(ok.status).toBe(200)
      expect(s.calls.map((c) => c.user)).toEqual(["alice"])
    }))

  it.scopedLive("a password extra field never goes over HTTP (TCP with the token, UNIX socket)", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* start({ _tag: "Tcp", host: "127.0.0.1", port })
      const a = yield* Effect.promise(() => get({ port }, "/route?user=alice&protocol=imap"))
      expect(a.body).toBe("proxy_maybe=y\thost=backend1.test\thostip=127.0.0.2\tnopassword\tport=143")
      expect(a.body).not.toMatch(/MASTER-SECRET|password=/)
      const dir = yield* scopedTmp
      const sock = path.join(dir, "h.sock")
      yield* start({ _tag: "Unix", path: sock })
      const b = yield* Effect.promise(() => get({ socketPath: sock }, "/route?user=bob"))
      expect(b.status).toBe(200)
      expect(b.body).not.toMatch(/MASTER-SECRET|password=/)
    }))

  it.scopedLive("absolute-form targets (Dovecot's client through proxy_socket_path) are served like origin-form", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "h.sock")
      const s = yield* start({ _tag: "Unix", path: sock }, scripted(), undefined, TOKEN)
      const r = yield* Effect.promise(() => get({ socketPath: sock }, "http://localhost/route?user=alice&protocol=imap", "GET", AUTH))
      expect(r.status).toBe(200)
      expect(r.body).toMatch(/^proxy_maybe=y\thost=backend1\.test/)
      // a token configured on a UNIX socket is checked there too
      expect((yield* Effect.promise(() => get({ socketPath: sock }, "http://localhost/route?user=x", "GET", {}))).status).toBe(401)
      expect((yield* Effect.promise(() => get({ socketPath: sock }, "http://localhost/nope?user=x", "GET", AUTH))).status).toBe(404)
      expect(s.calls.map((c) => c.user)).toEqual(["alice"])
      expect(HttpRoute.originForm("http://127.0.0.1:1/route?user=a%20b")).toBe("/route?user=a%20b")
      expect(HttpRoute.originForm("/route?user=x")).toBe("/route?user=x")
    }))
})
