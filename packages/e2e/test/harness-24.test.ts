// The testkit harness on real Dovecot 2.4.1 (chroot): the suite in harness-suite.ts.
import { v24 } from "@doveroute/testkit"
import { harnessSuite } from "./harness-suite.js"

harnessSuite(v24)
