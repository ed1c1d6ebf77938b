#!/usr/bin/env bash
# Installs and starts everything doveroute's test suite needs; idempotent, non-interactive
# (works with CI=true and no stdin). Run as root.
#
#   1. Debian packages (Dovecot 2.3, Lua/DBI, SQLite, PostgreSQL, MariaDB, Postfix, debootstrap,
#      zstd, PAM headers), installed only when missing, with no service started by the install.
#   2. PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") and MariaDB on 127.0.0.1:3306
#      (root without password, database "test"), started when down.
#   3. The Dovecot 2.4.1 trixie chroot (scripts/mkroot24.sh; cached, skipped when up to date).
#   4. npm ci when node_modules is missing or older than package-lock.json.
#   5. For the Debian package and the Node 24 run: the bare bookworm/trixie roots
#      (scripts/mkroot-bare.sh) and the Node 24 runtime with its addons (scripts/package-runtime.sh),
#      both cached in CACHE_DIR.
#   7. Every native module (better-sqlite3, unix-dgram, node-linux-pam) loads in this Node and is
#      newer than the headers it was built against; otherwise `npm rebuild <module>` (e.g. npm ci
#      ran before libpam0g-dev was installed, or Node was upgraded). Still broken = error.
#
# Env: DOVEROUTE_DOVECOT24_ROOT, DOVEROUTE_CACHE_DIR (chroot and cache locations),
#      DEBIAN_MIRROR (for debootstrap).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
export DEBIAN_FRONTEND=noninteractive
exec </dev/null

PKGS=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-submissiond dovecot-auth-lua
      lua-dbi-sqlite3 lua-dbi-postgresql lua-dbi-mysql sqlite3 lua5.4 debootstrap zstd
      postgresql mariadb-server mariadb-client postfix
      libpam0g-dev    # libpam0g-dev: headers for the node-linux-pam build (npm ci; auth_mode=pam)
      systemd util-linux strace   # systemd-analyze/-sysusers, setpriv/unshare, strace: tests of config/systemd/
      fail2ban        # fail2ban-regex checks config/fail2ban/doveroute.conf (cli tests); the service never starts
      prometheus      # promtool checks /metrics and contrib/prometheus/ (e2e ops-metrics); the service never starts
      build-essential python3   # node-gyp builds of the native modules (step 7)
      dpkg-dev g++ make)      # npm run package: dpkg-shlibdeps, strip; node-gyp for the Node 24 addons
PG_HOST=127.0.0.1 PG_PORT=5432
MY_HOST=127.0.0.1 MY_PORT=3306
ROOT24=${DOVEROUTE_DOVECOT24_ROOT:-/var/tmp/doveroute/dovecot24-root}
CACHE_DIR=${DOVEROUTE_CACHE_DIR:-/var/cache/doveroute}

T0=$(date +%s)
say() { echo "install-deps: $*"; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
IS_ROOT=false; [ "$(id -u)" = 0 ] && IS_ROOT=true
need_root() { # what, command
  $IS_ROOT || die "$1 — not root, cannot fix it. Run: $2"
}

# Wait up to $1 seconds for command "${@:2}" to succeed.
wait_for() {
  local secs=$1; shift
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

# System Dovecot / Postfix / Prometheus must never run: tests use their own instances on free ports
# (only promtool of the prometheus package is used).
stop_system_mail_services() {
  local pidfile pid
  for pidfile in /run/dovecot/master.pid /var/spool/postfix/pid/master.pid /run/prometheus/prometheus.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
    $IS_ROOT || die "a system service (pid $pid, $pidfile) is running — stop it as root"
    case "$pidfile" in
      /run/dovecot/*) say "stopping system Dovecot (pid $pid)"; doveadm stop >/dev/null 2>&1 || kill "$pid" ;;
      /run/prometheus/*) say "stopping system Prometheus (pid $pid)"; kill "$pid" ;;
      *) say "stopping system Postfix (pid $pid)"; postfix stop >/dev/null 2>&1 || kill "$pid" ;;
    esac
    wait_for 10 sh -c "! kill -0 $pid" || say "warning: pid $pid still running"
  done
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl disable --now dovecot.service postfix.service prometheus.service >/dev/null 2>&1 || true
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  need_root "missing Debian packages: ${missing[*]}" \
    "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  say "installing missing packages: ${missing[*]}"
  # Postfix: no configuration, no questions.
  printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
                'postfix postfix/mailname string localhost' | debconf-set-selections
  # No package may start a service (policy-rc.d, honoured by invoke-rc.d and deb-systemd-invoke).
  POLICY=/usr/sbin/policy-rc.d
  POLICY_BACKUP=""
  policy_rc=0
  if [ -x "$POLICY" ]; then "$POLICY" dummy start >/dev/null 2>&1 || policy_rc=$?; fi
  if [ "$policy_rc" != 101 ]; then
    if [ -e "$POLICY" ]; then POLICY_BACKUP=$(mktemp); cp -p "$POLICY" "$POLICY_BACKUP"; fi
    printf '#!/bin/sh\n# doveroute install-deps: no service starts during package installs\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    restore_policy() {
      if [ -n "$POLICY_BACKUP" ]; then mv -f "$POLICY_BACKUP" "$POLICY"; else rm -f "$POLICY"; fi
    }
    trap restore_policy EXIT
  fi
  APT_LOG=$(mktemp /tmp/dvr-apt.XXXXXX)
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"; } >"$APT_LOG" 2>&1; then
    tail -n 40 "$APT_LOG" >&2
    die "apt-get install failed (full log: $APT_LOG)"
  fi
  rm -f "$APT_LOG"
  if [ -n "$(type -t restore_policy)" ]; then restore_policy; trap - EXIT; fi
  say "packages installed ($(( $(date +%s) - T0 )) s)"
else
  say "Debian packages: all present"
fi
stop_system_mail_services

# ---------------------------------------------------------------------------------------------
# 2. PostgreSQL: 127.0.0.1:5432, trust, database "test"
# ---------------------------------------------------------------------------------------------
pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
pg_sql() { psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

if ! pg_up; then
  need_root "PostgreSQL is not answering on $PG_HOST:$PG_PORT" \
    "sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql | sort -V | tail -n1) main start"
  PGVER=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$PGVER" ] || die "no PostgreSQL cluster configured under /etc/postgresql (try: pg_createcluster <version> main)"
  say "starting PostgreSQL $PGVER/main"
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
  wait_for 30 pg_up || die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
fi
if ! pg_sql -tAc 'select 1' >/dev/null 2>&1; then
  need_root "PostgreSQL refuses user postgres without a password on $PG_HOST:$PG_PORT" \
    "add 'host all all 127.0.0.1/32 trust' at the top of pg_hba.conf and reload"
  PGVER=$(ls /etc/postgresql | sort -V | tail -n1)
  HBA=/etc/postgresql/$PGVER/main/pg_hba.conf
  say "configuring trust auth for local connections in $HBA"
  { printf '%s\n' '# doveroute tests: trust on loopback' 'local all all trust' \
      'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'; cat "$HBA"; } >"$HBA.new"
  mv "$HBA.new" "$HBA"
  chown postgres:postgres "$HBA"
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main reload
  wait_for 10 pg_sql -tAc 'select 1' || die "PostgreSQL still refuses postgres@$PG_HOST without password"
fi
if [ "$(pg_sql -tAc "select 1 from pg_database where datname = 'test'")" != 1 ]; then
  pg_sql -c 'CREATE DATABASE test'
  say "PostgreSQL: created database test"
fi
say "PostgreSQL: up on $PG_HOST:$PG_PORT ($(pg_sql -tAc 'show server_version'))"

# ---------------------------------------------------------------------------------------------
# 3. MariaDB: 127.0.0.1:3306, root without password, database "test"
# ---------------------------------------------------------------------------------------------
my_sql() { mariadb --protocol=tcp -h "$MY_HOST" -P "$MY_PORT" -uroot --connect-timeout=3 "$@"; }
my_up() { mariadb-admin --protocol=tcp -h "$MY_HOST" -P "$MY_PORT" -uroot --connect-timeout=2 ping 2>&1 | grep -q -e 'is alive' -e 'Access denied'; }

if ! my_up; then
  need_root "MariaDB is not answering on $MY_HOST:$MY_PORT" \
    "sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
  say "starting MariaDB"
  install -d -o mysql -g mysql -m 755 /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for 60 my_up || die "MariaDB did not come up on $MY_HOST:$MY_PORT"
fi
if ! my_sql -e 'select 1' >/dev/null 2>&1; then
  need_root "MariaDB refuses root without a password on $MY_HOST:$MY_PORT" \
    "sudo mariadb -e \"ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket\""
  say "MariaDB: allowing root without password on $MY_HOST"
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  my_sql -e 'select 1' >/dev/null || die "MariaDB still refuses root@$MY_HOST without password"
fi
my_sql -e 'CREATE DATABASE IF NOT EXISTS test'
say "MariaDB: up on $MY_HOST:$MY_PORT ($(my_sql -N -e 'select version()'))"

# ---------------------------------------------------------------------------------------------
# 4. Dovecot 2.4.1 chroot
# ---------------------------------------------------------------------------------------------
if $IS_ROOT; then
  bash "$REPO/scripts/mkroot24.sh" "$ROOT24" "$CACHE_DIR"
elif [ -x "$ROOT24/usr/sbin/dovecot" ]; then
  say "Dovecot 2.4 chroot present at $ROOT24 (not root: recipe not re-checked)"
else
  die "Dovecot 2.4 chroot missing at $ROOT24 — not root, cannot build it. Run: sudo bash scripts/mkroot24.sh $ROOT24 $CACHE_DIR"
fi

# ---------------------------------------------------------------------------------------------
# 5. node_modules
# ---------------------------------------------------------------------------------------------
if [ ! -d node_modules ] || [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "running npm ci (node_modules missing or older than package-lock.json)"
  npm ci --no-audit --no-fund
else
  say "node_modules up to date"
fi

# ---------------------------------------------------------------------------------------------
# 6. Debian package test inputs: bare roots, Node 24 runtime and addons (cached)
# ---------------------------------------------------------------------------------------------
if $IS_ROOT; then
  for suite in bookworm trixie; do
    bash "$REPO/scripts/mkroot-bare.sh" "$suite" "$CACHE_DIR" >/dev/null
  done
  say "bare bookworm and trixie roots: cached in $CACHE_DIR"
fi
DOVEROUTE_CACHE_DIR=$CACHE_DIR bash "$REPO/scripts/package-runtime.sh"

# ---------------------------------------------------------------------------------------------
# 7. Native modules match this Node and the installed headers
# ---------------------------------------------------------------------------------------------
# module  Debian package whose headers it is compiled against (empty: only Node's own headers)
NATIVE=("better-sqlite3:" "unix-dgram:" "node-linux-pam:libpam0g-dev")
native_loads() { node -e 'require(process.argv[1])' "$1" >/dev/null 2>&1; }
native_file() { find "node_modules/$1" -path '*/node_modules' -prune -o -name '*.node' -print 2>/dev/null | head -n1; }
for entry in "${NATIVE[@]}"; do
  mod=${entry%%:*} hdr=${entry#*:}
  [ -d "node_modules/$mod" ] || die "node_modules/$mod is missing (package.json lists it): run npm ci"
  why=""
  built=$(native_file "$mod")
  if [ -z "$built" ]; then why="no compiled .node file (its build failed or never ran)"
  elif ! native_loads "$mod"; then why="it does not load in $(node --version)"
  elif [ -n "$hdr" ]; then
    # the package's file list is touched when dpkg installs or upgrades it
    list=$(ls /var/lib/dpkg/info/"$hdr".list /var/lib/dpkg/info/"$hdr":*.list 2>/dev/null | head -n1 || true)
    if [ -n "$list" ] && [ "$list" -nt "$built" ]; then why="built before $hdr was installed or upgraded"; fi
  fi
  if [ -n "$why" ]; then
    say "rebuilding $mod: $why"
    npm rebuild "$mod" --foreground-scripts >/tmp/dvr-rebuild-"$mod".log 2>&1 || { tail -n 30 /tmp/dvr-rebuild-"$mod".log >&2; die "npm rebuild $mod failed (log: /tmp/dvr-rebuild-$mod.log)"; }
    built=$(native_file "$mod")
    [ -n "$built" ] && native_loads "$mod" || { tail -n 30 /tmp/dvr-rebuild-"$mod".log >&2; die "$mod still does not load after npm rebuild (log: /tmp/dvr-rebuild-$mod.log)"; }
    say "$mod: rebuilt ($built)"
  else
    say "$mod: built and loads"
  fi
done

say "done in $(( $(date +%s) - T0 )) s"
