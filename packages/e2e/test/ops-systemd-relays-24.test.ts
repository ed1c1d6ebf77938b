// The relay units on real Dovecot 2.4.1 (chroot): the suite in ops-systemd-relays-suite.ts.
import { v24 } from "@doveroute/testkit"
import { relayUnitsSuite } from "./ops-systemd-relays-suite.js"

relayUnitsSuite(v24)
