// The testkit harness on real Dovecot 2.3.19: the suite in harness-suite.ts.
import { v23 } from "@doveroute/testkit"
import { harnessSuite } from "./harness-suite.js"

harnessSuite(v23)
