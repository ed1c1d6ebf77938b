// The 2.4 examples of the Lua scripts never show the forbidden combination: `nopassword` in
// Dovecot's `fields { }` (which the scripts cannot see) beside a proxy flag other than `proxy`.
// Every `passdb lua { }` example in lua/*.lua headers, lua/README.md and README.md with
// `nopassword` in its `fields { }` sets `proxy_flag = proxy` in its `lua_settings { }`;
// http-route.lua takes the proxy flag from the daemon, so its examples have no `nopassword` there.
import { readFileSync } from "node:fs"
import path from "node:path"
import { REPO_ROOT } from "@doveroute/testkit"
import { describe, expect, it } from "vitest"

const FILES = ["lua/director.lua", "lua/director-shard.lua", "lua/http-route.lua", "lua/README.md", "README.md"]

/** The body of the `{ … }` block opening at `open` (brace-matched). */
const blockAt = (text: string, open: number): string => {
  let depth = 0
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++
    else if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i)
  }
  throw new Error("unbalanced braces")
}

const passdbLuaBlocks = (text: string): Array<string> =>
  [...text.matchAll(/passdb\s+[A-Za-z0-9_-]*\s*\{/g)]
    .map((m) => blockAt(text, m.index! + m[0].length - 1))
    .filter((b) => /\blua_file\s*=/.test(b))

const inner = (block: string, name: string): string | undefined => {
  const m = new RegExp(`\\b${name}\\s*\\{`).exec(block)
  return m === null ? undefined : blockAt(block, m.index + m[0].length - 1)
}

describe("Lua 2.4 examples: nopassword in fields { } only beside proxy_flag = proxy", () => {
  it("the examples exist (the check below is not empty)", () => {
    const all = FILES.flatMap((f) => passdbLuaBlocks(readFileSync(path.join(REPO_ROOT, f), "utf8")))
    expect(all.filter((b) => /nopassword/.test(inner(b, "fields") ?? "")).length).toBeGreaterThanOrEqual(3)
  })
  for (const file of FILES) {
    it(file, () => {
      const text = readFileSync(path.join(REPO_ROOT, file), "utf8")
      for (const block of passdbLuaBlocks(text)) {
        if (!/nopassword/.test(inner(block, "fields") ?? "")) continue
        expect(block, `${file}: http-route.lua takes nopassword from the daemon, never from fields { }`).not.toMatch(/http-route\.lua/)
        expect(inner(block, "lua_settings") ?? "", `${file}: nopassword in fields { } needs proxy_flag = proxy`).toMatch(/^\s*proxy_flag\s*=\s*proxy\s*$/m)
      }
    })
  }
  it("the script headers warn that fields { } is not seen by the script", () => {
    for (const f of ["lua/director.lua", "lua/director-shard.lua"]) {
      expect(readFileSync(path.join(REPO_ROOT, f), "utf8")).toMatch(/WHO CHECKS THE PASSWORD: this script cannot see Dovecot's `fields \{ \}`/)
    }
  })
})
