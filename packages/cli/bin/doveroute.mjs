#!/usr/bin/env node
// Launcher for the `doveroute` command: runs the esbuild bundle (dist/doveroute.mjs, made by
// `npm run build`; `npm start` and `npm test` build it first) without looking at the sources, so
// every admin command starts fast. Development: DOVEROUTE_DEV=1 runs the TypeScript sources
// through tsx (slower start, no build step); so does a checkout that has no bundle yet.
// On Node >= 22.1 V8's compiled code of the bundle is kept between runs in a private per-user
// cache (~/.cache/doveroute/node-compile-cache, or $XDG_CACHE_HOME/…), unless NODE_COMPILE_CACHE
// says otherwise: about a third of an admin command's start-up.
import module from "node:module"

// built-ins through require(): an ES import of node:fs reads every export (its lazy streams too)
const require = module.createRequire(import.meta.url)
const { existsSync } = require("node:fs")
const { homedir } = require("node:os")
const { join } = require("node:path")

if (typeof module.enableCompileCache === "function" && process.env.NODE_COMPILE_CACHE === undefined) {
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), ".cache") : "")
  // no cache (and no error) where the directory cannot be made, e.g. a system user without a home
  if (base !== "") module.enableCompileCache(join(base, "doveroute", "node-compile-cache"))
}

const bundle = new URL("../dist/doveroute.mjs", import.meta.url)
if (process.env.DOVEROUTE_DEV !== "1" && existsSync(bundle)) {
  await import(bundle.href)
} else {
  if (process.env.DOVEROUTE_DEV !== "1") {
    process.stderr.write("doveroute: no bundle at packages/cli/dist/doveroute.mjs (npm run build): running the sources through tsx\n")
  }
  const { register } = await import("tsx/esm/api")
  register()
  await import("../src/bin.ts")
}
