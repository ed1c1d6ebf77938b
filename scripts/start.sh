#!/usr/bin/env bash
# Install doveroute's dependencies and start the daemon in the foreground on the embedded SQLite
# store with the example config (config/doveroute.json). Stop it with Ctrl-C or SIGTERM.
#
#   npm start                         # as root: /var/lib/doveroute, /run/doveroute
#   npm start -- --config FILE ...    # any `doveroute serve` flags
#
# Not root: the store and socket go under ./.data/ instead (DOVEROUTE_* env overrides).
# As root with the example config, a socket group that does not exist yet (`dovecot` before
# Dovecot is installed) falls back to root's group, said in the log; the group is never created
# (Dovecot's package creates its own `dovecot` user and group).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "doveroute: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
echo "doveroute: building the bundle" >&2
npm run --silent build

has_config=no
for a in "$@"; do case "$a" in --config|--config=*) has_config=yes ;; esac; done

if [ "$(id -u)" -eq 0 ]; then
  # the store directory is private (it lists every user); an existing one keeps its mode
  [ -d /var/lib/doveroute ] || install -d -m 0700 /var/lib/doveroute
  # the sockets' own modes decide who connects; the directory only needs to be passable
  [ -d /run/doveroute ] || install -d -m 0755 /run/doveroute
  if getent group dovecot >/dev/null; then chgrp dovecot /run/doveroute; fi
  if [ "$has_config" = no ]; then
    # each socket of the example config whose group is missing: SECTION GROUP per line
    while read -r section group; do
      var="DOVEROUTE_$(echo "$section" | tr '[:lower:]' '[:upper:]')_GROUP"
      if [ -n "${!var:-}" ]; then
        echo "doveroute: $section socket group ${!var} (from $var)" >&2
      elif getent group "$group" >/dev/null; then
        echo "doveroute: $section socket group $group" >&2
      else
        fallback=$(id -gn)
        export "$var=$fallback"
        echo "doveroute: warning: group $group does not exist (Dovecot not installed yet?): the $section socket gets group $fallback instead, so only $fallback can use it. Install Dovecot (its package creates the group) and restart doveroute, or set $var" >&2
      fi
    done < <(node -e '
      const c = JSON.parse(require("node:fs").readFileSync("config/doveroute.json", "utf8"))
      for (const [k, v] of Object.entries(c))
        if (v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.group === "string") console.log(k, v.group)')
  fi
else
  mkdir -p .data
  export DOVEROUTE_STORE="${DOVEROUTE_STORE:-sqlite:$PWD/.data/doveroute.db}"
  export DOVEROUTE_DICT_SOCKET="${DOVEROUTE_DICT_SOCKET:-$PWD/.data/dict.sock}"
  export DOVEROUTE_DICT_OWNER="${DOVEROUTE_DICT_OWNER:-$(id -un)}"
  export DOVEROUTE_DICT_GROUP="${DOVEROUTE_DICT_GROUP:-$(id -gn)}"
  echo "doveroute: not root: store $DOVEROUTE_STORE, dict socket $DOVEROUTE_DICT_SOCKET" >&2
fi

if [ "$has_config" = no ]; then set -- --config config/doveroute.json "$@"; fi
exec node packages/cli/bin/doveroute.mjs serve "$@"
