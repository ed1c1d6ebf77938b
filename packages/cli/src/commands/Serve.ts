/**
 * `doveroute serve`: run the daemon until SIGTERM.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import * as SettingValues from "@doveroute/daemon/SettingValues"
import { common, validated } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

export const serveConfig = {
  ...common,
  dictSocket: Options.text("dict-socket").pipe(
    Options.withDescription("UNIX socket for Dovecot 2.3 passdb dict (uri = proxy:<socket>:<name>)"),
    Options.optional
  ),
  authSocket: Options.text("auth-socket").pipe(
    Options.withDescription(
      "UNIX socket for the standalone auth-client server (login processes, doveadm auth test -a, Postfix/Exim SASL)"
    ),
    Options.optional
  ),
  authMode: Options.choice("auth-mode", ["nopassword", "password", "pam"]).pipe(
    Options.withDescription("how the auth server checks passwords: nopassword (the backend checks; default), password or pam"),
    Options.optional
  ),
  pamService: Options.text("pam-service").pipe(
    Options.withDescription("PAM service (/etc/pam.d/<name>) for --auth-mode pam; default dovecot"),
    Options.optional
  ),
  httpListen: Options.text("http-listen").pipe(
    Options.withDescription(
      "HTTP route endpoint for lua/http-route.lua (Dovecot 2.4 passdb chains): 127.0.0.1:PORT, [::1]:PORT or a UNIX socket path; loopback only"
    ),
    Options.optional
  ),
  password: Options.text("password").pipe(
    Options.withDescription(
      "master password for --auth-mode password (implies it). Visible in the process list: prefer " +
        "--password-file, the systemd credential auth_password or DOVEROUTE_AUTH_PASSWORD"
    ),
    Options.optional
  ),
  passwordFile: Options.text("password-file").pipe(
    Options.withDescription("file holding the master password for --auth-mode password (mode 0600/0640)"),
    Options.optional
  ),
  httpTokenFile: Options.text("http-token-file").pipe(
    Options.withDescription("file holding the shared token of a TCP --http-listen (mode 0600/0640)"),
    Options.optional
  ),
  loginRelaySocket: Options.text("login-relay-socket").pipe(
    Options.withDescription("UNIX socket login processes use instead of Dovecot's login socket (relay mode)"),
    Options.optional
  ),
  dovecotLoginSocket: Options.text("dovecot-login-socket").pipe(
    Options.withDescription("Dovecot's login socket the login relay connects to (<base_dir>/login/login)"),
    Options.optional
  ),
  userdbRelaySocket: Options.text("userdb-relay-socket").pipe(
    Options.withDescription("UNIX socket for auth_socket_path (LMTP/doveadm PASS lookups, relay mode)"),
    Options.optional
  ),
  dovecotUserdbSocket: Options.text("dovecot-userdb-socket").pipe(
    Options.withDescription("Dovecot's auth-userdb socket the userdb relay connects to (<base_dir>/auth-userdb)"),
    Options.optional
  ),
  port: Options.text("port").pipe(
    Options.withDescription("backend port added as port= by the auth server and relays: N or PROTOCOL=N, repeatable"),
    Options.repeated
  ),
  socketMode: Options.text("socket-mode").pipe(
    validated("--socket-mode", SettingValues.SocketMode),
    Options.withDescription("octal mode of every socket file (default 0660; sockets for login processes need 0666)"),
    Options.optional
  ),
  extraField: Options.text("extra-field").pipe(
    Options.withDescription("extra reply field KEY[=VALUE], repeatable (nopassword, port=143, …)"),
    Options.repeated
  ),
  downPolicy: Options.choice("down-policy", ["keep", "reassign", "tempfail"]).pipe(
    Options.withDescription("users mapped to a backend with state != 0: keep (default), reassign, tempfail"),
    Options.optional
  ),
  proxyFlag: Options.choice("proxy-flag", ["proxy_maybe", "proxy", "none"]).pipe(
    Options.withDescription("proxy flag in passdb replies (default proxy_maybe for mapping, proxy for shard); --extra-field nopassword needs proxy"),
    Options.optional
  ),
  logLevel: Options.choice("log-level", ["debug", "info", "warning", "error"]).pipe(Options.optional)
}

// the daemon, the front-ends and the metrics are loaded only when `serve` runs (ServeRun.ts)
export const serve = Command.make("serve", serveConfig, lazy(() => import("./ServeRun.js"), "serve")).pipe(
  Command.withDescription("run the routing daemon until SIGTERM (SIGHUP reloads the configuration)")
)
