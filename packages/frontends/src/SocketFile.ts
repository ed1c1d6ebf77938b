/**
 * How a listener's UNIX socket file comes into being, so that a client only ever finds it at its
 * path with its final mode, owner and group (Dovecot's `unix_listener { mode user group }`):
 *
 * 1. while any listener is binding, the process umask is 0177 ({@link holdRestrictiveUmask}): the
 *    file is created 0600 root-only, never briefly world-writable;
 * 2. the socket is bound at a staging name in the same directory ({@link stagingPath}), which must
 *    not be writable by other users unless sticky ({@link checkSocketDirectory});
 * 3. {@link publishSocket} sets owner, group and mode on it and hard-links it to the final path,
 *    then removes the staging name. link(2) is atomic and, unlike rename(2), fails when the path
 *    exists: a client connects to nothing or to the finished socket, and of two daemons started
 *    at once on one path only one gets it (the caller probes the other: live = `InUse`).
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
 * Refuse a socket whose directory other users may write to without the sticky bit: there another
 * user could replace the staging name (chmod/chown by path) with a symlink to any file. A sticky
 * directory (`/tmp`, 1777) keeps others from renaming or removing our names and is accepted. Throws
 * an `Error` naming the directory; a directory that cannot be stat'ed is left to bind(2) to report.
 */
export const checkSocketDirectory = (path: string): void => {
  const dir = nodePath.dirname(path)
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch {
    return
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    const mode = "0" + (st.mode & 0o7777).toString(8).padStart(3, "0")
    throw new Error(
      `refusing to create a socket in ${dir}: other users can write to that directory (mode ${mode}) and it has no sticky bit; ` +
        `use a directory only the daemon's user can write (chmod go-w ${dir}) or set the sticky bit (chmod +t)`
    )
  }
}

/**
 * The name to bind at before {@link publishSocket}: `<dir>/.<name>.<pid>.new`, or `path` itself
 * when that would be longer than {@link MAX_SOCKET_PATH_BYTES}. Staging names of `path` left by
 * processes that no longer run (a crash between bind and publish) are removed first.
 */
export const stagingPath = (path: string): string => {
  const dir = nodePath.dirname(path)
  const base = nodePath.basename(path)
  const staging = nodePath.join(dir, `.${base}.${process.pid}.new`)
  if (Buffer.byteLength(staging) > MAX_SOCKET_PATH_BYTES) return path
  removeLeftovers(dir, base)
  return staging
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

const removeLeftovers = (dir: string, base: string): void => {
  let names: Array<string>
  try {
    names = fs.readdirSync(dir)
  } catch {
    return
  }
  const prefix = `.${base}.`
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".new")) continue
    const pid = Number(name.slice(prefix.length, -".new".length))
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && alive(pid))) continue
    try {
      const p = nodePath.join(dir, name)
      if (fs.lstatSync(p).isSocket()) fs.unlinkSync(p)
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Give the socket bound at `staging` its owner, group (numeric ids; undefined = unchanged) and
 * mode, then link it to `path` and remove the staging name. Returns the inode of the published
 * socket (used on shutdown to remove only our own file), or `"exists"` when `path` exists (the
 * staging socket is kept for another try). Throws the `fs` error (EPERM, ENOENT, …); the staging
 * name is removed then.
 */
export const publishSocket = (
  staging: string,
  path: string,
  perms: { readonly mode: number; readonly uid: number | undefined; readonly gid: number | undefined }
): number | "exists" => {
  try {
    const st = fs.lstatSync(staging)
    // chown only when the ids differ: a socket that already has them (a daemon whose own group is
    // the configured one) needs no chown(2), which systemd's @privileged filter denies
    const uid = perms.uid !== undefined && perms.uid !== st.uid ? perms.uid : -1
    const gid = perms.gid !== undefined && perms.gid !== st.gid ? perms.gid : -1
    if (uid !== -1 || gid !== -1) fs.chownSync(staging, uid, gid)
    fs.chmodSync(staging, perms.mode)
    const ino = st.ino
    if (staging === path) return ino
    try {
      fs.linkSync(staging, path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return "exists"
      throw e
    }
    fs.unlinkSync(staging)
    return ino
  } catch (e) {
    if (staging !== path) fs.rmSync(staging, { force: true })
    throw e
  }
}
