// Standalone mode on real Dovecot 2.3.19: the suite in auth-standalone-suite.ts.
import { v23 } from "@doveroute/testkit"
import { authStandaloneSuite } from "./auth-standalone-suite.js"

authStandaloneSuite(v23)
