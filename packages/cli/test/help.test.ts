// `--help` through the real binary: no ANSI codes when piped, usage lines naming the whole command,
// and the README "Command line" block listing exactly the commands, options and arguments --help
// shows (so the two cannot drift apart).
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { colours, commandPath, helpText } from "../src/Help.js"

const ROOT = path.resolve(__dirname, "../../..")
const BIN = path.join(ROOT, "packages/cli/bin/doveroute.mjs")

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? -1), stdout })
    })
  })

/** Options every admin command shares; the README names them once, under the block. */
const COMMON = new Set(["--config", "--store", "--store-file", "--strategy", "--json"])

interface Synopsis {
  readonly options: ReadonlyArray<string>
  readonly args: number
}

/** Option names (common ones dropped) and the number of positional arguments of a usage text. */
const synopsis = (usage: string, positional: (top: string) => number): Synopsis => ({
  options: [...new Set(usage.match(/--[a-z][a-z-]*/g) ?? [])].filter((o) => !COMMON.has(o)).sort(),
  args: positional(usage)
})

/** Every leaf command of `doveroute --help` (its COMMANDS list): path → synopsis. */
const fromHelp = (help: string): Map<string, Synopsis> => {
  const entries = help.split("\n").filter((l) => l.startsWith("  - ")).map((l) => l.slice(4).split(/ {2,}/)[0]!)
  const paths = entries.map((e) => e.split(" ").filter((w, i, ws) => ws.slice(0, i + 1).every((x) => /^[a-z][a-z-]*$/.test(x))).join(" "))
  const out = new Map<string, Synopsis>()
  entries.forEach((e, i) => {
    const p = paths[i]!
    if (paths.some((q) => q.startsWith(p + " "))) return // a group (backend, user, …)
    out.set(p, synopsis(e.slice(p.length), (u) => (u.match(/<[^>]+>/g) ?? []).length))
  })
  return out
}

/** Every `doveroute …` entry of the README's Command line block (continuation lines indented). */
const fromReadme = (readme: string): Map<string, Synopsis> => {
  const block = /## Command line\n\n```\n([\s\S]*?)```/.exec(readme)![1]!
  const entries: Array<string> = []
  for (const line of block.split("\n")) {
    if (line.startsWith("doveroute ")) entries.push(line.slice("doveroute ".length))
    else if (line.trim() !== "") entries[entries.length - 1] += " " + line.trim()
  }
  const out = new Map<string, Synopsis>()
  for (const e of entries) {
    const words = e.split(/\s+/)
    const n = words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w))
    const p = (n < 0 ? words : words.slice(0, n)).join(" ")
    out.set(p, synopsis(e.slice(p.length), (u) => {
      let top = u
      while (/\[[^[\]]*\]/.test(top)) top = top.replace(/\[[^[\]]*\]/g, " ")
      return top.split(/\s+/).filter((w) => w !== "" && !w.startsWith("-") && w !== "|" && w !== "…").length
    }))
  }
  return out
}

describe("doveroute --help", { timeout: 120_000 }, () => {
  it("has no ANSI codes on a pipe and names the full command in its usage line", async () => {
    const root = await run(["--help"])
    expect(root.code).toBe(0)
    expect(root.stdout).not.toMatch(/\x1b/)
    expect(root.stdout).toMatch(/^\$ doveroute$/m)
    for (const args of [["backend", "flush"], ["user", "move-many"], ["shard", "move"], ["import"], ["config", "check"]]) {
      const r = await run([...args, "b1", "--help"], { NO_COLOR: "" })
      expect(r.code, args.join(" ")).toBe(0)
      expect(r.stdout).not.toMatch(/\x1b/)
      expect(r.stdout).toMatch(new RegExp(`^\\$ doveroute ${args.join(" ")} \\[`, "m"))
    }
  })

  it("keeps colours on a terminal unless NO_COLOR is set (script(1) gives it a pty)", async () => {
    const onTty = (env: Record<string, string>) =>
      new Promise<string>((resolve) => {
        execFile("script", ["-qec", `'${process.execPath}' '${BIN}' backend flush --help`, "/dev/null"], { env: { ...process.env, ...env }, timeout: 60_000 }, (_, stdout) => resolve(stdout))
      })
    const coloured = await onTty({})
    expect(coloured).toMatch(/\x1b\[/)
    expect(coloured.replace(/\x1b\[[0-9;]*m/g, "")).toMatch(/^\$ doveroute backend flush \[/m)
    const plain = await onTty({ NO_COLOR: "1" })
    expect(plain).not.toMatch(/\x1b/)
    expect(plain).toMatch(/^\$ doveroute backend flush \[/m)
  })

  it("keeps colours only for a terminal without NO_COLOR", () => {
    const coloured = "\x1b[0;1mUSAGE\x1b[0m\n\n$ flush [--kick] <BACKEND>\n"
    expect(helpText(coloured, ["backend", "flush"], false)).toBe("USAGE\n\n$ doveroute backend flush [--kick] <BACKEND>\n")
    expect(helpText(coloured, ["backend", "flush"], true)).toContain("\x1b[0;1mUSAGE")
    expect(colours(true, {})).toBe(true)
    expect(colours(true, { NO_COLOR: "1" })).toBe(false)
    expect(colours(false, {})).toBe(false)
    expect(commandPath(["backend", "flush", "b1", "--help"])).toEqual(["backend", "flush", "b1"])
    // b1 is an argument after the command: the path ends at the usage line's command name
    expect(helpText("$ flush [--kick] <BACKEND>\n", ["backend", "flush", "b1"], false)).toBe("$ doveroute backend flush [--kick] <BACKEND>\n")
    expect(helpText("$ doveroute\n", [], false)).toBe("$ doveroute\n")
  })

  it("the README Command line block lists exactly the commands, options and arguments of --help", async () => {
    const help = fromHelp((await run(["--help"])).stdout)
    const readme = fromReadme(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"))
    expect(help.size).toBeGreaterThan(20)
    expect([...readme.keys()].sort()).toEqual([...help.keys()].sort())
    for (const [p, s] of help) expect(readme.get(p), p).toEqual(s)
  })
})
