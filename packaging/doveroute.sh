#!/bin/sh
# /usr/bin/doveroute: the doveroute bundle on the Node.js runtime the package carries.
exec /usr/lib/doveroute/bin/node /usr/lib/doveroute/doveroute.mjs "$@"
