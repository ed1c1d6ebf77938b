--[[
doveroute: director-shard.lua -- shard variant (16-bit shard of the user name -> backend)

The entry point of the shard variant of our Lua director passdb (written by
the doveroute project from the documented behaviour of Dovecot's example
"Lua director" scripts, not a copy of them). Like director.lua it only names
its variant and loads director-core.lua from its own directory; install both
side by side. Runs unmodified on Dovecot 2.3.19 and 2.4.1 (Lua 5.4, LuaDBI 0.7).

WHAT DIFFERS FROM director.lua (the mapping variant)
  key       crc32(seed 120254, req.user bytes) & 0xFFFF, the user's shard
  table     user_backend(backend_id, user_hash), user_hash 0..65535; a unique
            key on user_hash lets a racing first login read the winner's row
  new key   pick uniformly at random among backends with state = 0 and
            INSERT; if the INSERT fails, read again; still nothing ->
            temp_fail ("no backend with state = 0 available" when none)
  reply     proxy=y by default (proxy_flag defaults to proxy here)
  settings  director-shard.conf next to this script (2.3, or 2.4 without
            lua_settings), else the passdb's lua_settings block

TABLES, the rest of LOOKUP, SETTINGS keys and DOVECOT CONFIG: as described
in director.lua's header, with director-shard.lua as the script. For
instance on 2.4 with PostgreSQL (nopassword is safe beside proxy_flag = proxy):
  passdb lua {
    lua_file = /etc/dovecot/director-shard.lua
    fields {
      nopassword = yes
    }
    lua_settings {
      driver = PostgreSQL
      database = mail
      host = 127.0.0.1
      proxy_flag = proxy
    }
  }

WHO CHECKS THE PASSWORD: this script cannot see Dovecot's `fields { }`.
  With nopassword (there or in extra_fields) only the backend checks the
  password, which is safe because this variant proxies every login (keep
  proxy_flag = proxy). Set proxy_flag = proxy_maybe and a user whose shard
  maps to this server would log in locally with ANY password: the script
  refuses nopassword then; put an authenticating passdb first instead.
]]

local VARIANT = "shard" -- "mapping" in director.lua, "shard" in director-shard.lua

-- This script's own path (Dovecot loads it by absolute path): the core is
-- loaded from the same directory, and the settings file is named after it.
local SCRIPT_PATH = (debug.getinfo(1, "S").source or ""):match("^@(.+)$")
local DIR = SCRIPT_PATH and SCRIPT_PATH:match("^(.*/)") or ""
dofile(DIR .. "director-core.lua")(VARIANT, SCRIPT_PATH)
