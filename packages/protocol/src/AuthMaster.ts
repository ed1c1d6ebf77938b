/**
 * What doveroute itself needs of Dovecot's auth-master / auth-userdb protocol
 * (`docs/protocols.md` §5): the line limit and the one filter of the userdb relay. The relay
 * passes every allowed line byte for byte, so nothing here decodes a request.
 *
 * @since 0.1.0
 */

/**
 * Maximum line length doveroute accepts on master/userdb sockets, in bytes. Dovecot 2.3's server
 * buffer is only 1024 bytes, its client buffer 8192; we accept up to the client limit so that a
 * relay never cuts what the real auth would pass.
 */
export const AUTH_MASTER_MAX_LINE = 8192

/**
 * The commands an `auth-userdb` socket serves: the VERSION handshake, USER, PASS and LIST.
 * `REQUEST` and `CACHE-FLUSH` are `auth-master` only; `CPID` is never allowed on either.
 */
export const USERDB_COMMANDS: ReadonlySet<string> = new Set(["VERSION", "USER", "PASS", "LIST"])

/** Whether a request with this command may go to an `auth-userdb` socket. */
export const allowedOnUserdbSocket = (command: string): boolean => USERDB_COMMANDS.has(command)

/**
 * The userdb filter for one line sent to an auth-master/auth-userdb server (without its LF):
 * `undefined` when its command is {@link allowedOnUserdbSocket}, else why it is refused.
 */
export const userdbRefusal = (line: Uint8Array): string | undefined => {
  let end = line.indexOf(9)
  if (end === -1) end = line.length
  // the first 20 bytes (latin1) are enough: every allowed command is shorter
  let cmd = ""
  for (let i = 0; i < Math.min(end, 20); i++) cmd += String.fromCharCode(line[i]!)
  return end <= 20 && allowedOnUserdbSocket(cmd) ? undefined : `command ${JSON.stringify(cmd)} is not served on auth-userdb`
}
