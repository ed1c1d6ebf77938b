#!/usr/bin/env node
// Launcher for the `doveroute` command: runs the esbuild bundle (dist/doveroute.mjs, made by
// `npm run build`; `npm start` and `npm test` build it first) without looking at the sources, so
// every admin command starts fast. Development: DOVEROUTE_DEV=1 runs the TypeScript sources
// through tsx (slower start, no build step); so does a checkout that has no bundle yet.
import { existsSync } from "node:fs"

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
