/**
 * Help output fit for pipes and scripts: @effect/cli renders help with ANSI colours always and
 * names only the last command in its usage line (`$ flush …`). Here the help goes through
 * {@link helpText}: colours are dropped unless the stream is a terminal and `NO_COLOR` is unset,
 * and the usage line names the whole command (`$ doveroute backend flush …`).
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"

// CSI sequences (colours, bold) as @effect/cli's renderer writes them
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g

/** Whether a stream gets colours: a terminal, and `NO_COLOR` unset or empty (no-color.org). */
export const colours = (isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean =>
  isTTY === true && (env["NO_COLOR"] === undefined || env["NO_COLOR"] === "")

/** The commands named on the command line before the first option (`backend flush`). */
export const commandPath = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const i = args.findIndex((a) => a.startsWith("-"))
  return i < 0 ? args : args.slice(0, i)
}

/**
 * Rewrite one chunk of help text: without colours, ANSI sequences removed; a usage line `$ NAME …`
 * whose NAME is one of `path` (the words before the first option) becomes `$ doveroute PATH… …`,
 * PATH ending at that word (`backend flush b1 --help` has the usage line `$ flush …`).
 */
export const helpText = (text: string, path: ReadonlyArray<string>, withColours: boolean): string => {
  const plain = withColours ? text : text.replace(ANSI, "")
  return plain.replace(/^\$ (\S+)(?= |$)/gm, (line, name: string) => {
    const i = path.indexOf(name)
    return i < 0 ? line : `$ ${["doveroute", ...path.slice(0, i + 1)].join(" ")}`
  })
}

/** Whether argv (`process.argv.slice(2)`) asks for help or the version (output is help text). */
export const wantsHelp = (args: ReadonlyArray<string>): boolean =>
  args.some((a) => a === "--help" || a === "-h" || a === "--version")

/**
 * Run `self` with a console whose stdout text is help-fixed when argv asks for help, and whose
 * stderr (usage errors rendered by @effect/cli) loses its colours unless stderr is a terminal.
 */
export const withPlainHelp = (args: ReadonlyArray<string>) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.console, (base) => {
    const help = wantsHelp(args)
    const path = commandPath(args)
    const fix = (isTTY: boolean | undefined) => (xs: ReadonlyArray<unknown>) =>
      xs.map((x) => typeof x === "string" ? helpText(x, help ? path : [], colours(isTTY)) : x)
    const out = fix(process.stdout.isTTY)
    const err = fix(process.stderr.isTTY)
    const console: Console.Console = {
      ...base,
      log: (...xs) => help ? base.log(...out(xs)) : base.log(...xs),
      error: (...xs) => base.error(...err(xs))
    }
    return Effect.withConsole(self, console)
  })
