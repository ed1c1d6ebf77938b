/**
 * `doveroute serve`: run the daemon until SIGTERM.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { Record as Rec } from "effect"
import { common, flag } from "../CommonOptions.js"
import { lazy, type Parsed } from "./Lazy.js"

/**
 * `serve`'s own flags, one row each: the settings keys the flag sets (as in the config file), its
 * help text, and its kind (choices, repeated, a value check).
 */
const FLAGS = {
  dictSocket: flag("dict-socket", ["dict.socket"], "UNIX socket for Dovecot 2.3 passdb dict (uri = proxy:<socket>:<name>)"),
  authSocket: flag(
    "auth-socket",
    ["auth.socket"],
    "UNIX socket for the standalone auth-client server (login processes, doveadm auth test -a, Postfix/Exim SASL)"
  ),
  authMode: flag(
    "auth-mode",
    ["auth.auth_mode"],
    "how the auth server checks passwords: nopassword (the backend checks; default), password or pam",
    { choices: ["nopassword", "password", "pam"] }
  ),
  pamService: flag("pam-service", ["auth.pam_service"], "PAM service (/etc/pam.d/<name>) for --auth-mode pam; default dovecot"),
  httpListen: flag(
    "http-listen",
    ["http.listen"],
    "HTTP route endpoint for lua/http-route.lua (Dovecot 2.4 passdb chains): 127.0.0.1:PORT, [::1]:PORT or a UNIX socket path; loopback only"
  ),
  password: flag(
    "password",
    ["auth.password"],
    "master password for --auth-mode password (implies it). Visible in the process list: prefer " +
      "--password-file, the systemd credential auth_password or DOVEROUTE_AUTH_PASSWORD"
  ),
  passwordFile: flag("password-file", ["auth.password_file"], "file holding the master password for --auth-mode password (mode 0600/0640)"),
  httpTokenFile: flag("http-token-file", ["http.token_file"], "file holding the shared token of a TCP --http-listen (mode 0600/0640)"),
  loginRelaySocket: flag(
    "login-relay-socket",
    ["login_relay.socket"],
    "UNIX socket login processes use instead of Dovecot's login socket (relay mode)"
  ),
  dovecotLoginSocket: flag(
    "dovecot-login-socket",
    ["login_relay.upstream"],
    "Dovecot's login socket the login relay connects to (<base_dir>/login/login)"
  ),
  userdbRelaySocket: flag(
    "userdb-relay-socket",
    ["userdb_relay.socket"],
    "UNIX socket for auth_socket_path (LMTP/doveadm PASS lookups, relay mode)"
  ),
  dovecotUserdbSocket: flag(
    "dovecot-userdb-socket",
    ["userdb_relay.upstream"],
    "Dovecot's auth-userdb socket the userdb relay connects to (<base_dir>/auth-userdb)"
  ),
  port: flag("port", ["port"], "backend port added as port= by the auth server and relays: N or PROTOCOL=N, repeatable", {
    repeated: true
  }),
  socketMode: flag(
    "socket-mode",
    ["dict.mode", "auth.mode", "http.mode", "login_relay.mode", "userdb_relay.mode"],
    "octal mode of every socket file (default 0660; sockets for login processes need 0666)",
    { check: SettingValues.SocketMode }
  ),
  extraField: flag("extra-field", ["extra_fields"], "extra reply field KEY[=VALUE], repeatable (nopassword, port=143, …)", {
    repeated: true
  }),
  downPolicy: flag("down-policy", ["down_policy"], "users mapped to a backend with state != 0: keep (default), reassign, tempfail", {
    choices: ["keep", "reassign", "tempfail"]
  }),
  proxyFlag: flag(
    "proxy-flag",
    ["proxy_flag"],
    "proxy flag in passdb replies (default proxy_maybe for mapping, proxy for shard); --extra-field nopassword needs proxy",
    { choices: ["proxy_maybe", "proxy", "none"] }
  ),
  logLevel: flag("log-level", ["log_level"], undefined, { choices: ["debug", "info", "warning", "error"] })
}

export const serveConfig = { ...common, ...Rec.map(FLAGS, (f) => f.option) }

/** The settings keys the given flags set, as `[key, value]` pairs (the table above, in order). */
export const flagPairs = (o: Parsed<typeof serveConfig>) =>
  Object.entries(FLAGS).flatMap(([name, f]) => f.settings.map((key) => [key, o[name as keyof typeof FLAGS]] as const))

// the daemon, the front-ends and the metrics are loaded only when `serve` runs (ServeRun.ts)
export const serve = Command.make("serve", serveConfig, lazy(() => import("./ServeRun.js"), "serve")).pipe(
  Command.withDescription("run the routing daemon until SIGTERM (SIGHUP reloads the configuration)")
)
