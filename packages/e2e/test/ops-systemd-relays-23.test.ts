// The relay units on real Dovecot 2.3.19: the suite in ops-systemd-relays-suite.ts.
import { v23 } from "@doveroute/testkit"
import { relayUnitsSuite } from "./ops-systemd-relays-suite.js"

relayUnitsSuite(v23)
