// PostgreSQL store URLs naming several hosts (a primary and its standbys, libpq style): each host
// becomes a one-host URL with the same user, password, database and parameters; the list in the
// authority (names, [v6], percent-encoded socket directories, each with its port) and in the `host`
// parameter (with one port or one per host) are read; what cannot work is refused when the URL is
// parsed, naming the host by position and never the password; one-host URLs are left as they are;
// logs and `config check` show the list with the password as `xxx`.
import { describe, expect, it } from "vitest"
import { describeStoreUrl, parseStoreUrl, pgHostUrls, redactUrl, StoreUrlError } from "@doveroute/store"

const refusal = (url: string): string => {
  try {
    parseStoreUrl(url)
  } catch (e) {
    expect(e).toBeInstanceOf(StoreUrlError)
    return (e as StoreUrlError).message
  }
  return "accepted"
}

describe("pgHostUrls", () => {
  it("a host list in the authority: one URL per host, user, password, database and parameters kept", () => {
    expect(pgHostUrls("postgres://dvr:pw@h1:5432,h2:5433/routes?target_session_attrs=read-write&sslmode=disable")).toEqual([
      { label: "h1:5432", url: "postgres://dvr:pw@h1:5432/routes?target_session_attrs=read-write&sslmode=disable" },
      { label: "h2:5433", url: "postgres://dvr:pw@h2:5433/routes?target_session_attrs=read-write&sslmode=disable" }
    ])
    expect(pgHostUrls("postgresql://dvr@db-a,db-b,[::1]:6432/routes")).toEqual([
      { label: "db-a:5432", url: "postgresql://dvr@db-a/routes" },
      { label: "db-b:5432", url: "postgresql://dvr@db-b/routes" },
      { label: "[::1]:6432", url: "postgresql://dvr@[::1]:6432/routes" }
    ])
  })

  it("socket directories: percent-encoded in the authority, or listed in the host parameter", () => {
    expect(pgHostUrls("postgres://dvr@%2Frun%2Fpg1:5432,%2Frun%2Fpg2:5433/routes")).toEqual([
      { label: "/run/pg1:5432", url: "postgres://dvr@%2Frun%2Fpg1:5432/routes" },
      { label: "/run/pg2:5433", url: "postgres://dvr@%2Frun%2Fpg2:5433/routes" }
    ])
    expect(pgHostUrls("postgres:///routes?host=/run/pg1,/run/pg2&port=5432,5433&user=dvr")).toEqual([
      { label: "/run/pg1:5432", url: "postgres:///routes?host=%2Frun%2Fpg1&port=5432&user=dvr" },
      { label: "/run/pg2:5433", url: "postgres:///routes?host=%2Frun%2Fpg2&port=5433&user=dvr" }
    ])
    expect(pgHostUrls("postgres:///routes?host=/run/a,/run/b&port=6000").map((h) => h.label)).toEqual(["/run/a:6000", "/run/b:6000"])
  })

  it("one host: the URL as it is (the forms already accepted)", () => {
    for (const u of [
      "postgres://postgres@127.0.0.1:5432/test",
      "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
      "postgres:///db?host=/var/run/postgresql",
      "postgres://u@h/db?target_session_attrs=read-only"
    ]) expect(pgHostUrls(u)).toEqual([{ label: "", url: u }])
  })
})

describe("parseStoreUrl with several PostgreSQL hosts", () => {
  it("accepts the libpq forms (which `new URL` alone refuses)", () => {
    for (
      const u of [
        "postgres://dvr:pw@h1:5432,h2:5433/routes?target_session_attrs=read-write",
        "postgres://dvr@h1,h2/routes?target_session_attrs=primary",
        "postgres://dvr@%2Frun%2Fpg1:5432,%2Frun%2Fpg2:5433/routes",
        "postgres:///routes?host=/run/pg1,/run/pg2&port=5432,5433&user=dvr"
      ]
    ) {
      const s = parseStoreUrl(u)
      expect(s._tag, u).toBe("Pg")
    }
  })

  it("refuses what cannot work, naming the host and never the password", () => {
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      ["postgres://dvr:Pw9x@h1:5432,/routes", /host 2 of the list is empty/],
      ["postgres://dvr:Pw9x@h1:5432,h2:99999/routes", /host 2: port "99999" is not a port number/],
      ["postgres://dvr:Pw9x@h1:5432,h2:54x/routes", /host 2: port "54x"/],
      ["postgres:///routes?host=/a,/b,/c&port=1,2&password=Pw9x", /lists 2 ports for 3 hosts/],
      // as for one host (`new URL` refuses a user with an empty host): `postgres:///db?host=…&user=…`
      ["postgres://dvr:Pw9x@/routes?host=/a,/b", /host 1 of the list \(\/a:5432\) does not make a valid URL/],
      ["postgres://dvr:Pw9x@h1,h2/routes?host=/a,/b", /both in the URL and in its host parameter/],
      ["postgres://dvr:Pw9x@h1,h2/routes?target_session_attrs=standby", /target_session_attrs=standby with several hosts; .*read-write/],
      ["postgres://dvr:Pw9x@h1,h2/routes?target_session_attrs=any", /target_session_attrs=any/]
    ]
    for (const [u, want] of cases) {
      const m = refusal(u)
      expect(m, u).toMatch(want)
      expect(m).not.toContain("Pw9x")
    }
  })

  it("logs and config check show the list with the password redacted", () => {
    const u = "postgres://dvr:Pw9x@h1:5432,h2:5433/routes?target_session_attrs=read-write"
    expect(describeStoreUrl(parseStoreUrl(u))).toBe("postgres://dvr:xxx@h1:5432,h2:5433/routes?target_session_attrs=read-write")
    expect(redactUrl("postgres://dvr@h1,h2/routes?password=Pw9x")).toBe("postgres://dvr@h1,h2/routes?password=xxx")
  })
})
