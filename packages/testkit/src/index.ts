/**
 * @doveroute/testkit: test harness for doveroute — real Dovecot 2.3 (host) and 2.4 (chroot),
 * protocol clients, databases, and the daemon as a child process.
 */
export * from "./Exec.js"
export * from "./Ports.js"
export * from "./TempDir.js"
export * from "./Process.js"
export * from "./DovecotPaths.js"
export * from "./DovecotInstance.js"
export * from "./Dovecot23.js"
export * from "./Dovecot24.js"
export * from "./Configs23.js"
export * from "./Configs24.js"
export * from "./LineConn.js"
export * from "./Imap.js"
export * from "./Pop3.js"
export * from "./Lmtp.js"
export * from "./Smtp.js"
export * from "./Backends.js"
export * from "./Databases.js"
export * from "./Daemon.js"
export * from "./Postfix.js"
export * from "./RouteFixtures.js"
