// Preloaded (node --import) by scripts/test-node24.sh: the native npm packages (better-sqlite3,
// unix-dgram, node-linux-pam) resolve to their copies in DOVEROUTE_NATIVE_MODULES (default
// dist/runtime/node_modules, compiled for the packaged Node 24 by scripts/package-runtime.sh)
// instead of the repository's node_modules, which stay built for the Node that ran npm ci.
// Every other module resolves as usual.
import * as module from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const alt = path.resolve(process.env.DOVEROUTE_NATIVE_MODULES ?? path.join(repo, "dist", "runtime", "node_modules"))
const from = pathToFileURL(path.join(repo, "node_modules")).href + "/"
const to = pathToFileURL(alt).href + "/"
const NATIVE = ["better-sqlite3", "unix-dgram", "node-linux-pam"]

module.registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context)
    if (result.url?.startsWith(from)) {
      const rest = result.url.slice(from.length)
      if (NATIVE.some((n) => rest.startsWith(`${n}/`))) return { ...result, url: to + rest }
    }
    return result
  }
})
