// Shared pieces of the auth-socket end-to-end tests (standalone auth server, login relay, userdb
// relay) on real Dovecot 2.3.19 and 2.4.1.
import { readFileSync } from "node:fs"
import path from "node:path"
import { REPO_ROOT, seedSqliteStore } from "@doveroute/testkit"

/** A shipped Dovecot snippet (config/dovecot-<version>/<name>) with `/run/doveroute/auth.sock` replaced. */
export const snippet = (version: "2.3" | "2.4", name: string, authSocket?: string): string => {
  const text = readFileSync(path.join(REPO_ROOT, "config", `dovecot-${version}`, name), "utf8")
  return authSocket === undefined ? text : text.replaceAll("/run/doveroute/auth.sock", authSocket)
}

/** Backend ids → the address that backend's logins arrive on. */
export const IP_OF: Readonly<Record<number, string>> = { 1: "127.0.0.2", 2: "127.0.0.3" }

/**
 * The store every auth-socket test uses: backend 1 `backend1.test` (hostip 127.0.0.2, so replies
 * carry a host name plus hostip), backend 2 `127.0.0.3` (an IP, no hostip); alice → 1, bob → 2.
 */
export const seedStore = (file: string) =>
  seedSqliteStore(file, {
    backends: [{ hostname: "backend1.test", hostip: "127.0.0.2" }, { hostname: "127.0.0.3" }],
    mappings: { alice: 1, bob: 2 }
  })

/** Environment for the daemon in the tests: no failure delay. */
export const DAEMON_ENV = { DOVEROUTE_AUTH_FAILURE_DELAY: "0 millis" } as const

/** Lines of a file that match `re`. */
export const grepLines = (text: string, re: RegExp): Array<string> => text.split("\n").filter((l) => re.test(l))
