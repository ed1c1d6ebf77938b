#!/usr/bin/env bash
# The test command (npm test, .ci/run): dependencies, typecheck, all vitest projects.
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

echo "== tests: vitest run (all projects)"
REPORT=$(mktemp /tmp/dvr-vitest.XXXXXX.json)
trap 'rm -f "$REPORT"' EXIT
vitest_rc=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$REPORT" || vitest_rc=$?
# A plain closing line for CI: 'N passed, N failed, N skipped'.
node -e '
  const fs = require("node:fs")
  let r
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")) } catch { console.log("vitest wrote no report"); process.exit(0) }
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)
' "$REPORT" || true
if [ "$vitest_rc" != 0 ]; then echo "tests: FAILED (vitest exit $vitest_rc)"; status=1; fi

echo "== tests on Node 24 (the packaged runtime): protocol, routing, store, frontends"
if bash scripts/test-node24.sh; then echo "node 24 tests: ok"; else echo "node 24 tests: FAILED"; status=1; fi

exit "$status"
