// Standalone mode on real Dovecot 2.4.1 (chroot): the suite in auth-standalone-suite.ts.
import { v24 } from "@doveroute/testkit"
import { authStandaloneSuite } from "./auth-standalone-suite.js"

authStandaloneSuite(v24)
