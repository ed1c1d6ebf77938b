// The per-IP auth penalty (AuthPenalty.ts): the table's rules with a stepped clock, then a real
// auth socket where a failing address waits before its next attempt is checked and others do not.
import { describe, expect, it } from "@effect/vitest"
import { Authenticator, AuthPenalty, AuthServer, Lookup } from "@doveroute/frontends"
import { Effect, Layer, Redacted } from "effect"
import * as path from "node:path"
import { LineClient, scriptedLookup, scopedTmp, testResolver } from "./helpers.js"

const { AuthPenalty: Table, penaltyIdent, penaltySecs, MAX_IPS } = AuthPenalty

describe("auth penalty table", () => {
  const clock = () => {
    let t = 1_000_000
    return { now: () => t, advance: (s: number) => (t += s * 1000) }
  }

  it("steps 4, 8, 15, 15 s for new wrong passwords and clears on success", () => {
    const c = clock()
    const p = new Table(c.now)
    const ip = penaltyIdent("192.0.2.7")
    const seen: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const start = p.current(ip)
      seen.push(Table.delayMs(start))
      p.failed(ip, start, "alice", `guess-${i}`)
    }
    expect(seen).toEqual([0, 4000, 8000, 15000, 15000])
    expect([1, 2, 3, 4].map(penaltySecs)).toEqual([4, 8, 15, 15])
    p.succeeded(ip)
    expect(p.current(ip)).toBe(0)
  })

  it("the same user and password failing again does not raise the count", () => {
    const p = new Table(clock().now)
    const ip = penaltyIdent("192.0.2.8")
    for (let i = 0; i < 4; i++) p.failed(ip, p.current(ip), "alice", "one-typo")
    expect(p.current(ip)).toBe(1)
  })

  it("an address quiet for 15 s starts afresh (Dovecot drops the whole count then)", () => {
    const c = clock()
    const p = new Table(c.now)
    const ip = penaltyIdent("192.0.2.9")
    for (let i = 0; i < 4; i++) p.failed(ip, p.current(ip), "u", `g${i}`)
    expect(p.current(ip)).toBe(4)
    c.advance(14.9)
    expect(p.current(ip)).toBe(4)
    c.advance(0.1)
    expect(p.current(ip)).toBe(0)
    expect(p.size()).toBe(0)
  })

  it("keys IPv6 by /48 and IPv4-mapped addresses by the IPv4 address; no rip, no penalty", () => {
    expect(penaltyIdent("2001:db8:1:2::5")).toBe(penaltyIdent("2001:db8:1:ffff::9"))
    expect(penaltyIdent("2001:db8:1::1")).not.toBe(penaltyIdent("2001:db8:2::1"))
    expect(penaltyIdent("::ffff:192.0.2.1")).toBe("192.0.2.1")
    expect(penaltyIdent(undefined)).toBeUndefined()
    expect(penaltyIdent("")).toBeUndefined()
    expect(penaltyIdent("not-an-ip")).toBeUndefined()
    const p = new Table(clock().now)
    p.failed(undefined, 0, "u", "x")
    expect(p.size()).toBe(0)
  })

  it("holds at most MAX_IPS addresses, dropping the oldest", () => {
    const p = new Table(clock().now)
    for (let i = 0; i <= MAX_IPS; i++) p.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0, "u", "x")
    expect(p.size()).toBe(MAX_IPS)
    expect(p.current("10.0.0.0")).toBe(0)
    expect(p.current(`10.${(MAX_IPS >> 16) & 255}.${(MAX_IPS >> 8) & 255}.${MAX_IPS & 255}`)).toBe(1)
  })
})

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")
const plain = (user: string, pass: string) => b64(`\0${user}\0${pass}`)
const HANDSHAKE_LINES = 7

describe("auth penalty on a real auth socket", () => {
  it.scopedLive("a failing rip waits before its next attempt is checked; another rip and no-penalty do not", () =>
    Effect.gen(function*() {
      const dir = yield* scopedTmp
      const sock = path.join(dir, "auth.sock")
      const lookup = scriptedLookup({})
      yield* Layer.build(
        AuthServer.layer({
          path: sock,
          mode: 0o600,
          failureDelay: "100 millis",
          proxyFlag: "proxy",
          resolver: testResolver,
          authenticator: Authenticator.masterPassword(Redacted.make("Right-pass"))
        }).pipe(Layer.provide(Layer.succeed(Lookup, lookup.service)))
      )
      const c = yield* Effect.promise(() => LineClient.connect(sock))
      yield* Effect.promise(() => c.waitLines(HANDSHAKE_LINES))
      const ask = (n: number, fields: string, pass: string) =>
        Effect.promise(async () => {
          const t0 = Date.now()
          c.send(`AUTH\t${n}\tPLAIN\tservice=imap\t${fields}resp=${plain("alice", pass)}\n`)
          const lines = await c.waitLines(HANDSHAKE_LINES + n, 20_000)
          return { line: lines[HANDSHAKE_LINES + n - 1]!, ms: Date.now() - t0 }
        })
      c.send("VERSION\t1\t2\nCPID\t1\n")
      const first = yield* ask(1, "rip=192.0.2.50\t", "wrong-1")
      expect(first.line).toBe("FAIL\t1\tuser=alice")
      expect(first.ms).toBeLessThan(2000)
      // the same address again: its attempt waits 4 s before the check, even with the right password
      const penalised = yield* ask(2, "rip=192.0.2.50\t", "Right-pass")
      expect(penalised.line).toMatch(/^OK\t2\tuser=alice\tproxy\t/)
      expect(penalised.ms).toBeGreaterThanOrEqual(3900)
      // the success cleared it
      const cleared = yield* ask(3, "rip=192.0.2.50\t", "Right-pass")
      expect(cleared.ms).toBeLessThan(2000)
      // a failure, then another address and a no-penalty request (login_trusted_networks) go at once
      yield* ask(4, "rip=192.0.2.51\t", "wrong-2")
      const other = yield* ask(5, "rip=192.0.2.52\t", "Right-pass")
      expect(other.line).toMatch(/^OK\t5\t/)
      expect(other.ms).toBeLessThan(2000)
      const trusted = yield* ask(6, "rip=192.0.2.51\tno-penalty\t", "Right-pass")
      expect(trusted.line).toMatch(/^OK\t6\t/)
      expect(trusted.ms).toBeLessThan(2000)
      c.close()
    }))
})
