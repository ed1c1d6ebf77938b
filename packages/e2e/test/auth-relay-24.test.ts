// Relay mode on real Dovecot 2.4.1 (chroot): the suite in auth-relay-suite.ts.
import { v24 } from "@doveroute/testkit"
import { authRelaySuite } from "./auth-relay-suite.js"

authRelaySuite(v24)
