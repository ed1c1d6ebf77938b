// Copies the npm packages the doveroute bundle loads at run time (its esbuild externals) and
// everything they depend on, from the repository's node_modules into DEST/node_modules, at the
// same relative paths (so nested node_modules resolve as they do in the repository) and the
// versions package-lock.json installed. Build-only dependencies are left out; native packages are
// copied without their `build/` output (scripts/package-runtime.sh builds them for the packaged
// Node runtime).
//
// usage: node packaging/collect-modules.mjs REPO DEST
// Prints one line per package copied: "<relative path> <version> <license>".
import * as fs from "node:fs"
import * as path from "node:path"

/** Bare specifiers the bundle imports at run time (packages/cli/build.mjs `external`, minus
 * pg-native, which pg loads only when asked for and we never ask for). */
export const RUNTIME_ROOTS = ["better-sqlite3", "pg", "mysql2", "unix-dgram", "node-linux-pam"]

/** Packages with a binding.gyp: rebuilt for the packaged runtime. */
export const NATIVE = ["better-sqlite3", "unix-dgram", "node-linux-pam"]

/** Dependencies needed only to build or download a native addon, never loaded by it at run time. */
const BUILD_ONLY = new Set([
  "prebuild-install", // better-sqlite3: downloads prebuilt binaries (we compile)
  "nan", // unix-dgram: C++ headers
  "node-addon-api", // node-linux-pam: C++ headers
  "@mapbox/node-pre-gyp", // node-linux-pam: install-time downloader
  "yargs" // node-linux-pam: its cli.js only
])

const [repo, dest] = process.argv.slice(2)
if (repo === undefined || dest === undefined) {
  console.error("usage: collect-modules.mjs REPO DEST")
  process.exit(2)
}

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"))

/** Directory of `name` as Node would find it from `fromDir` (walking up node_modules dirs). */
const resolvePackageDir = (name, fromDir) => {
  let dir = fromDir
  for (;;) {
    const candidate = path.join(dir, "node_modules", name)
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate
    const parent = path.dirname(dir)
    if (parent === dir || !parent.startsWith(repo)) return undefined
    dir = parent
  }
}

const seen = new Map() // package dir -> package.json
const queue = RUNTIME_ROOTS.map((name) => ({ name, from: repo, optional: false }))
while (queue.length > 0) {
  const { name, from, optional } = queue.shift()
  if (BUILD_ONLY.has(name)) continue
  const dir = resolvePackageDir(name, from)
  if (dir === undefined) {
    if (optional) continue
    console.error(`collect-modules: ${name} (needed from ${path.relative(repo, from) || "."}) is not installed: run npm ci`)
    process.exit(1)
  }
  if (seen.has(dir)) continue
  const pkg = readJson(path.join(dir, "package.json"))
  seen.set(dir, pkg)
  for (const dep of Object.keys(pkg.dependencies ?? {})) queue.push({ name: dep, from: dir, optional: false })
  for (const dep of Object.keys(pkg.optionalDependencies ?? {})) queue.push({ name: dep, from: dir, optional: true })
}

const skipInPackage = (name, rel) => {
  const top = rel.split(path.sep)[0]
  if (top === "node_modules") return true // nested packages are copied as packages of their own
  if (NATIVE.includes(name) && top === "build") return true
  return false
}

for (const [dir, pkg] of [...seen].sort(([a], [b]) => a.localeCompare(b))) {
  const rel = path.relative(repo, dir)
  const target = path.join(dest, rel)
  fs.mkdirSync(target, { recursive: true })
  fs.cpSync(dir, target, {
    recursive: true,
    filter: (src) => !skipInPackage(pkg.name, path.relative(dir, src))
  })
  console.log(`${rel} ${pkg.version} ${typeof pkg.license === "string" ? pkg.license : "see-package"}`)
}
