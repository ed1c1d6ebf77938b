import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import {
  createMechanism,
  decodeBase64,
  decodePlain,
  decodePlainBytes,
  encodeBase64,
  encodePlain,
  isValidBase64,
  LOGIN_PASSWORD_CHALLENGE,
  LOGIN_USERNAME_CHALLENGE,
  LoginMechanism,
  loginIdentity,
  passwordHasIllegalChars,
  PlainMechanism,
  type Credentials
} from "../src/Sasl.js"

const creds = (authzid: string, authcid: string, password: string): Credentials => ({ _tag: "Credentials", authzid, authcid, password })

describe("base64", () => {
  it("LOGIN challenge constants are base64 of the prompts", () => {
    expect(LOGIN_USERNAME_CHALLENGE).toBe("VXNlcm5hbWU6")
    expect(LOGIN_PASSWORD_CHALLENGE).toBe("UGFzc3dvcmQ6")
    expect(Buffer.from(decodeBase64(LOGIN_USERNAME_CHALLENGE)!).toString()).toBe("Username:")
    expect(Buffer.from(decodeBase64(LOGIN_PASSWORD_CHALLENGE)!).toString()).toBe("Password:")
  })

  it("accepts strict, padded base64, the empty string and '='", () => {
    for (const ok of ["", "=", "AA==", "AAA=", "AAAA", "AGFsaWNlAHNlY3JldA==", "YWxpY2UAYWxpY2UAc2VjcmV0", "+/+/"]) {
      expect(isValidBase64(ok), ok).toBe(true)
    }
    expect(Array.from(decodeBase64("=")!)).toEqual([])
    expect(Array.from(decodeBase64("")!)).toEqual([])
    expect(Array.from(decodeBase64("AP/+AHB3")!)).toEqual([0, 0xff, 0xfe, 0, 0x70, 0x77])
  })

  it("rejects what Node's lenient decoder would accept", () => {
    for (const bad of ["AGFsaWNlAHNlY3JldA", "AGFsaWNlAHNlY3JldA=", "AGFs!WNl", "AG Fs", "A===", "====", "==", "AA=A", "AA==AA==", "YWxp\nY2U=", "-_-_", "AAAAA", "ö"]) {
      expect(isValidBase64(bad), JSON.stringify(bad)).toBe(false)
      expect(decodeBase64(bad)).toBeUndefined()
    }
  })

  it("round-trips arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b64 = encodeBase64(bytes)
        expect(isValidBase64(b64)).toBe(true)
        expect(Array.from(decodeBase64(b64)!)).toEqual(Array.from(bytes))
      }),
      { numRuns: 2000 }
    )
  })

  it("agrees with Node on every string it accepts (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9+/=!-]{0,24}$/), (s) => {
        const d = decodeBase64(s)
        if (d !== undefined && s !== "=") expect(Buffer.from(d).equals(Buffer.from(s, "base64"))).toBe(true)
      }),
      { numRuns: 5000 }
    )
  })
})

describe("PLAIN", () => {
  it("decodes the captured responses", () => {
    expect(decodePlain("AGFsaWNlAHNlY3JldA==")).toEqual(creds("", "alice", "secret"))
    expect(decodePlain("YWxpY2UAYWxpY2UAc2VjcmV0")).toEqual(creds("alice", "alice", "secret"))
    expect(decodePlain("AGRhdmUAcGFzcw==")).toEqual(creds("", "dave", "pass"))
    expect(decodePlain("AG1hbGxvcnkAd3Jvbmc=")).toEqual(creds("", "mallory", "wrong"))
  })

  it("decodes non-ASCII names (jörg) as UTF-8", () => {
    expect(decodePlain("AGrDtnJnAGdlaGVpbQ==")).toEqual(creds("", "jörg", "geheim"))
    expect(decodePlain(encodePlain("", "jörg", "pässwörd"))).toEqual(creds("", "jörg", "pässwörd"))
    expect(encodePlain("", "jörg", "geheim")).toBe("AGrDtnJnAGdlaGVpbQ==")
  })

  it("allows an empty password and keeps TAB in it (illegal-char check is separate)", () => {
    expect(decodePlain("AGFsaWNlAA==")).toEqual(creds("", "alice", ""))
    const c = decodePlain("AGFsaWNlAGEJYg==")
    expect(c).toEqual(creds("", "alice", "a\tb"))
    if (c._tag === "Credentials") expect(passwordHasIllegalChars(c.password)).toBe(true)
  })

  it("reports invalid base64", () => {
    expect(decodePlain("AGFsaWNlAHNlY3JldA")).toEqual({ _tag: "SaslError", reason: "invalid_base64", detail: "invalid base64 data" })
    expect(decodePlain("AGFs aWNlAHNlY3JldA==")._tag).toBe("SaslError")
  })

  it("requires exactly two NULs and a non-empty authcid", () => {
    const malformed = (b64: string) => {
      const r = decodePlain(b64)
      expect(r._tag, b64).toBe("SaslError")
      if (r._tag === "SaslError") expect(r.reason).toBe("malformed")
    }
    malformed("YWxpY2U=") // "alice"
    malformed("dXNlcgBuYW1l") // "user\0name"
    malformed("AGFsaWNlAHNlY3JldAB4") // three NULs
    malformed("AABzZWNyZXQ=") // empty authcid
    malformed("") // empty response
    malformed("AP/+AHB3") // invalid UTF-8 authcid
  })

  it("master-user identity", () => {
    expect(loginIdentity(creds("", "alice", "x"))).toEqual({ user: "alice", masterUser: undefined })
    expect(loginIdentity(creds("alice", "alice", "x"))).toEqual({ user: "alice", masterUser: undefined })
    const m = decodePlain("YWxpY2UAYWRtaW4Ac2VjcmV0") // alice\0admin\0secret
    if (m._tag !== "Credentials") throw new Error("expected credentials")
    expect(loginIdentity(m)).toEqual({ user: "alice", masterUser: "admin" })
  })

  it("decodePlainBytes round trip (property)", () => {
    const part = fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\0"))
    fc.assert(
      fc.property(part, part.filter((s) => s.length > 0), part, (z, c, p) => {
        expect(decodePlainBytes(Buffer.from(`${z}\0${c}\0${p}`, "utf8"))).toEqual(creds(z, c, p))
        expect(decodePlain(encodePlain(z, c, p))).toEqual(creds(z, c, p))
      }),
      { numRuns: 3000 }
    )
  })

  it("step machine: initial response, empty challenge, errors after the end", () => {
    const a = new PlainMechanism()
    expect(a.start("AGFsaWNlAHNlY3JldA==")).toEqual(creds("", "alice", "secret"))
    expect(a.continue("AGFsaWNlAHNlY3JldA==")._tag).toBe("SaslError")
    const b = new PlainMechanism()
    expect(b.start(undefined)).toEqual({ _tag: "Challenge", challenge: "" })
    expect(b.continue("AGFsaWNlAHNlY3JldA==")).toEqual(creds("", "alice", "secret"))
    const c = new PlainMechanism()
    expect(c.continue("AGFsaWNlAHNlY3JldA==")).toEqual({ _tag: "SaslError", reason: "malformed", detail: "unexpected PLAIN continuation" })
    const d = new PlainMechanism()
    expect(d.start("")).toEqual({ _tag: "SaslError", reason: "malformed", detail: "PLAIN needs exactly two NUL separators" })
  })
})

describe("LOGIN", () => {
  it("captured 2.4.1 flow: Username:, mallory, Password:, pass", () => {
    const m = new LoginMechanism()
    expect(m.start(undefined)).toEqual({ _tag: "Challenge", challenge: "VXNlcm5hbWU6" })
    expect(m.continue("bWFsbG9yeQ==")).toEqual({ _tag: "Challenge", challenge: "UGFzc3dvcmQ6" })
    expect(m.continue("cGFzcw==")).toEqual(creds("", "mallory", "pass"))
    expect(m.continue("cGFzcw==")._tag).toBe("SaslError")
  })

  it("an initial response is the user name; an empty one asks for it", () => {
    const m = new LoginMechanism()
    expect(m.start("asO2cmc=")).toEqual({ _tag: "Challenge", challenge: "UGFzc3dvcmQ6" }) // jörg
    expect(m.continue("cMOkc3M=")).toEqual(creds("", "jörg", "päss"))
    expect(new LoginMechanism().start("")).toEqual({ _tag: "Challenge", challenge: "VXNlcm5hbWU6" })
    expect(new LoginMechanism().start("=")).toEqual({ _tag: "Challenge", challenge: "VXNlcm5hbWU6" })
  })

  it("errors", () => {
    const bad64 = new LoginMechanism()
    bad64.start(undefined)
    expect(bad64.continue("bWFsbG9yeQ")).toEqual({ _tag: "SaslError", reason: "invalid_base64", detail: "invalid base64 data" })
    expect(bad64.continue("cGFzcw==")._tag).toBe("SaslError")
    const empty = new LoginMechanism()
    empty.start(undefined)
    expect(empty.continue("")).toEqual({ _tag: "SaslError", reason: "malformed", detail: "empty LOGIN user name" })
    const nul = new LoginMechanism()
    expect(nul.start("dXNlcgBuYW1l")).toEqual({ _tag: "SaslError", reason: "malformed", detail: "NUL in LOGIN data" })
    const early = new LoginMechanism()
    expect(early.continue("cGFzcw==")._tag).toBe("SaslError")
    const twice = new LoginMechanism()
    twice.start(undefined)
    expect(twice.start(undefined)._tag).toBe("SaslError")
  })

  it("createMechanism", () => {
    expect(createMechanism("plain")?.name).toBe("PLAIN")
    expect(createMechanism("LOGIN")?.name).toBe("LOGIN")
    expect(createMechanism("CRAM-MD5")).toBeUndefined()
  })
})

describe("passwordHasIllegalChars", () => {
  it("flags 0x01, TAB, CR, LF only", () => {
    for (const bad of ["a\x01", "\tb", "c\r", "d\ne"]) expect(passwordHasIllegalChars(bad)).toBe(true)
    for (const ok of ["", "secret", "pässwörd", "a b", "x\x02y", "\x7f"]) expect(passwordHasIllegalChars(ok)).toBe(false)
  })
})
