#!/usr/bin/env bash
# Install doveroute's dependencies and start the daemon in the foreground on the embedded SQLite
# store with the example config (config/doveroute.json). Stop it with Ctrl-C or SIGTERM.
#
#   npm start                         # as root: /var/lib/doveroute, /run/doveroute
#   npm start -- --config FILE ...    # any `doveroute serve` flags
#
# Not root: the store and socket go under ./.data/ instead (DOVEROUTE_* env overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "doveroute: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
echo "doveroute: building the bundle" >&2
npm run --silent build

if [ "$(id -u)" -eq 0 ]; then
  install -d -m 0755 /var/lib/doveroute
  install -d -m 0755 /run/doveroute
  if getent group dovecot >/dev/null; then chgrp dovecot /run/doveroute; fi
else
  mkdir -p .data
  export DOVEROUTE_STORE="${DOVEROUTE_STORE:-sqlite:$PWD/.data/doveroute.db}"
  export DOVEROUTE_DICT_SOCKET="${DOVEROUTE_DICT_SOCKET:-$PWD/.data/dict.sock}"
  export DOVEROUTE_DICT_OWNER="${DOVEROUTE_DICT_OWNER:-$(id -un)}"
  export DOVEROUTE_DICT_GROUP="${DOVEROUTE_DICT_GROUP:-$(id -gn)}"
  echo "doveroute: not root: store $DOVEROUTE_STORE, dict socket $DOVEROUTE_DICT_SOCKET" >&2
fi

has_config=no
for a in "$@"; do [ "$a" = "--config" ] && has_config=yes; done
if [ "$has_config" = no ]; then set -- --config config/doveroute.json "$@"; fi
exec node packages/cli/bin/doveroute.mjs serve "$@"
