/**
 * The files of an SQLite store are private: the list of every mail user and backend is in them.
 *
 * Before the store is opened, {@link prepareSqliteFiles} creates what is missing, whatever the
 * process umask:
 * - each missing directory on the way to the file: `0700` (`0750` with a group, which it gets);
 * - the database file itself: `0600` (`0640` with a group), created empty, exclusively; a symlink
 *   whose target does not exist is refused (SQLite would create the target with the umask's mode).
 * SQLite creates the `-wal` and `-shm` files with the database file's mode (and, as root, its owner
 * and group), so they follow. Root creating the database in a directory another user owns (an admin
 * command run before the daemon's unit ever started, in the unit's `StateDirectory=`) gives the file
 * to that user (and the directory's group, unless a group is set), so that the daemon can open it. Files and directories that already exist are left as they are: an
 * admin's mode is never loosened or changed; {@link sqliteExposure} reports one readable by every
 * local user, for a warning.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** Group of the created files (name or gid); undefined = none (0600/0700). */
export type SqliteGroup = string | number | undefined

const gidOf = (group: string | number): number => {
  if (typeof group === "number") return group
  if (/^\d+$/.test(group)) return Number(group)
  for (const line of fs.readFileSync("/etc/group", "utf8").split("\n")) {
    const f = line.split(":")
    if (f[0] === group && f[2] !== undefined) return Number(f[2])
  }
  throw new Error(`unknown group ${group} (store_group)`)
}

/**
 * Create the missing directories and the database file of `filename` with private modes (see the
 * module doc). Returns the paths it created. Throws an `Error` naming the path it could not create.
 */
export const prepareSqliteFiles = (filename: string, group: SqliteGroup = undefined): ReadonlyArray<string> => {
  if (filename === "" || filename === ":memory:" || filename.startsWith("file:")) return []
  const gid = group === undefined ? undefined : gidOf(group)
  const dirMode = gid === undefined ? 0o700 : 0o750
  const fileMode = gid === undefined ? 0o600 : 0o640
  const file = path.resolve(filename)
  const created: Array<string> = []
  // missing directories, outermost first
  const missing: Array<string> = []
  for (let d = path.dirname(file); !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d)
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode: dirMode })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") continue // made by someone else meanwhile: theirs
      throw new Error(`cannot create directory ${d} for the SQLite store: ${(e as Error).message}`)
    }
    if (gid !== undefined) fs.chownSync(d, -1, gid)
    fs.chmodSync(d, dirMode) // mkdir's mode went through the umask
    created.push(d)
  }
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, fileMode)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      // a dangling symlink: SQLite would create its target with the umask's mode (0644)
      if (fs.lstatSync(file).isSymbolicLink() && !fs.existsSync(file)) {
        throw new Error(
          `the SQLite store ${file} is a symlink to ${fs.readlinkSync(file)}, which does not exist; ` +
            `create the target (chmod 0600) or point store at the real path`
        )
      }
      return created // an existing store keeps its mode
    }
    throw new Error(`cannot create the SQLite store ${file}: ${(e as Error).message}`)
  }
  try {
    const dir = process.getuid?.() === 0 ? fs.statSync(path.dirname(file)) : undefined
    if (dir !== undefined && dir.uid !== 0) fs.fchownSync(fd, dir.uid, gid ?? dir.gid)
    else if (gid !== undefined) fs.fchownSync(fd, -1, gid)
    fs.fchmodSync(fd, fileMode)
  } finally {
    fs.closeSync(fd)
  }
  created.push(file)
  return created
}

/**
 * A warning when an existing store file (or its `-wal`/`-shm`) is readable by every local user;
 * undefined otherwise (also when it does not exist).
 */
export const sqliteExposure = (filename: string): string | undefined => {
  if (filename === "" || filename === ":memory:" || filename.startsWith("file:")) return undefined
  const open: Array<string> = []
  for (const f of [filename, `${filename}-wal`, `${filename}-shm`]) {
    try {
      const mode = fs.statSync(f).mode & 0o777
      if ((mode & 0o004) !== 0) open.push(`${f} (0${mode.toString(8)})`)
    } catch {
      // missing: nothing to report
    }
  }
  return open.length === 0
    ? undefined
    : `the SQLite store is readable by every local user: ${open.join(", ")}; it lists every mail user and backend. ` +
      `chmod 0600 (or 0640 for a group) the file, its -wal and -shm`
}
