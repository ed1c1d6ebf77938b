// The closing line of `npm test` (scripts/test.sh) over every vitest JSON report given:
// 'N passed, N failed, 0 skipped'. No test skips itself, so a test that did not run (its file's
// setup failed, or it was skipped) counts as failed and is named, and so does a run that wrote no
// report. Exit 1 when any did not run.
import * as fs from "node:fs"

let passed = 0
let failed = 0
let missing = 0
const notRun = []
const failedNames = []
for (const [label, file] of process.argv.slice(2).map((a) => a.split("=", 2))) {
  let r
  try {
    r = JSON.parse(fs.readFileSync(file, "utf8"))
  } catch {
    console.log(`${label}: vitest wrote no report`)
    missing += 1
    continue
  }
  passed += r.numPassedTests
  failed += r.numFailedTests
  for (const f of r.testResults) {
    const file = f.name.replace(process.cwd() + "/", "")
    for (const a of f.assertionResults) {
      if (a.status === "failed") failedNames.push(`${label}: ${file}: ${a.fullName}`)
      else if (a.status !== "passed") notRun.push(`${label}: ${file}: ${a.fullName}`)
    }
    // a file whose setup failed has a failed status, a message and no test results
    if (f.status === "failed" && f.assertionResults.length === 0) notRun.push(`${label}: ${file}: ${(f.message ?? "").split("\n")[0]}`)
  }
}
if (failedNames.length > 0) {
  console.log("failed:")
  for (const n of failedNames) console.log(`  ${n}`)
}
if (notRun.length > 0) {
  console.log("did not run (setup failed or skipped; a missing feature is a failure):")
  for (const n of notRun) console.log(`  ${n}`)
}
console.log(`${passed} passed, ${failed + notRun.length + missing} failed, 0 skipped`)
process.exit(notRun.length + missing > 0 ? 1 : 0)
