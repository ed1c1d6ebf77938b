#!/usr/bin/env node
// Launcher for the `doveroute` command.
// Runs the esbuild bundle (dist/doveroute.mjs, made by `npm run build`) when it is newer than every
// source file of the workspace; otherwise runs the TypeScript sources through tsx.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const bundle = path.join(here, "..", "dist", "doveroute.mjs")
const packagesDir = path.join(here, "..", "..")

const newestSource = () => {
  let newest = 0
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "node_modules" || e.name === "dist" || e.name === "test") continue
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs)
    }
  }
  for (const pkg of ["protocol", "routing", "store", "frontends", "daemon", "cli"]) {
    const src = path.join(packagesDir, pkg, "src")
    if (fs.existsSync(src)) walk(src)
  }
  return newest
}

let useBundle = false
try {
  useBundle = fs.statSync(bundle).mtimeMs >= newestSource()
} catch {
  useBundle = false
}
if (useBundle) {
  await import(pathToFileURL(bundle).href)
} else {
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/bin.ts")
}
