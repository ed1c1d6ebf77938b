--[[
doveroute: http-route.lua -- passdb that asks the doveroute daemon over HTTP

For Dovecot 2.4 (2.4 removed passdb dict; Lua + HTTP is the way to call an
external router from a passdb chain). Also runs on Dovecot 2.3.19.
Uses only Dovecot's built-in dovecot.http.client; no extra Lua modules.

REQUEST
  GET <route_url>?user=<urlencoded req.user>&protocol=<req.protocol or req.service>
  (2.4 names the protocol req.protocol, 2.3 req.service)
  with `Authorization: Bearer <token>` when a token is configured.

WHO MAY ASK (the answers say where every user's mail is; a first lookup writes a row)
  * A UNIX socket (Dovecot 2.4 only): `doveroute serve --http-listen
    /run/doveroute/http.sock` with http.group = dovecot, mode 0660; here
    socket_path = /run/doveroute/http.sock and route_url = http://localhost/route
    (only its path and query are used: Dovecot's HTTP client sends the request
    through http_client_proxy_socket_path). The auth process (user dovecot)
    connects; other local users cannot.
  * Loopback TCP (2.3 and 2.4): doveroute refuses a TCP listener without a shared
    token; give the same token here with token_file (a file readable by user
    dovecot and root only, e.g. root:dovecot 0640; one line). `token` inline works
    too, but Dovecot's config files are usually world-readable.

NO SECRETS over HTTP: doveroute never sends a password field. Where a
  master password is wanted, Dovecot's passdb adds it (its `fields { }` block,
  in a config file only root and dovecot can read).

RESPONSE (doveroute's endpoint)
  200  body = `key=value` fields separated by TAB (newlines also accepted);
       a bare `key` is a flag, sent as key=y.
       -> PASSDB_RESULT_OK with those fields (a new table per request).
       A 200 without any field is treated as an internal failure.
  else -> PASSDB_RESULT_INTERNAL_FAILURE (client sees temp_fail): 503 (no
       usable backend, store down), 400 (a user name doveroute cannot route),
       404 (route_url names a wrong path), connection failures and timeouts.
       Never a password mismatch and never "unknown user", so a chain
       `pam (continue-ok) -> this (skip = unauthenticated,
       result_failure = return-fail, result_internalfail = return-fail)`
       cannot log a user in unrouted.

SETTINGS -- same rule as director.lua:
  * Dovecot 2.4: the passdb's `lua_settings { }` block, when it has any key.
  * Otherwise (2.3, which calls script_init() without arguments and rejects
    extra passdb args): the file next to the script with ".lua" replaced by
    ".conf" (http-route.lua -> http-route.conf), one `key = value` per line,
    `#` comments, values optionally in double quotes. It is read by the auth
    process (user dovecot) and the auth-workers (root).
  Keys:
    route_url              required, http://host:port/path
                           (with socket_path: http://localhost/path)
    socket_path            UNIX socket of doveroute's endpoint (2.4 only)
    token_file             file holding the shared token (one line)
    token                  the shared token itself (prefer token_file)
    connect_timeout_msecs  default 1000
    request_timeout_msecs  default 2000 (per attempt; one attempt only)
    user_agent             default "doveroute-http-route"
  Unknown keys or a missing settings file are fatal at start.

DOVECOT CONFIG
  2.4:  passdb lua {
          lua_file = /etc/dovecot/http-route.lua
          lua_settings {
            socket_path = /run/doveroute/http.sock
            route_url = http://localhost/route
          }
        }
  2.3:  passdb {
          driver = lua
          args = file=/etc/dovecot/http-route.lua
        }
        (settings in /etc/dovecot/http-route.conf: route_url =
        http://127.0.0.1:PORT/route and token_file = …; a pure proxy also needs
        `nopassword` from the router's reply, or an authenticating passdb)
  WHO CHECKS THE PASSWORD: as the only passdb, nothing on the proxy does, so
  doveroute must answer `nopassword` with `proxy` (proxy_flag proxy): every
  login is proxied and the backend checks it (the daemon refuses nopassword
  with proxy_maybe). Never put nopassword in this passdb's `fields { }` with
  proxy_maybe: a user whose backend is the proxy itself would log in locally
  with any password. To log such users in locally, put an authenticating
  passdb first (config/dovecot-2.4/95-doveroute-http-chain.conf).
]]

local NAME = "doveroute http-route.lua"

local KNOWN_KEYS = {
  route_url = true, connect_timeout_msecs = true, request_timeout_msecs = true,
  user_agent = true, socket_path = true, token = true, token_file = true,
}

local function script_path()
  local info = debug and debug.getinfo and debug.getinfo(1, "S")
  local src = info and info.source or ""
  return src:match("^@(.+)$")
end

local SCRIPT_PATH = script_path()

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

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local route_url    -- configured URL
local url_sep      -- "?" or "&"
local http_client  -- dovecot.http.client
local auth_header  -- "Bearer <token>" or nil

-- The token from token_file: the whole file, one trailing newline dropped.
local function read_token_file(path, source)
  local f, err = io.open(path, "r")
  if f == nil then
    error(string.format("%s: cannot read token_file (%s): %s", NAME, source, tostring(err)))
  end
  local t = f:read("a") or ""
  f:close()
  t = t:gsub("\r?\n$", "")
  if t == "" or t:find("[\r\n]") then
    error(string.format("%s: token_file %s must hold one non-empty line (%s)", NAME, path, source))
  end
  return t
end

function script_init(args)
  local settings, source
  -- 2.3 calls script_init() with no argument; 2.4 passes a table.
  local is_24 = type(args) == "table"
  if is_24 and next(args) ~= nil then
    settings, source = {}, "lua_settings"
    for k, v in pairs(args) do
      settings[k] = tostring(v)
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
  for k in pairs(settings) do
    if not KNOWN_KEYS[k] then
      error(string.format("%s: unknown setting '%s' in %s", NAME, tostring(k), source))
    end
  end
  route_url = settings.route_url
  if route_url == nil or route_url == "" then
    error(string.format("%s: setting 'route_url' is required (%s)", NAME, source))
  end
  if not route_url:match("^https?://") then
    error(string.format("%s: route_url must start with http:// or https:// (%s)", NAME, source))
  end
  url_sep = route_url:find("?", 1, true) and "&" or "?"
  local function msecs(k, default)
    local v = settings[k]
    if v == nil or v == "" then return default end
    local n = math.tointeger(tonumber(v))
    if n == nil or n <= 0 then
      error(string.format("%s: %s must be a positive integer (%s)", NAME, k, source))
    end
    return n
  end
  local connect_ms = msecs("connect_timeout_msecs", 1000)
  local request_ms = msecs("request_timeout_msecs", 2000)
  local user_agent = settings.user_agent or "doveroute-http-route"

  if settings.token ~= nil and settings.token_file ~= nil then
    error(string.format("%s: set token or token_file, not both (%s)", NAME, source))
  end
  local token = settings.token
  if settings.token_file ~= nil and settings.token_file ~= "" then
    token = read_token_file(settings.token_file, source)
  end
  if token ~= nil and token ~= "" then
    if token:find("[%s]") then
      error(string.format("%s: the token must not contain spaces (%s)", NAME, source))
    end
    auth_header = "Bearer " .. token
  end
  local socket_path = settings.socket_path
  if socket_path ~= nil and socket_path ~= "" then
    if not is_24 then
      error(string.format("%s: socket_path needs Dovecot 2.4 (2.3's Lua HTTP client has no UNIX socket support); use a loopback route_url with token_file (%s)", NAME, source))
    end
    if socket_path:sub(1, 1) ~= "/" then
      error(string.format("%s: socket_path must be an absolute path (%s)", NAME, source))
    end
  else
    socket_path = nil
  end

  -- The two versions name the HTTP client settings differently; 2.4 rejects
  -- unknown names, 2.3 ignores them.
  local client_settings
  if is_24 then
    client_settings = {
      connect_timeout = connect_ms .. "ms",
      request_timeout = request_ms .. "ms",
      request_max_attempts = 1,
      user_agent = user_agent,
    }
    if socket_path ~= nil then
      -- the request goes to the socket in absolute form (GET http://localhost/route?…)
      client_settings.proxy_socket_path = socket_path
    end
  else
    client_settings = {
      connect_timeout_msecs = connect_ms,
      request_timeout_msecs = request_ms,
      max_attempts = 1,
      user_agent = user_agent,
    }
  end
  http_client = dovecot.http.client(client_settings)
  return 0
end

-- Parse the 200 body: TAB (or newline) separated `key=value` / bare `key`.
local function parse_body(body)
  local fields, n = {}, 0
  for tok in body:gmatch("[^\t\r\n]+") do
    local k, v = tok:match("^([^=]*)=(.*)$")
    if k == nil then
      k, v = tok, "y"
    end
    if k ~= "" then
      fields[k] = v
      n = n + 1
    end
  end
  return fields, n
end

function auth_passdb_lookup(req)
  local R = dovecot.auth
  if http_client == nil then
    return R.PASSDB_RESULT_INTERNAL_FAILURE, NAME .. ": not initialised"
  end
  local protocol = req.protocol or req.service or ""
  local url = route_url .. url_sep .. "user=" .. urlencode(req.user) ..
              "&protocol=" .. urlencode(protocol)

  local ok, resp = pcall(function()
    local r = http_client:request({ url = url, method = "GET" })
    if auth_header ~= nil then
      r:add_header("Authorization", auth_header)
    end
    return r:submit()
  end)
  if not ok then
    return R.PASSDB_RESULT_INTERNAL_FAILURE, "route lookup failed: " .. tostring(resp)
  end
  local status = resp:status()
  if status == 200 then
    local fields, n = parse_body(resp:payload() or "")
    if n == 0 then
      return R.PASSDB_RESULT_INTERNAL_FAILURE, "route lookup: 200 with an empty body"
    end
    req:log_debug(string.format("route lookup: %d fields", n))
    return R.PASSDB_RESULT_OK, fields
  end
  return R.PASSDB_RESULT_INTERNAL_FAILURE,
    string.format("route lookup failed: HTTP %s %s", tostring(status), tostring(resp:reason()))
end
