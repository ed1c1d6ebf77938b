// Every `doveroute …` command the operator pages quote (in code blocks and inline code) is a real
// command: its subcommand exists, every flag is one that subcommand takes (a value where the flag
// takes one), and it has as many arguments as the command wants. The grammar is read from the
// real bundle's own help (`npm run build` first). Their config fragments pass `config check`.
import { makeTempDir, REPO_ROOT, runCli } from "@doveroute/testkit"
import * as fs from "node:fs"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"

const PAGES = ["docs/migrating-from-director.md", "docs/migrating-from-lua-director.md", "docs/troubleshooting.md"]

interface Usage {
  readonly flags: ReadonlyMap<string, boolean> // flag → takes a value
  readonly args: number
}

/** `doveroute --help`: command path → usage, from its `- name [--flag value] [--bool] <ARG>` lines. */
const grammar = (help: string): Map<string, Usage> => {
  const out = new Map<string, Usage>()
  for (const raw of help.replace(/\x1b\[[0-9;]*m/g, "").split("\n")) {
    const m = /^\s*- ([a-z][a-z ]*?)((?: \[[^\]]*\])*(?: <[^>]+>)*)\s*(?:\s{2,}.*)?$/.exec(raw)
    if (m === null) continue
    const flags = new Map<string, boolean>()
    for (const f of m[2]!.matchAll(/\[(--[a-z-]+)( [^\]]+)?\]/g)) flags.set(f[1]!, f[2] !== undefined)
    out.set(m[1]!.trim(), { flags, args: [...m[2]!.matchAll(/<[^>]+>/g)].length })
  }
  return out
}

/** The `doveroute …` commands of a page: code block lines and inline code spans. */
const commands = (text: string): Array<string> => {
  const found: Array<string> = []
  let inBlock = false
  for (const line of text.split("\n")) {
    if (line.trim().startsWith("```")) {
      inBlock = !inBlock
      continue
    }
    if (inBlock && line.trim().startsWith("doveroute ")) found.push(line.trim().replace(/\s+#.*$/, ""))
  }
  for (const m of text.matchAll(/`(doveroute [^`]+)`/g)) found.push(m[1]!.replace(/\s+/g, " "))
  // a quoted log line is not a command; "…" marks an elided one
  return found.filter((c) => !c.includes("…") && !c.startsWith("doveroute: "))
}

/** Check one command against the grammar; returns what is wrong, or undefined. */
const check = (g: Map<string, Usage>, command: string): string | undefined => {
  const words = command.replace(/ && .*$/, "").split(" ").slice(1)
  let chain = ""
  let i = 0
  while (i < words.length && g.has((chain + " " + words[i]).trim())) chain = (chain + " " + words[i++]).trim()
  const usage = g.get(chain)
  if (usage === undefined || (usage.flags.size === 0 && usage.args === 0)) return `no such command: ${command}`
  let args = 0
  for (; i < words.length; i++) {
    const w = words[i]!
    if (w.startsWith("--")) {
      const takes = usage.flags.get(w)
      if (takes === undefined) return `${chain} has no flag ${w}: ${command}`
      if (takes) i++
    } else args++
  }
  return args === usage.args ? undefined : `${chain} wants ${usage.args} arguments, got ${args}: ${command}`
}

describe("the commands in the operator docs are real", () => {
  let g: Map<string, Usage>
  beforeAll(async () => {
    const r = await runCli(["--help"])
    expect(r.code, r.stderr).toBe(0)
    g = grammar(r.stdout)
    expect(g.get("import")?.flags.get("--from-director")).toBe(false)
    expect(g.get("backend add")).toMatchObject({ args: 1 })
  })

  it.each(PAGES)("%s", (page) => {
    const found = commands(fs.readFileSync(path.join(REPO_ROOT, page), "utf8"))
    expect(found.length).toBeGreaterThan(0)
    expect(found.map((c) => check(g, c)).filter((e) => e !== undefined)).toEqual([])
  })

  it.each(PAGES)("%s: its config fragments (`\"key\": value`) pass `doveroute config check`", async (page) => {
    const text = fs.readFileSync(path.join(REPO_ROOT, page), "utf8")
    const fragments = [...text.matchAll(/`("[a-z_]+": [^`]+)`/g)].map((m) => m[1]!.replace(/\s+/g, " "))
    const tmp = makeTempDir({ prefix: "dvr-docfrag-" })
    try {
      for (const f of fragments) {
        const file = tmp.join("c.json")
        fs.writeFileSync(file, JSON.stringify({ store: `sqlite:${tmp.join("s.db")}`, ...JSON.parse(`{${f}}`) }))
        const r = await runCli(["config", "check", "--config", file])
        expect(r.code, `${page}: ${f}: ${r.stderr}`).toBe(0)
      }
    } finally {
      await tmp.cleanup()
    }
  })

  it("the checker refuses a wrong flag, a wrong subcommand and a missing argument", () => {
    expect(check(g, "doveroute import --from-directors ring.txt")).toMatch(/no flag --from-directors/)
    expect(check(g, "doveroute backend evacuate imap1")).toMatch(/no such command/)
    expect(check(g, "doveroute user move alice")).toMatch(/wants 2 arguments, got 1/)
    expect(check(g, "doveroute user move alice imap2 --kick --config /etc/doveroute/dict.json")).toBeUndefined()
  })
})
