#!/usr/bin/env bash
# Build (or restore from cache) a minimal Debian 13 (trixie) chroot with Dovecot 2.4 for the
# end-to-end tests. Needs root, debootstrap, zstd and Debian's mirror (only when not cached).
#
# usage: mkroot24.sh [ROOT] [CACHE_DIR]
#   ROOT       chroot root   (default $DOVEROUTE_DOVECOT24_ROOT or /var/tmp/doveroute/dovecot24-root)
#   CACHE_DIR  tarball cache (default $DOVEROUTE_CACHE_DIR or /var/cache/doveroute)
#
# The recipe hash (package list + this script's content) names the cached tarball and is stored in
# $ROOT/.doveroute-recipe; a root whose marker matches is kept as it is, any other root is rebuilt.
# No /dev or /proc bind mounts are made (removing a root with /dev bound would wipe the host's /dev).
set -euo pipefail

ROOT=${1:-${DOVEROUTE_DOVECOT24_ROOT:-/var/tmp/doveroute/dovecot24-root}}
CACHE_DIR=${2:-${DOVEROUTE_CACHE_DIR:-/var/cache/doveroute}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=trixie
PKGS="dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-auth-lua lua-dbi-sqlite3 lua-dbi-postgresql lua-dbi-mysql sqlite3"
MARKER=.doveroute-recipe

log() { echo "mkroot24: $*"; }
die() { echo "mkroot24: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot/debootstrap); try: sudo bash $0 $ROOT $CACHE_DIR"
case "$ROOT" in /|"") die "refusing ROOT='$ROOT'" ;; esac
ROOT=${ROOT%/}

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HASH=$( { printf '%s\n' "$SUITE" "$PKGS"; cat "$SELF"; } | sha256sum | cut -c1-16)
CACHE="$CACHE_DIR/trixie-dovecot24-$HASH.tar.zst"

# Refuse to delete a directory that has anything mounted below it.
assert_unmounted() {
  local dir=$1
  if awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    die "something is mounted under $dir; unmount it first (see /proc/mounts)"
  fi
}

if [ -x "$ROOT/usr/sbin/dovecot" ] && [ "$(cat "$ROOT/$MARKER" 2>/dev/null || true)" = "$HASH" ]; then
  log "root up to date: $ROOT (recipe $HASH)"
  exit 0
fi

if [ -e "$ROOT" ]; then
  log "root $ROOT does not match recipe $HASH; removing it"
  assert_unmounted "$ROOT"
  rm -rf --one-file-system "$ROOT"
fi

mkdir -p "$(dirname "$ROOT")"
WORK="$ROOT.tmp.$$"
assert_unmounted "$WORK"
rm -rf --one-file-system "$WORK"
trap 'rm -rf --one-file-system "$WORK" 2>/dev/null || true' EXIT
mkdir -p "$WORK"

start=$(date +%s.%N)
if [ -f "$CACHE" ]; then
  command -v zstd >/dev/null || die "zstd is missing; install it: apt-get install -y zstd"
  zstd -dc "$CACHE" | tar -C "$WORK" --numeric-owner -xf -
  [ -x "$WORK/usr/sbin/dovecot" ] || die "cache $CACHE did not contain usr/sbin/dovecot"
  how="restored from $CACHE"
else
  command -v debootstrap >/dev/null || die "debootstrap is missing; install it: apt-get install -y debootstrap"
  command -v zstd >/dev/null || die "zstd is missing; install it: apt-get install -y zstd"
  log "debootstrap --variant=minbase $SUITE $WORK $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$WORK" "$MIRROR" >"$WORK.debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK.debootstrap.log" >&2; rm -f "$WORK.debootstrap.log"
    die "debootstrap failed (is $MIRROR reachable?)"
  }
  rm -f "$WORK.debootstrap.log"
  cat >"$WORK/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SRC
  # No service may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d"
  chmod 755 "$WORK/usr/sbin/policy-rc.d"
  log "installing in chroot: $PKGS"
  APT_LOG=$(mktemp /tmp/dvr-mkroot-apt.XXXXXX)
  if ! chroot "$WORK" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C \
      sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS && apt-get clean" \
      >"$APT_LOG" 2>&1; then
    tail -n 30 "$APT_LOG" >&2
    die "apt-get install in the chroot failed (log: $APT_LOG)"
  fi
  rm -f "$APT_LOG"
  [ -x "$WORK/usr/sbin/dovecot" ] || die "dovecot was not installed in the chroot"
  rm -rf "$WORK"/var/lib/apt/lists/*
  chroot "$WORK" sh -c 'getent group vmail >/dev/null || groupadd -g 5000 vmail;
    getent passwd vmail >/dev/null || useradd -u 5000 -g 5000 -d /nonexistent -s /usr/sbin/nologin vmail'
  chmod 1777 "$WORK/tmp"
  mkdir -p "$CACHE_DIR"
  # Drop tarballs of older recipes.
  find "$CACHE_DIR" -maxdepth 1 -name 'trixie-dovecot24-*.tar.zst' ! -name "$(basename "$CACHE")" -delete
  tar -C "$WORK" --numeric-owner -cf - . | zstd -q -T0 -10 -o "$CACHE.part" -f
  mv -f "$CACHE.part" "$CACHE"
  how="built and cached to $CACHE ($(du -h "$CACHE" | cut -f1))"
fi

echo "$HASH" >"$WORK/$MARKER"
mv "$WORK" "$ROOT"
trap - EXIT
end=$(date +%s.%N)
log "$how -> $ROOT in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s; $(chroot "$ROOT" dovecot --version)"
