/**
 * `doveroute import FILE` (CSV or JSON mappings), `--from-director FILE` (a Dovecot 2.3 Director
 * ring's `doveadm director dump` and `map` output), `--from-director-config FILE` (its
 * `director_mail_servers`); `--dry-run` shows what would change and writes nothing.
 *
 * What it does: ImportRun.ts, imported when it runs.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { adminOptions } from "../CommonOptions.js"
import { lazy } from "./Lazy.js"

export const importConfig = {
  ...adminOptions,
  fromDirector: Options.boolean("from-director").pipe(Options.withDescription(
    "FILE is `doveadm director dump` and/or `doveadm director map` output of a Dovecot 2.3 Director ring: its hosts become backends (HOST@TAG: with that tag), its named users mappings"
  )),
  fromDirectorConfig: Options.boolean("from-director-config").pipe(Options.withDescription(
    "FILE holds a 2.3 `director_mail_servers` value (`doveconf -h director_mail_servers`) or setting: one backend per host (HOST@TAG: with that tag)"
  )),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("show what would change; write nothing (the store must exist and be migrated)")),
  file: Args.text({ name: "FILE" }).pipe(Args.withDescription("CSV, JSON or Director output, or - for stdin"))
} as const

export const importCommand = Command.make("import", importConfig, lazy(() => import("./ImportRun.js"), "importCommand")).pipe(Command.withDescription(
  "import user→backend mappings and user tags (CSV user,backend or user,backend,tag streamed, or JSON [{user, backend, tag}] or a dump --json document, " +
    "whose backends are added or updated; FILE or - for stdin; a backend by hostname, id or hostip); " +
    "--from-director: a 2.3 Director ring's dump/map output; --from-director-config: its director_mail_servers; --dry-run: show, write nothing; idempotent; conflicts reported (exit 3)"
))
