// The repository explains itself: every document a comment or doc cites must be in the
// repository. Scans every text file git knows (tracked, or new and not ignored) for citations of
// markdown files, `docs/...` paths and `§` section numbers, and fails naming each one that points
// nowhere. URLs are not citations of our files and are left out.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const MD = "." + "md"

/** A markdown file name or path, e.g. `docs/protocols` + MD, `lua/README` + MD. */
const MD_CITATION = new RegExp(String.raw`(?<![\w/.$-])((?:\.\.?/)*(?:[\w.-]+/)*[\w.-]*\w\.md)(?![\w-])`, "g")
/** A path under `docs/` (any file type). */
const DOCS_PATH = /(?<![\w/.-])(docs\/[\w./-]*[\w-])/g
/** A section number: `§2`, `§2.3`. */
const SECTION = /§(\d+(?:\.\d+)*)/g
const URL = /\b[a-z][a-z0-9+.-]*:\/\/[^\s)>"'`]*/gi

export interface Problem {
  readonly file: string
  readonly line: number
  readonly citation: string
  readonly why: string
}

/** Resolve a cited path: from the repository root, or from the citing file's directory. */
const resolveCitation = (exists: (rel: string) => boolean, fromFile: string, cited: string): string | undefined => {
  const candidates = [path.posix.normalize(cited), path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), cited))]
  return candidates.find((c) => !c.startsWith("../") && exists(c))
}

/** Heading numbers (`2`, `2.3`) of a markdown text: `## 2. Title`, `### 2.3 Title`. */
export const headingNumbers = (markdown: string): ReadonlySet<string> => {
  const out = new Set<string>()
  for (const m of markdown.matchAll(/^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/gm)) out.add(m[1]!)
  return out
}

/**
 * Every citation in `text` (the content of repository file `file`) that points nowhere.
 * `exists(rel)` says whether a repository-relative path exists; `read(rel)` gives its text.
 */
export const findProblems = (
  file: string,
  text: string,
  exists: (rel: string) => boolean,
  read: (rel: string) => string
): ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  const isMarkdown = file.endsWith(MD)
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(URL, " ")
    const report = (citation: string, why: string) => problems.push({ file, line: i + 1, citation, why })
    // markdown citations, each with the § numbers that follow it on the line
    const cites = [...line.matchAll(MD_CITATION)]
    for (let c = 0; c < cites.length; c++) {
      const cited = cites[c]![1]!
      const target = resolveCitation(exists, file, cited)
      if (target === undefined) {
        report(cited, "cited file is not in the repository")
        continue
      }
      const end = c + 1 < cites.length ? cites[c + 1]!.index : line.length
      const tail = line.slice(cites[c]!.index + cited.length, end)
      const sections = [...tail.matchAll(SECTION)].map((m) => m[1]!)
      if (sections.length === 0) continue
      const headings = headingNumbers(read(target))
      for (const s of sections) if (!headings.has(s)) report(`${cited} §${s}`, `${target} has no section ${s}`)
    }
    for (const m of line.matchAll(DOCS_PATH)) {
      const cited = m[1]!
      if (!cited.endsWith(MD) && !exists(cited)) report(cited, "cited path is not in the repository")
    }
    // a § with no document before it on its line: only a markdown file may cite its own sections
    const firstCite = cites.length > 0 ? cites[0]!.index : line.length
    for (const m of line.matchAll(SECTION)) {
      if (m.index >= firstCite) continue
      if (/\bRFC\s*\d+\s*$/.test(line.slice(0, m.index))) continue
      if (isMarkdown) {
        if (!headingNumbers(text).has(m[1]!)) report(`§${m[1]}`, `${file} has no section ${m[1]}`)
      } else {
        report(`§${m[1]}`, "section number without the document it belongs to")
      }
    }
  }
  return problems
}

/** The repository's text files, as git sees them: tracked, or new and not ignored. */
const repositoryFiles = (): ReadonlyArray<string> =>
  execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 })
    .split("\0")
    .filter((f) => f.length > 0 && f !== "package-lock.json" && f !== SELF && fs.existsSync(path.join(ROOT, f)))

/** This file: its checker test below holds deliberately broken citations, so the scan skips it. */
const SELF = path.relative(ROOT, fileURLToPath(import.meta.url)).split(path.sep).join("/")

const exists = (rel: string) => fs.existsSync(path.join(ROOT, rel))
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), "utf8")

describe("citations point into the repository", () => {
  it("every cited markdown file, docs/ path and § section exists", () => {
    const files = repositoryFiles()
    // the scan covers the places citations live (fails loudly if git listed nothing useful)
    for (const must of ["README.md", "lua/README.md", "docs/protocols.md", "docs/lua-director.md", "packages/protocol/src/AuthClient.ts"]) {
      expect(files).toContain(must)
    }
    const problems: Array<string> = []
    let scanned = 0
    for (const f of files) {
      const buf = fs.readFileSync(path.join(ROOT, f))
      if (buf.includes(0)) continue // binary
      scanned++
      for (const p of findProblems(f, buf.toString("utf8"), exists, read)) {
        problems.push(`${p.file}:${p.line}: ${p.citation}: ${p.why}`)
      }
    }
    expect(scanned).toBeGreaterThan(100)
    expect(problems).toEqual([])
  })

  it("the checker reports what it should (so the scan above can fail)", () => {
    const files: Record<string, string> = {
      ["docs/a" + MD]: "# A\n\n## 1. One\n\n### 1.2 Sub\n",
      ["src/x.ts"]: ""
    }
    const has = (rel: string) => rel in files
    const get = (rel: string) => files[rel] ?? ""
    const check = (file: string, text: string) => findProblems(file, text, has, get).map((p) => p.citation)
    // present file and sections: fine, from the root or relative to the citing file
    expect(check("src/x.ts", `// see docs/a${MD} §1, §1.2`)).toEqual([])
    expect(check("docs/b" + MD, `see [a](a${MD}) §1.2`)).toEqual([])
    // a file outside the repository, a missing section, a missing docs/ path, a bare §
    expect(check("src/x.ts", `// (dovecot-protocols${MD} §2.3)`)).toEqual([`dovecot-protocols${MD}`])
    expect(check("src/x.ts", `// docs/a${MD} §3`)).toEqual([`docs/a${MD} §3`])
    expect(check("src/x.ts", "// docs/howto/lua_director.html")).toEqual(["docs/howto/lua_director.html"])
    expect(check("src/x.ts", "// the rule (§4)")).toEqual(["§4"])
    // a markdown file may cite its own sections; URLs and RFC sections are not our citations
    expect(check("docs/a" + MD, get("docs/a" + MD) + "as in §1.2\n")).toEqual([])
    expect(check("docs/a" + MD, get("docs/a" + MD) + "as in §7\n")).toEqual(["§7"])
    expect(check("src/x.ts", `// https://example.org/docs/nowhere${MD} and RFC 9111 §5.2`)).toEqual([])
  })
})
