/**
 * prepareSqliteFiles: the store file is created private; a dangling symlink at its path is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { SqliteFiles } from "@doveroute/store"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

describe("prepareSqliteFiles", () => {
  it("a dangling symlink at the store path is refused, its target is not created; a live one is an existing store", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-sqlite-"))
    try {
      const target = path.join(dir, "elsewhere.db")
      const link = path.join(dir, "routes.db")
      fs.symlinkSync(target, link)
      expect(() => SqliteFiles.prepareSqliteFiles(link)).toThrow(
        `the SQLite store ${link} is a symlink to ${target}, which does not exist; create the target (chmod 0600) or point store at the real path`
      )
      expect(fs.existsSync(target)).toBe(false)
      fs.writeFileSync(target, "", { mode: 0o600 })
      expect(SqliteFiles.prepareSqliteFiles(link)).toEqual([])
      const fresh = path.join(dir, "new.db")
      expect(SqliteFiles.prepareSqliteFiles(fresh)).toEqual([fresh])
      expect((fs.statSync(fresh).mode & 0o777).toString(8)).toBe("600")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("as root, in a directory another user owns (a unit's StateDirectory): the new store is that user's; in root's own directory it stays root's", () => {
    expect(process.getuid?.(), "this test runs as root, as CI does").toBe(0)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dvr-sqlite-"))
    try {
      const state = path.join(dir, "state")
      fs.mkdirSync(state, { mode: 0o700 })
      fs.chownSync(state, 65534, 65534)
      const db = path.join(state, "doveroute.db")
      expect(SqliteFiles.prepareSqliteFiles(db)).toEqual([db])
      const st = fs.statSync(db)
      expect([st.uid, st.gid, (st.mode & 0o777).toString(8)]).toEqual([65534, 65534, "600"])
      // a group set for the store wins over the directory's
      const grouped = path.join(state, "grouped.db")
      SqliteFiles.prepareSqliteFiles(grouped, 0)
      expect([fs.statSync(grouped).uid, fs.statSync(grouped).gid, (fs.statSync(grouped).mode & 0o777).toString(8)]).toEqual([65534, 0, "640"])
      const own = path.join(dir, "root.db")
      SqliteFiles.prepareSqliteFiles(own)
      expect([fs.statSync(own).uid, fs.statSync(own).gid]).toEqual([0, 0])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
