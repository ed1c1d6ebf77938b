#!/usr/bin/env bash
# The test command (npm test, .ci/run): dependencies, typecheck, all vitest projects, then the unit
# projects again on the Node 24 runtime the Debian package carries (scripts/test-node24.sh).
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
REPORT24=$(mktemp /tmp/dvr-vitest24.XXXXXX.json)
trap 'rm -f "$REPORT" "$REPORT24"' EXIT
vitest_rc=0
npx vitest run "$@" --reporter=default --reporter=json --outputFile.json="$REPORT" || vitest_rc=$?
if [ "$vitest_rc" != 0 ]; then echo "tests: FAILED (vitest exit $vitest_rc)"; status=1; fi

reports=("node$(node -p 'process.versions.node.split(".")[0]')=$REPORT")
if [ $# -eq 0 ]; then
  echo "== tests on Node 24 (the packaged runtime): protocol, routing, store, frontends"
  node24_rc=0
  bash scripts/test-node24.sh --project protocol --project routing --project store --project frontends \
    --reporter=default --reporter=json --outputFile.json="$REPORT24" || node24_rc=$?
  if [ "$node24_rc" != 0 ]; then echo "node 24 tests: FAILED (vitest exit $node24_rc)"; status=1; fi
  reports+=("node24=$REPORT24")
fi

# The closing line for CI, over both runs: 'N passed, N failed, 0 skipped'. A test that did not
# run (skipped, or its file's setup failed) counts as failed and is named.
node scripts/test-summary.mjs "${reports[@]}" || status=1
exit "$status"
