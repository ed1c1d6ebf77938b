// Bundle the doveroute CLI/daemon into dist/doveroute.mjs plus chunks in dist/chunks/ (code
// splitting): an admin command loads only the entry and the chunks it needs; `serve` loads the
// daemon and front-ends (and each store driver) through dynamic imports. Native and dynamically
// required drivers stay external. `node build.mjs --analyze` prints what each output holds.
import { build } from "esbuild"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const dist = path.join(here, "dist")
// old chunks would pile up (their names carry a hash)
fs.rmSync(path.join(dist, "chunks"), { recursive: true, force: true })
// @effect/cli imports the YAML, TOML and INI parsers for options that read such files; doveroute
// has none, so they are required only when called (400 KB less to compile at every start)
const lazyParsers = {
  name: "lazy-config-parsers",
  setup(b) {
    b.onResolve({ filter: /^(yaml|toml|ini)$/ }, (args) =>
      args.importer.includes("@effect/cli") ? { path: args.path, namespace: "lazy-parser" } : undefined)
    b.onLoad({ filter: /.*/, namespace: "lazy-parser" }, (args) => ({
      contents: `import { createRequire } from "node:module"\n` +
        `export const parse = (text) => createRequire(import.meta.url)(${JSON.stringify(args.path)}).parse(text)`,
      loader: "js"
    }))
  }
}
// Node's built-in modules through require() instead of import: importing one as ESM builds its
// "facade", which reads every export, lazy ones included: node:http's WebSocket getters load all of
// undici (~20 ms of each start on Node 24), node:crypto's webcrypto getters their internals
const builtinsViaRequire = {
  name: "builtins-via-require",
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z][a-z0-9_/]*$/ }, (args) =>
      args.namespace !== "builtin-require" && isBuiltin(args.path)
        ? { path: args.path.replace(/^node:/, ""), namespace: "builtin-require" }
        : undefined)
    b.onLoad({ filter: /.*/, namespace: "builtin-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)})`,
      loader: "js"
    }))
  }
}
const result = await build({
  entryPoints: { doveroute: path.join(here, "src", "bin.ts") },
  outdir: dist,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: true,
  metafile: process.argv.includes("--analyze"),
  external: ["better-sqlite3", "pg-native", "pg", "mysql2", "unix-dgram", "node-linux-pam"],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  minify: !process.argv.includes("--no-minify"),
  plugins: [lazyParsers, builtinsViaRequire],
  logLevel: "warning"
})
if (result.metafile) {
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    if (file.endsWith(".map")) continue
    const groups = {}
    for (const [input, i] of Object.entries(out.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)
      const key = m ? m[1] : input.replace(/^(?:\.\.\/)*packages\/([^/]+)\/src\/.*$/, "@doveroute/$1")
      groups[key] = (groups[key] ?? 0) + i.bytesInOutput
    }
    const top = Object.entries(groups).sort((a, b) => b[1] - a[1]).slice(0, 8)
    console.log(`${path.relative(here, file)} ${Math.round(out.bytes / 1024)} KB: ${top.map(([k, v]) => `${k} ${Math.round(v / 1024)}K`).join(", ")}`)
  }
}
