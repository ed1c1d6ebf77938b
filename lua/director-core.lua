--[[
doveroute: director-core.lua -- the shared code of director.lua (mapping
variant: user name -> backend) and director-shard.lua (shard variant: 16-bit
shard of the user name -> backend).

Not a passdb script by itself: director.lua and director-shard.lua are thin
entry points that load this file from their own directory and call it with
their variant and their own path (which names their settings file). Keep it
next to them (when an entry point is symlinked to another name or directory,
this file must be reachable in that directory too).

A Dovecot Lua passdb that routes each user to a backend and remembers the
choice in a SQL table. Written by the doveroute project from the documented
behaviour of Dovecot's example "Lua director" scripts; it is not a copy of
them.

Runs unmodified on Dovecot 2.3.19 and 2.4.1 (Lua 5.4, LuaDBI 0.7), without
LUA_PATH.

TABLES, LOOKUP -- see director.lua (the same text for both variants).

SETTINGS -- see director.lua (one rule on 2.3 and 2.4: the passdb's
lua_settings block when it has a key, else <entry script>.conf).
]]

return function(VARIANT, SCRIPT_PATH)
  if VARIANT ~= "mapping" and VARIANT ~= "shard" then
    error("doveroute director-core.lua: unknown variant " .. tostring(VARIANT))
  end
  local NAME = "doveroute " .. ((SCRIPT_PATH and SCRIPT_PATH:match("([^/]+)$")) or
    (VARIANT == "shard" and "director-shard.lua" or "director.lua"))


  local DBI = require "DBI"

  -- ---------------------------------------------------------------------------
  -- CRC-32 (zlib / IEEE 802.3, reflected polynomial 0xEDB88320), pure Lua 5.4.
  -- crc32(s, seed) equals zlib's crc32(seed, s): seed is a previous CRC value.

  local CRC_TABLE = {}
  for n = 0, 255 do
    local c = n
    for _ = 1, 8 do
      if c & 1 == 1 then
        c = (c >> 1) ~ 0xEDB88320
      else
        c = c >> 1
      end
    end
    CRC_TABLE[n] = c
  end

  local function crc32(s, seed)
    local c = (seed or 0) ~ 0xFFFFFFFF
    for i = 1, #s do
      c = CRC_TABLE[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8)
    end
    return (c ~ 0xFFFFFFFF) & 0xFFFFFFFF
  end

  local SHARD_SEED = 120254

  -- Shard key of a user name: the low 16 bits of crc32(user, 120254).
  -- (The published script meant a 16-bit fold but its shift makes it a no-op,
  -- so existing tables hold exactly these low 16 bits.)
  local function shard_key(user)
    return crc32(user, SHARD_SEED) & 0xFFFF
  end

  -- ---------------------------------------------------------------------------
  -- Settings

  local KNOWN_KEYS = {
    driver = true, database = true, user = true, password = true, host = true,
    port = true, extra_fields = true, proxy_flag = true, busy_timeout_msecs = true,
  }

  local DRIVERS = {
    sqlite3 = "SQLite3", sqlite = "SQLite3",
    postgresql = "PostgreSQL", postgres = "PostgreSQL", pgsql = "PostgreSQL",
    mysql = "MySQL", mariadb = "MySQL",
  }

  local function settings_file_path()
    if SCRIPT_PATH == nil then
      return nil
    end
    if SCRIPT_PATH:match("%.lua$") then
      return (SCRIPT_PATH:gsub("%.lua$", ".conf"))
    end
    return SCRIPT_PATH .. ".conf"
  end

  local function trim(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
  end

  local function read_settings_file(path)
    local f, err = io.open(path, "r")
    if f == nil then
      return nil, "cannot read settings file: " .. tostring(err)
    end
    local t, lineno = {}, 0
    for line in f:lines() do
      lineno = lineno + 1
      line = trim(line)
      if line ~= "" and line:sub(1, 1) ~= "#" then
        local k, v = line:match("^([%w_]+)%s*=%s*(.-)$")
        if k == nil then
          f:close()
          return nil, string.format("%s:%d: expected `key = value`", path, lineno)
        end
        t[k] = v:match('^"(.*)"$') or v
      end
    end
    f:close()
    return t
  end

  -- Parse "k=v k2 k3=v3" into a table; a bare key is a flag sent as key=y.
  local function parse_fields(s)
    local t = {}
    for tok in (s or ""):gmatch("%S+") do
      local k, v = tok:match("^([^=]+)=(.*)$")
      if k then
        t[k] = v
      else
        t[tok] = "y"
      end
    end
    return t
  end

  local cfg = nil -- set by script_init

  local function configure(s, source)
    for k in pairs(s) do
      if not KNOWN_KEYS[k] then
        error(string.format("%s: unknown setting '%s' in %s", NAME, tostring(k), source))
      end
    end
    local function req(k)
      local v = s[k]
      if v == nil or tostring(v) == "" then
        error(string.format(NAME .. ": setting '%s' is required (%s)", k, source))
      end
      return tostring(v)
    end
    local c = {}
    local drv = req("driver")
    c.driver = DRIVERS[drv:lower()]
    if c.driver == nil then
      error(string.format(NAME .. ": unsupported driver '%s' (%s); use SQLite3, PostgreSQL or MySQL",
        drv, source))
    end
    c.database = req("database")
    local function opt(k)
      local v = s[k]
      if v == nil or tostring(v) == "" then return nil end
      return tostring(v)
    end
    c.user, c.password, c.host, c.port = opt("user"), opt("password"), opt("host"), opt("port")
    if c.port ~= nil and not c.port:match("^%d+$") then
      error(string.format(NAME .. ": port '%s' is not a number (%s)", c.port, source))
    end
    c.busy_timeout = tonumber(opt("busy_timeout_msecs") or "5000")
    if c.busy_timeout == nil then
      error(NAME .. ": busy_timeout_msecs is not a number (" .. source .. ")")
    end
    c.extra = parse_fields(opt("extra_fields"))
    -- the routing fields this script sets itself are never extra fields: Dovecot acts on
    -- proxy_maybe even beside proxy=y, and a second host/hostip overrides the routed backend
    for k in pairs(c.extra) do
      local lk = string.lower(k)
      if lk == "proxy" or lk == "proxy_maybe" or lk == "host" or lk == "hostip" then
        error(string.format("%s: extra_fields '%s' is reserved: this script sets the routing fields " ..
          "proxy/proxy_maybe, host and hostip itself (set proxy_flag instead) (%s)", NAME, k, source))
      end
    end
    local flag = opt("proxy_flag") or (VARIANT == "shard" and "proxy" or "proxy_maybe")
    -- nopassword makes Dovecot accept any password: safe only when every login is proxied to a
    -- backend that checks it (the daemon's settings refuse the same combination)
    if c.extra["nopassword"] ~= nil and flag ~= "proxy" then
      error(string.format("%s: extra_fields nopassword with proxy_flag %s admits logins no one checks: " ..
        "a user whose backend is this Dovecot server logs in locally with any password. fix: proxy_flag = proxy, " ..
        "or drop nopassword and put an authenticating passdb first (%s)", NAME, flag, source))
    end
    if flag == "none" then flag = nil end
    c.proxy_flag = flag
    c.source = source

    -- Column quoting: `user` is reserved in PostgreSQL (and quoted everywhere).
    local col = VARIANT == "shard" and "user_hash" or "user"
    local qcol
    if c.driver == "MySQL" then
      qcol = "`" .. col .. "`"
    else
      qcol = '"' .. col .. '"'
    end
    c.sql = {
      -- live: 0 when backend_id names no backends row (not a NULL test: LuaDBI's
      -- MySQL driver on Debian 12 returned a non-nil value for NULL backends.id)
      lookup = "SELECT user_backend.backend_id AS bid, " ..
               "CASE WHEN backends.id IS NULL THEN 0 ELSE 1 END AS live, backends.hostname AS hostname, " ..
               "backends.hostip AS hostip FROM user_backend " ..
               "LEFT JOIN backends ON backends.id = user_backend.backend_id " ..
               "WHERE user_backend." .. qcol .. " = ?",
      candidates = "SELECT id, hostname, hostip FROM backends WHERE state = 0",
      insert = "INSERT INTO user_backend (backend_id, " .. qcol .. ") VALUES (?, ?)",
      -- a row naming a deleted backend is replaced in one compare-and-set statement
      replace = "UPDATE user_backend SET backend_id = ? WHERE " .. qcol .. " = ? " ..
                "AND backend_id = ? AND NOT EXISTS (SELECT 1 FROM backends WHERE id = ?)",
    }
    return c
  end

  -- ---------------------------------------------------------------------------
  -- Database connection with one reconnect per failed statement

  local db = { dbh = nil, sth = {} }

  local function disconnect()
    for _, sth in pairs(db.sth) do
      pcall(sth.close, sth)
    end
    db.sth = {}
    if db.dbh ~= nil then
      pcall(db.dbh.close, db.dbh)
    end
    db.dbh = nil
  end

  local function connect()
    disconnect()
    local ok, dbh, err
    if cfg.driver == "SQLite3" then
      ok, dbh, err = pcall(DBI.Connect, "SQLite3", cfg.database)
    elseif cfg.driver == "MySQL" then
      ok, dbh, err = pcall(DBI.Connect, "MySQL", cfg.database, cfg.user, cfg.password,
        cfg.host, cfg.port and tonumber(cfg.port) or nil)
    else
      ok, dbh, err = pcall(DBI.Connect, "PostgreSQL", cfg.database, cfg.user, cfg.password,
        cfg.host, cfg.port)
    end
    if not ok then
      return nil, tostring(dbh)
    end
    if dbh == nil then
      return nil, tostring(err)
    end
    pcall(dbh.autocommit, dbh, true)
    if cfg.driver == "SQLite3" then
      pcall(DBI.Do, dbh, "PRAGMA busy_timeout = " .. math.tointeger(cfg.busy_timeout))
    end
    local sths = {}
    for name, sql in pairs(cfg.sql) do
      local pok, sth, perr = pcall(dbh.prepare, dbh, sql)
      if not pok or sth == nil then
        for _, s in pairs(sths) do pcall(s.close, s) end
        pcall(dbh.close, dbh)
        return nil, "preparing " .. name .. " statement failed: " ..
          tostring(pok and perr or sth)
      end
      sths[name] = sth
    end
    db.dbh, db.sth = dbh, sths
    return true
  end

  -- Database errors can span lines (PostgreSQL); keep log lines whole.
  local function oneline(s)
    return (tostring(s):gsub("%s+", " "):gsub(" $", ""))
  end

  local function connection_alive()
    if db.dbh == nil then
      return false
    end
    local ok, alive = pcall(db.dbh.ping, db.dbh)
    return ok and alive == true
  end

  -- Execute prepared statement `name`. Returns an array of rows (named
  -- columns) for queries, true for other statements; or nil, error.
  -- If the statement fails and the connection turns out to be gone, reconnect
  -- once and retry. A failure on a live connection (e.g. a duplicate key) is
  -- returned as is.
  local function exec(req, name, want_rows, ...)
    for attempt = 1, 2 do
      if db.dbh == nil then
        local ok, err = connect()
        if not ok then
          return nil, "database connection failed: " .. oneline(err)
        end
      end
      local sth = db.sth[name]
      local ok, res, err = pcall(sth.execute, sth, ...)
      if ok and res then
        if not want_rows then
          return true
        end
        local rows = {}
        local fok, ferr = pcall(function()
          for row in sth:rows(true) do
            rows[#rows + 1] = row
          end
        end)
        if fok then
          return rows
        end
        err = ferr
      else
        err = ok and err or res
      end
      if attempt == 2 or connection_alive() then
        -- Re-prepare the failed statement: LuaDBI's SQLite driver otherwise
        -- reports the same error again on the statement's next execute.
        pcall(sth.close, sth)
        local pok, nsth = pcall(db.dbh.prepare, db.dbh, cfg.sql[name])
        if pok and nsth ~= nil then
          db.sth[name] = nsth
        else
          disconnect()
        end
        return nil, oneline(err)
      end
      req:log_warning(string.format("database connection lost (%s); reconnecting", oneline(err)))
      disconnect()
    end
  end

  -- ---------------------------------------------------------------------------
  -- Dovecot hooks

  function script_init(args)
    local settings, source
    if type(args) == "table" and next(args) ~= nil then
      settings, source = {}, "lua_settings"
      for k, v in pairs(args) do
        settings[k] = v
      end
    else
      source = settings_file_path()
      if source == nil then
        error(NAME .. ": cannot determine the script path to find its .conf file")
      end
      local err
      settings, err = read_settings_file(source)
      if settings == nil then
        error(NAME .. ": no lua_settings and " .. err)
      end
    end
    cfg = configure(settings, source)
    return 0
  end

  function script_deinit()
    disconnect()
  end

  local function as_id(v)
    return math.tointeger(v) or tonumber(v) or v
  end

  local function nonempty(v)
    return v ~= nil and v ~= "" and tostring(v) ~= ""
  end

  function auth_passdb_lookup(req)
    local R = dovecot.auth
    if cfg == nil then
      return R.PASSDB_RESULT_INTERNAL_FAILURE, NAME .. ": not initialised"
    end
    local user = req.user
    local key = user
    if VARIANT == "shard" then
      key = shard_key(user)
      req:log_debug(string.format("hash %s => %d", user, key))
    end

    local rows, err = exec(req, "lookup", true, key)
    if rows == nil then
      return R.PASSDB_RESULT_INTERNAL_FAILURE, "backend lookup for " .. tostring(key) .. " failed: " .. err
    end
    -- The last row naming an existing backend wins; a row naming a deleted
    -- backend (no match in the join) counts as no row and is replaced.
    local row, dead = nil, nil
    for _, r in ipairs(rows) do
      if tonumber(r.live) == 1 then
        row = r
      else
        dead = as_id(r.bid)
      end
    end

    if row == nil then
      req:log_debug("no mapping for " .. tostring(key))
      local cands
      cands, err = exec(req, "candidates", true)
      if cands == nil then
        return R.PASSDB_RESULT_INTERNAL_FAILURE, "reading backends failed: " .. err
      end
      if #cands == 0 then
        return R.PASSDB_RESULT_INTERNAL_FAILURE,
          "no backend with state = 0 available for new user " .. tostring(user)
      end
      local pick = cands[math.random(#cands)]
      local bid = as_id(pick.id)
      req:log_debug(string.format("mapping %s to %s", tostring(key), tostring(bid)))
      local ok
      if dead ~= nil then
        req:log_info(string.format("%s is mapped to backend %s, which no longer exists; replacing the row",
          tostring(key), tostring(dead)))
        ok, err = exec(req, "replace", false, bid, key, dead, dead)
        if not ok then
          return R.PASSDB_RESULT_INTERNAL_FAILURE, "replacing the row of " .. tostring(key) .. " failed: " .. err
        end
        -- another lookup may have replaced it first: read what is stored now
        ok = false
      else
        ok, err = exec(req, "insert", false, bid, key)
        if not ok then
          req:log_info(string.format("map update for %s failed: %s; reading the mapping again",
            tostring(key), tostring(err)))
        end
      end
      if ok then
        row = { bid = bid, hostname = pick.hostname, hostip = pick.hostip }
      else
        rows, err = exec(req, "lookup", true, key)
        if rows == nil then
          return R.PASSDB_RESULT_INTERNAL_FAILURE, "backend re-read for " .. tostring(key) .. " failed: " .. err
        end
        row = nil
        for _, r in ipairs(rows) do
          if tonumber(r.live) == 1 then row = r end
        end
        if row == nil then
          return R.PASSDB_RESULT_INTERNAL_FAILURE,
            "could not store a backend for " .. tostring(key) .. " and none is stored"
        end
      end
    end

    local bid = as_id(row.bid)
    if not nonempty(row.hostname) then
      return R.PASSDB_RESULT_INTERNAL_FAILURE,
        string.format("%s is mapped to backend %s, which has no hostname", tostring(key), tostring(bid))
    end
    req:log_debug(string.format("%s has backend %s", tostring(key), tostring(bid)))

    -- A new table for every reply; never shared between requests.
    local reply = {}
    for k, v in pairs(cfg.extra) do
      reply[k] = v
    end
    if cfg.proxy_flag ~= nil then
      reply[cfg.proxy_flag] = "y"
    end
    reply.host = tostring(row.hostname)
    if nonempty(row.hostip) then
      reply.hostip = tostring(row.hostip)
    end
    return R.PASSDB_RESULT_OK, reply
  end
end
