/**
 * `node --import tsx packages/bench/src/BareServerMain.ts --socket PATH --reply JSON_STRING`:
 * the bare server as a process; prints `ready` when listening, exits on SIGTERM/SIGINT.
 */
import { startBareServer } from "./BareServer.js"

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}
const socket = arg("--socket")
const reply = arg("--reply")
if (socket === undefined || reply === undefined) {
  process.stderr.write("usage: BareServerMain.ts --socket PATH --reply JSON_STRING\n")
  process.exit(2)
}
const server = await startBareServer(socket, JSON.parse(reply) as string)
process.stdout.write("ready\n")
const stop = () => {
  server.close().then(() => process.exit(0), () => process.exit(1))
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
