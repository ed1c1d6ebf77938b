#!/usr/bin/env bash
# The unit projects (protocol, routing, store, frontends; more with arguments) on the Node 24 LTS
# runtime the Debian package carries (packaging/node-runtime.env), with the native addons compiled
# for it in dist/runtime/node_modules (scripts/package-runtime.sh): scripts/node24-natives.mjs
# points better-sqlite3, unix-dgram and node-linux-pam there, so the repository's node_modules
# stay built for the Node that ran npm ci (20.19+).
#
# usage: bash scripts/test-node24.sh [vitest args…]   (default: the four unit projects)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

bash scripts/package-runtime.sh
NODE24_BIN=$REPO/dist/runtime/node/bin
# child processes that run `node` (tests spawning the CLI) get Node 24 too
export PATH="$NODE24_BIN:$PATH"
export NODE_OPTIONS="--import $REPO/scripts/node24-natives.mjs${NODE_OPTIONS:+ $NODE_OPTIONS}"

# the preload really takes effect: the addon comes from dist/runtime and loads in this Node
node --input-type=module -e '
  const Database = (await import("better-sqlite3")).default
  new Database(":memory:").prepare("select 1").get()
  const where = (await import("node:url")).fileURLToPath(import.meta.resolve("better-sqlite3"))
  if (!where.startsWith(process.cwd() + "/dist/runtime/")) throw new Error(`better-sqlite3 resolved to ${where}`)
  console.log(`test-node24: node ${process.version}, better-sqlite3 from ${where}`)
'

if [ $# -eq 0 ]; then set -- --project protocol --project routing --project store --project frontends; fi
exec node node_modules/vitest/vitest.mjs run "$@"
