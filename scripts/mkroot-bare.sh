#!/usr/bin/env bash
# Build (or find in cache) a bare Debian root (debootstrap --variant=minbase, nothing added) as a
# zstd tarball, for the Debian package test (packages/e2e/test/package-deb.test.ts), which unpacks
# a fresh copy per run and installs the package into it. Needs root, debootstrap, zstd and
# Debian's mirror (only when not cached).
#
# usage: mkroot-bare.sh SUITE [CACHE_DIR]     SUITE: bookworm (Debian 12) or trixie (Debian 13)
#   CACHE_DIR  tarball cache (default $DOVEROUTE_CACHE_DIR or /var/cache/doveroute)
# Prints the tarball path on stdout (log lines go to stderr). The tarball is named after the suite
# and a hash of this script, so a changed recipe builds a new one (older ones are deleted).
set -euo pipefail

SUITE=${1:?usage: mkroot-bare.sh SUITE [CACHE_DIR]}
CACHE_DIR=${2:-${DOVEROUTE_CACHE_DIR:-/var/cache/doveroute}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { echo "mkroot-bare: $*" >&2; }
die() { echo "mkroot-bare: ERROR: $*" >&2; exit 1; }

case "$SUITE" in bookworm|trixie) ;; *) die "unsupported suite '$SUITE' (bookworm or trixie)" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap); try: sudo bash $0 $SUITE $CACHE_DIR"

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HASH=$( { printf '%s\n' "$SUITE"; cat "$SELF"; } | sha256sum | cut -c1-16)
CACHE="$CACHE_DIR/bare-$SUITE-$HASH.tar.zst"

if [ -f "$CACHE" ]; then
  log "cached: $CACHE"
  echo "$CACHE"
  exit 0
fi

command -v debootstrap >/dev/null || die "debootstrap is missing; install it: apt-get install -y debootstrap"
command -v zstd >/dev/null || die "zstd is missing; install it: apt-get install -y zstd"
mkdir -p "$CACHE_DIR"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/dvr-bare-$SUITE.XXXXXX")
trap 'rm -rf --one-file-system "$WORK" "$WORK.log" "$CACHE.part" 2>/dev/null || true' EXIT

start=$(date +%s)
log "debootstrap --variant=minbase $SUITE ($MIRROR)"
debootstrap --variant=minbase "$SUITE" "$WORK" "$MIRROR" >"$WORK.log" 2>&1 || {
  tail -n 30 "$WORK.log" >&2
  die "debootstrap $SUITE failed (is $MIRROR reachable?)"
}
# Nothing else: no package lists (apt installs a local .deb whose dependencies are present
# without them), no policy-rc.d (the package test adds its own).
rm -rf "$WORK"/var/lib/apt/lists/* "$WORK"/var/cache/apt/archives/*.deb
chmod 1777 "$WORK/tmp"
find "$CACHE_DIR" -maxdepth 1 -name "bare-$SUITE-*.tar.zst" ! -name "$(basename "$CACHE")" -delete
tar -C "$WORK" --numeric-owner -cf - . | zstd -q -T0 -10 -o "$CACHE.part" -f
mv -f "$CACHE.part" "$CACHE"
log "built $CACHE ($(du -h "$CACHE" | cut -f1)) in $(( $(date +%s) - start )) s"
echo "$CACHE"
