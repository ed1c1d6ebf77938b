// The PAM authenticator with a scripted binding (real PAM runs in packages/e2e/test/pam-standalone.test.ts).
import { describe, expect, it } from "vitest"
import { Pam } from "@doveroute/frontends"
import { Redacted } from "effect"

const request = (user: string, password: string) => ({
  user,
  authcid: user,
  authzid: "",
  masterUser: undefined,
  password: Redacted.make(password),
  mechanism: "PLAIN",
  service: "imap",
  remoteIp: "192.0.2.7",
  localIp: "127.0.0.1",
  secured: false
})

describe("PAM authenticator", () => {
  it("maps PAM codes: 0 accepted; credential refusals rejected; PAM trouble unavailable (temp_fail)", async () => {
    const seen: Array<unknown> = []
    const codes: Record<string, number> = { ok: 0, wrong: 7, unknown: 10, expired: 13, newtok: 12, denied: 6, infounavail: 9, syserr: 4, moderr: 3 }
    const auth = Pam.pam({
      service: "dvr-test",
      binding: {
        authenticate: (r) => {
          seen.push(r)
          return Promise.resolve({ code: codes[r.username]!, message: r.username === "ok" ? undefined : "msg" })
        }
      }
    })
    expect(auth.name).toBe("pam")
    expect(auth.verifiesPassword).toBe(true)
    const tag = async (u: string) => (await auth.authenticate(request(u, "pw")))._tag
    expect(await tag("ok")).toBe("Accepted")
    for (const u of ["wrong", "unknown", "expired", "newtok", "denied"]) expect(await tag(u), u).toBe("Rejected")
    for (const u of ["infounavail", "syserr", "moderr"]) expect(await tag(u), u).toBe("Unavailable")
    expect(seen[0]).toEqual({ username: "ok", password: "pw", serviceName: "dvr-test", remoteHost: "192.0.2.7" })
  })

  it("a binding that throws or rejects is Unavailable, never a password failure", async () => {
    const a = Pam.pam({ service: "x", binding: { authenticate: () => { throw new Error("boom") } } })
    expect(await a.authenticate(request("u", "p"))).toMatchObject({ _tag: "Unavailable" })
    const b = Pam.pam({ service: "x", binding: { authenticate: () => Promise.reject(new Error("boom")) } })
    expect(await b.authenticate(request("u", "p"))).toMatchObject({ _tag: "Unavailable" })
  })

  it("limits concurrent conversations and times out a stuck one (temp_fail)", async () => {
    let running = 0
    let peak = 0
    const pending: Array<() => void> = []
    const auth = Pam.pam({
      service: "x",
      maxConcurrent: 2,
      timeoutMs: 200,
      binding: {
        authenticate: () =>
          new Promise((resolve) => {
            running++
            peak = Math.max(peak, running)
            pending.push(() => {
              running--
              resolve({ code: 0, message: undefined })
            })
          })
      }
    })
    const all = [1, 2, 3, 4].map(() => auth.authenticate(request("u", "p")))
    await new Promise((r) => setTimeout(r, 50))
    expect(running).toBe(2)
    while (pending.length > 0 || running > 0) {
      pending.shift()?.()
      await new Promise((r) => setTimeout(r, 10))
    }
    const results = await Promise.all(all)
    expect(peak).toBe(2)
    expect(results.every((r) => r._tag === "Accepted" || r._tag === "Unavailable")).toBe(true)
    const stuck = Pam.pam({ service: "x", timeoutMs: 50, binding: { authenticate: () => new Promise(() => {}) } })
    expect(await stuck.authenticate(request("u", "p"))).toMatchObject({ _tag: "Unavailable", detail: expect.stringMatching(/did not answer/) })
  })

  it("the real binding loads; an invalid service name is refused", () => {
    expect(() => Pam.loadBinding()).not.toThrow()
    expect(() => Pam.pam({ service: "a/b", binding: { authenticate: () => Promise.resolve({ code: 0, message: undefined }) } })).toThrow(RangeError)
  })
})
