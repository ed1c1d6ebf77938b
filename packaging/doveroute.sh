#!/bin/sh
# /usr/bin/doveroute: the doveroute bundle on the Node.js runtime the package carries.
# V8's compiled code of the bundle is kept between runs in a private per-user cache (Node 24's
# NODE_COMPILE_CACHE): about a third of an admin command's start-up. Skipped where it cannot be made.
if [ -z "${NODE_COMPILE_CACHE+x}" ]; then
  cache=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/doveroute/node-compile-cache
  if mkdir -p "$cache" 2>/dev/null && chmod 0700 "$cache" 2>/dev/null; then
    NODE_COMPILE_CACHE=$cache
    export NODE_COMPILE_CACHE
  fi
fi
exec /usr/lib/doveroute/bin/node /usr/lib/doveroute/doveroute.mjs "$@"
