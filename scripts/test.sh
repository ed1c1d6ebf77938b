#!/usr/bin/env bash
# The test command (npm test, .ci/run): dependencies, typecheck, all vitest projects.
# Arguments go to vitest: `npm test -- packages/cli/test` runs only those files (after the same
# install-deps, build and typecheck).
# Exits non-zero when any step fails; the typecheck failing still runs the tests, for the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== install-deps"
bash scripts/install-deps.sh

echo "== build: the doveroute bundle (tests start the daemon from it)"
npm run --silent build

status=0
echo "== typecheck: tsc -p tsconfig.json --noEmit"
if npx tsc -p tsconfig.json --noEmit; then echo "typecheck: ok"; else echo "typecheck: FAILED"; status=1; fi

echo "== tests: vitest run ${*:-(all projects)}"
REPORT=$(mktemp /tmp/dvr-vitest.XXXXXX.json)
trap 'rm -f "$REPORT"' EXIT
vitest_rc=0
npx vitest run "$@" --reporter=default --reporter=json --outputFile.json="$REPORT" || vitest_rc=$?
# A plain closing line for CI: 'N passed, N failed, N skipped'. A skipped test is a failure: no
# test skips itself, so a skip means its file's setup (beforeAll) failed and the test never ran;
# those are counted as failed and named.
skip_rc=0
node -e '
  const fs = require("node:fs")
  let r
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")) } catch { console.log("vitest wrote no report"); process.exit(0) }
  const notRun = []
  for (const f of r.testResults) for (const a of f.assertionResults)
    if (a.status !== "passed" && a.status !== "failed") notRun.push(`${f.name.replace(process.cwd() + "/", "")}: ${a.fullName}`)
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + notRun.length} failed (${notRun.length} of them did not run), 0 skipped`)
  if (notRun.length > 0) {
    console.log("did not run (setup failed or skipped; a missing feature is a failure):")
    for (const n of notRun) console.log(`  ${n}`)
    process.exit(1)
  }
' "$REPORT" || skip_rc=$?
if [ "$skip_rc" != 0 ]; then echo "tests: FAILED (tests that did not run)"; status=1; fi
if [ "$vitest_rc" != 0 ]; then echo "tests: FAILED (vitest exit $vitest_rc)"; status=1; fi

echo "== tests on Node 24 (the packaged runtime): protocol, routing, store, frontends"
if bash scripts/test-node24.sh; then echo "node 24 tests: ok"; else echo "node 24 tests: FAILED"; status=1; fi

exit "$status"
