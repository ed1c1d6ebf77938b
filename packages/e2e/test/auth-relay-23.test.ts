// Relay mode on real Dovecot 2.3.19: the suite in auth-relay-suite.ts.
import { v23 } from "@doveroute/testkit"
import { authRelaySuite } from "./auth-relay-suite.js"

authRelaySuite(v23)
