// Issue 8: the master password compare is constant-time. Every check, right or wrong, short or
// long, goes through crypto.timingSafeEqual on two 32-byte SHA-256 digests: no early exit on the
// first differing byte and no length leak (timingSafeEqual itself throws on unequal lengths).
import { Redacted } from "effect"
import { beforeEach, describe, expect, it, vi } from "vitest"

const calls: Array<[number, number]> = []
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>()
  return {
    ...real,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls.push([a.byteLength, b.byteLength])
      return real.timingSafeEqual(a, b)
    }
  }
})

const { constantTimeEquals, masterPassword } = await import("../src/Authenticator.js")

const request = (password: string) => ({
  user: "alice",
  authcid: "alice",
  authzid: "",
  masterUser: undefined,
  password: Redacted.make(password),
  mechanism: "PLAIN",
  service: "imap",
  remoteIp: undefined,
  localIp: undefined,
  secured: true
})

describe("master password compare", () => {
  beforeEach(() => {
    calls.length = 0
  })

  it("every attempt (right, wrong, empty, shorter, longer, same prefix) is one timingSafeEqual over two 32-byte digests", async () => {
    const secret = "Mstr-7vQ2-zK9w-secret"
    const auth = masterPassword(Redacted.make(secret))
    const attempts = [secret, "x", "", secret.slice(0, -1), secret + "x", secret.slice(0, 5) + "?".repeat(secret.length - 5), "ü".repeat(300)]
    const results = []
    for (const pw of attempts) results.push((await auth.authenticate(request(pw)))._tag)
    expect(results).toEqual(["Accepted", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected"])
    expect(calls).toEqual(attempts.map(() => [32, 32]))
  })

  it("constantTimeEquals compares equal-length digests for inputs of any length", () => {
    expect(constantTimeEquals("a", "a")).toBe(true)
    expect(constantTimeEquals("a", "a".repeat(1000))).toBe(false)
    expect(constantTimeEquals("", "x")).toBe(false)
    expect(calls).toEqual([[32, 32], [32, 32], [32, 32]])
  })

  it("an empty master password is refused (it would accept an empty password)", () => {
    expect(() => masterPassword(Redacted.make(""))).toThrow(RangeError)
  })
})
