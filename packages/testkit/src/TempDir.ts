/**
 * Short-lived, short-named temp directories (`/tmp/dvr-XXXXXX`, mode 0755) for Dovecot instances,
 * sockets and databases. UNIX socket paths must fit in sun_path (108 bytes with the NUL).
 */
import { chmodSync, mkdtempSync } from "node:fs"
import { rm } from "node:fs/promises"
import path from "node:path"

/** Longest usable UNIX socket path in bytes (sun_path is 108 bytes including the NUL). */
export const MAX_SOCKET_PATH = 107

/** A temp directory; `path` is absolute. `cleanup()` removes it recursively (idempotent). */
export interface TempDir {
  readonly path: string
  /** `path` joined with the given segments. */
  join(...segments: ReadonlyArray<string>): string
  cleanup(): Promise<void>
}

/** Options for {@link makeTempDir}: `parent` (default "/tmp") and name `prefix` (default "dvr-"). */
export interface TempDirOptions {
  readonly parent?: string
  readonly prefix?: string
}

/**
 * Creates `<parent>/<prefix>XXXXXX` with mode 0755 (Dovecot's unprivileged processes must be able
 * to traverse it). Throws when even a short socket name would not fit below it.
 */
export function makeTempDir(options: TempDirOptions = {}): TempDir {
  const parent = options.parent ?? "/tmp"
  const dir = mkdtempSync(path.join(parent, options.prefix ?? "dvr-"))
  chmodSync(dir, 0o755)
  if (Buffer.byteLength(dir) > MAX_SOCKET_PATH - 40) {
    throw new Error(`temp dir ${dir} is too long for UNIX socket paths below it`)
  }
  let removed = false
  return {
    path: dir,
    join: (...segments) => path.join(dir, ...segments),
    cleanup: async () => {
      if (removed) return
      removed = true
      await rm(dir, { recursive: true, force: true, maxRetries: 3 })
    }
  }
}

/** Throws when `socketPath` is longer than {@link MAX_SOCKET_PATH} bytes; returns it otherwise. */
export function checkSocketPath(socketPath: string): string {
  const n = Buffer.byteLength(socketPath)
  if (n > MAX_SOCKET_PATH) throw new Error(`UNIX socket path is ${n} bytes (max ${MAX_SOCKET_PATH}): ${socketPath}`)
  return socketPath
}
