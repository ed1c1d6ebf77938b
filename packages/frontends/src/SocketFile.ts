/**
 * How a listener's UNIX socket file comes into being, so that a client only ever finds it at its
 * path with its final mode, owner and group (Dovecot's `unix_listener { mode user group }`):
 *
 * 1. while any listener is binding, the process umask is 0177 ({@link holdRestrictiveUmask}): the
 *    file is created 0600 root-only, never briefly world-writable;
 * 2. the socket is bound at a staging name in the same directory ({@link stagingPath});
 * 3. {@link publishSocket} sets owner, group and mode on it and renames it over the final path
 *    (rename(2) is atomic: a client connects to nothing or to the finished socket).
 *
 * When the staging name would not fit in `sockaddr_un.sun_path` (107 bytes), the socket is bound at
 * its final path directly and the permissions follow right after (a client may then see 0600 for
 * an instant).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"

/** Longest UNIX socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH_BYTES = 107

let umaskHolders = 0
let savedUmask = 0

/**
 * Set the process umask to 0177 until the returned release function is called. Listeners start
 * concurrently: the umask is set by the first holder and restored by the last one, so two
 * overlapping holders never leave 0177 behind.
 */
export const holdRestrictiveUmask = (): (() => void) => {
  if (umaskHolders++ === 0) savedUmask = process.umask(0o177)
  let released = false
  return () => {
    if (released) return
    released = true
    if (--umaskHolders === 0) process.umask(savedUmask)
  }
}

/**
 * The name to bind at before {@link publishSocket}: `<dir>/.<name>.<pid>.new`, or `path` itself
 * when that would be longer than {@link MAX_SOCKET_PATH_BYTES}. A leftover of a crashed process is
 * removed first.
 */
export const stagingPath = (path: string): string => {
  const staging = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.new`)
  if (Buffer.byteLength(staging) > MAX_SOCKET_PATH_BYTES) return path
  try {
    if (fs.lstatSync(staging).isSocket()) fs.unlinkSync(staging)
  } catch {
    // not there
  }
  return staging
}

/**
 * Give the socket bound at `staging` its owner, group (numeric ids; undefined = unchanged) and
 * mode, then move it to `path`. Returns the inode of the published file (used on shutdown to remove
 * only our own file). Throws the `fs` error (EPERM, ENOENT, …); the staging file is removed then.
 */
export const publishSocket = (
  staging: string,
  path: string,
  perms: { readonly mode: number; readonly uid: number | undefined; readonly gid: number | undefined }
): number => {
  try {
    if (perms.uid !== undefined || perms.gid !== undefined) fs.chownSync(staging, perms.uid ?? -1, perms.gid ?? -1)
    fs.chmodSync(staging, perms.mode)
    if (staging !== path) fs.renameSync(staging, path)
  } catch (e) {
    if (staging !== path) fs.rmSync(staging, { force: true })
    throw e
  }
  return fs.statSync(path).ino
}
