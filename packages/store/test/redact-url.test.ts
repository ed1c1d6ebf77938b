/**
 * redactUrl / describeStoreUrl: no store password survives in what is logged or shown.
 */
import { describe, expect, it } from "@effect/vitest"
import { describeStoreUrl, parseStoreUrl, redactUrl } from "@doveroute/store"

describe("redactUrl: the one store URL redaction", () => {
  it("redacts userinfo passwords, also with @ or / inside, and password-like query parameters", () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["postgres://postgres@127.0.0.1:5432/test?password=QueryPW", "postgres://postgres@127.0.0.1:5432/test?password=xxx", "QueryPW"],
      ["mysql://u:pa@ss@h", "mysql://u:xxx@h", "ss"],
      ["postgres://u:pa/ss@h", "postgres://u:xxx@h", "pa"],
      ["postgres://u:Pw1@h:5432/db?sslmode=require&sslpassword=KeyPW&application_name=x", "postgres://u:xxx@h:5432/db?sslmode=require&sslpassword=xxx&application_name=x", "KeyPW"],
      ["mysql://root@127.0.0.1:3306/test?PASS=Up1&pwd=Up2", "mysql://root@127.0.0.1:3306/test?PASS=xxx&pwd=xxx", "Up"],
      ["postgres://u@h/db?password=a@b", "postgres://u:xxx@b", "password=a"]
    ]
    for (const [url, want, secret] of cases) {
      expect(redactUrl(url), url).toBe(want)
      expect(redactUrl(url)).not.toContain(secret)
    }
    expect(redactUrl("postgres://u@h:5432/db?sslmode=disable")).toBe("postgres://u@h:5432/db?sslmode=disable")
    expect(redactUrl("sqlite:/var/lib/doveroute/doveroute.db")).toBe("sqlite:/var/lib/doveroute/doveroute.db")
  })

  it("describeStoreUrl goes through it", () => {
    const d = describeStoreUrl(parseStoreUrl("postgres://postgres@127.0.0.1:5432/test?password=QueryPW"))
    expect(d).not.toContain("QueryPW")
    expect(d).toContain("127.0.0.1:5432/test")
    expect(describeStoreUrl(parseStoreUrl("mysql://u:pa@ss@h/db"))).toBe("mysql://u:xxx@h/db")
  })
})
