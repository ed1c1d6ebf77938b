--[[
doveroute: director.lua -- mapping variant (user name -> backend)

A Dovecot Lua passdb that routes each user to a backend and remembers the
choice in a SQL table. Written by the doveroute project from the documented
behaviour of Dovecot's example "Lua director" scripts; it is not a copy of
them. director.lua and director-shard.lua are thin entry points: the code
is in director-core.lua, which must sit in the same directory (it is loaded
relative to this script's own path, so no LUA_PATH is needed).

Runs unmodified on Dovecot 2.3.19 and 2.4.1 (Lua 5.4, LuaDBI 0.7).

TABLES (the published scripts' own)
  backends(id, hostname, hostip, state)   state 0 = may receive new users
  user_backend(backend_id, user)           mapping variant
  user_backend(backend_id, user_hash)      shard variant, user_hash 0..65535
  A unique key on user_backend.user / user_hash is recommended: it makes a
  racing first login fail its INSERT, and the loser then reads the winner's row.

LOOKUP
  key = req.user (mapping) or crc32(seed 120254, req.user bytes) & 0xFFFF (shard)
  1. read the key's row from user_backend (joined to backends)
  2. none, or only a row naming a deleted backend: pick uniformly at random
     among backends with state = 0, INSERT (or UPDATE the dead row, so the
     key never has two rows); if that fails, read again (another login may
     have won a race);
     still nothing -> internal failure (temp_fail). No state = 0 backend ->
     internal failure "no backend with state = 0 available".
  3. reply (a new table per request):
       proxy_maybe=y (mapping) / proxy=y (shard)   -- see proxy_flag
       host=<hostname>, hostip=<hostip> only when not NULL/empty,
       plus the configured extra_fields.
  A failed statement on a lost connection reconnects once and retries.

SETTINGS -- one rule, the same on 2.3 and 2.4:
  * Dovecot 2.4 passes the passdb's `lua_settings { }` block to
    script_init(args). If that block has at least one key, it is the whole
    configuration.
  * Otherwise (Dovecot 2.3, which calls script_init() without arguments and
    rejects extra passdb args, or 2.4 without lua_settings) the settings are
    read from a file next to the script: the script's path with ".lua"
    replaced by ".conf" (director.lua -> director.conf,
    director-shard.lua -> director-shard.conf). To run two configurations,
    symlink the script under another name and give it its own .conf file.
    The file is read by the auth process (user dovecot) and by the
    auth-workers (root): make it mode 0640, group dovecot.
    Format: one `key = value` per line; blank lines and lines starting with
    `#` are ignored; a value may be wrapped in double quotes.
  Keys:
    driver        SQLite3 | PostgreSQL | MySQL (required; case-insensitive)
    database      SQLite: path of the database file; otherwise database name (required)
    user, password, host, port   PostgreSQL / MySQL connection (optional)
    extra_fields  space-separated reply fields, `key=value` or bare `key`
                  (bare = flag, sent as key=y), e.g. "nopassword port=143".
                  nopassword needs proxy_flag = proxy (refused at start otherwise);
                  proxy, proxy_maybe, host and hostip are reserved (refused).
    proxy_flag    field used as the proxy flag; default proxy_maybe (mapping)
                  or proxy (shard); "none" sends no proxy flag.
    busy_timeout_msecs  SQLite only: wait for a locked database (default 5000)
  Unknown keys or a missing/unreadable settings file are fatal at start.
  The database is connected lazily on the first lookup of each process.

DOVECOT CONFIG
  2.3:  passdb {
          driver = lua
          args = file=/etc/dovecot/director.lua
        }
        (settings in /etc/dovecot/director.conf)
  2.4:  passdb lua {
          lua_file = /etc/dovecot/director.lua
          lua_settings {
            driver = SQLite3
            database = /var/lib/dovecot/director.db
            proxy_flag = proxy
          }
          fields {
            nopassword = yes
          }
        }
  WHO CHECKS THE PASSWORD: this script cannot see Dovecot's `fields { }`.
    nopassword there (or in extra_fields) is safe only with proxy_flag =
    proxy: every login is proxied and the backend checks the password. With
    proxy_maybe (the mapping default) a user whose backend is this server
    logs in locally with ANY password. Keep proxy_flag = proxy next to it, or
    drop nopassword and put an authenticating passdb first.
]]

local VARIANT = "mapping" -- "mapping" in director.lua, "shard" in director-shard.lua

-- This script's own path (Dovecot loads it by absolute path): the core is
-- loaded from the same directory, and the settings file is named after it.
local SCRIPT_PATH = (debug.getinfo(1, "S").source or ""):match("^@(.+)$")
local DIR = SCRIPT_PATH and SCRIPT_PATH:match("^(.*/)") or ""
dofile(DIR .. "director-core.lua")(VARIANT, SCRIPT_PATH)
