// Bundle the doveroute CLI/daemon into dist/doveroute.mjs plus chunks in dist/chunks/ (code
// splitting): an admin command loads only the entry and the chunks it needs; `serve` loads the
// daemon and front-ends (and each store driver) through dynamic imports. Native and dynamically
// required drivers stay external. `node build.mjs --analyze` prints what each output holds.
import { build } from "esbuild"
import * as fs from "node:fs"
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
// fast-check is for tests (property-based testing): effect's Schema and Arbitrary modules import it
// for arbitraries doveroute never builds, and its top-level code would run at every start. In the
// bundle it is a module whose every export throws when called (cli-startup.test.ts checks the
// bundle holds none of fast-check and that the commands run).
const fastCheckExports = Object.keys(await import("fast-check"))
const noFastCheck = {
  name: "no-fast-check",
  setup(b) {
    b.onResolve({ filter: /^fast-check$/ }, () => ({ path: "fast-check", namespace: "no-fast-check" }))
    b.onLoad({ filter: /.*/, namespace: "no-fast-check" }, () => ({
      contents: `const unavailable = () => { throw new Error("fast-check (test-only) is not in the doveroute bundle") }\n` +
        fastCheckExports.filter((name) => name !== "default").map((name) => `export const ${name} = unavailable`).join("\n") +
        `\nexport default unavailable`,
      loader: "js"
    }))
  }
}
// Every output file starts with one line: `require` (for the CommonJS packages and the built-ins
// below) and `__dvrBuiltin(id)`, a namespace of a built-in module that loads it at its first use: a
// command that never calls node:crypto, node:child_process or node:readline (the platform layer
// imports them for file hashes, subprocesses and prompts) does not load them (~10 ms of --version).
const BANNER = "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url); " +
  "const __dvrBuiltin = (id) => { let m; const load = () => (m ??= require(id)); return new Proxy({}, { " +
  "get: (_, k) => (k === 'default' ? load() : load()[k]), has: (_, k) => k in load(), ownKeys: () => Reflect.ownKeys(load()), " +
  "getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(load(), k); return d && { ...d, configurable: true } } }) };"
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
  banner: { js: BANNER },
  minify: !process.argv.includes("--no-minify"),
  plugins: [lazyParsers, noFastCheck],
  logLevel: "warning"
})
// Node's built-in modules through require() instead of import: importing one as an ES module
// builds its "facade", which reads every export, lazy ones included: node:http's WebSocket getters
// load all of undici (~20 ms of each start on Node 24), node:fs's its streams. esbuild keeps them
// external as `import … from "node:x"` statements, which become `const … = require("node:x")`
// (the banner's require; `import * as X` a lazily loading namespace) in the same place; the first
// line (the banner itself) stays.
const builtinImport = /import(?:\*as ([\w$]+)|([\w$]+)?,?\{([^}]*)\}|([\w$]+))?\s*from\s*"(node:[\w/]+)";?|import"(node:[\w/]+)";?/g
let builtinCount = 0
const asRequire = (_, ns, dflt, named, only, spec, bare) => {
  if (bare !== undefined) return `require("${bare}");`
  const mod = `require("${spec}")`
  if (ns !== undefined) return `const ${ns}=__dvrBuiltin("${spec}");`
  if (only !== undefined) return `const ${only}=${mod};`
  const parts = named.split(",").filter((p) => p.trim() !== "").map((p) => {
    const [name, alias] = p.trim().split(/\s+as\s+/)
    return { name, alias: alias ?? name }
  })
  const whole = dflt ?? parts.find((p) => p.name === "default")?.alias ?? `__builtin${++builtinCount}`
  const rest = parts.filter((p) => p.name !== "default").map((p) => p.name === p.alias ? p.name : `${p.name}:${p.alias}`)
  return `const ${whole}=${mod}${rest.length > 0 ? `,{${rest.join(",")}}=${whole}` : ""};`
}
const outputs = [path.join(dist, "doveroute.mjs"), ...fs.readdirSync(path.join(dist, "chunks")).filter((f) => f.endsWith(".mjs")).map((f) => path.join(dist, "chunks", f))]
for (const file of outputs) {
  const text = fs.readFileSync(file, "utf8")
  const nl = text.indexOf("\n")
  fs.writeFileSync(file, text.slice(0, nl + 1) + text.slice(nl + 1).replace(builtinImport, asRequire))
}

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
