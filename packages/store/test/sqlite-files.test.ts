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
})
