/**
 * Values an operator types that have one right form, as Effect Schemas shared by the settings
 * (config file, `DOVEROUTE_*`) and the command line (`@effect/cli` `Options.withSchema`):
 *
 * - {@link SocketMode}: a socket file mode, four octal digits with a leading 0 and no execute
 *   bits (`0600`, `0660`, `0666`). `777`, `0777`, `660` are refused: execute bits mean nothing on
 *   a socket, and a mode without its leading 0 is a decimal-looking number.
 * - {@link IpAddress}: an IPv4 or IPv6 address (`node:net` `isIP`), no host names.
 * - {@link BackendState}: `backends.state`: 0 up, 1 down, 2 drain, 3 down by the health checker.
 * - {@link Port}: a TCP port, 1–65535.
 *
 * Every failure message names the accepted values, so one line tells the operator what to type.
 *
 * @since 0.1.0
 */
import { Config, Either, ParseResult, Schema } from "effect"
import * as net from "node:net"

/** What {@link SocketMode} accepts, for messages. */
export const SOCKET_MODE_ACCEPTED = "four octal digits with a leading 0 and no execute bits, such as 0660 or 0666"

/** A socket file mode as text (`"0660"`) decoded to its number (`0o660`). */
export const SocketMode = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (s, _, ast) =>
    /^0[0-7]{3}$/.test(s) && (parseInt(s, 8) & 0o111) === 0
      ? ParseResult.succeed(parseInt(s, 8))
      : ParseResult.fail(new ParseResult.Type(ast, s, `expected a socket mode (${SOCKET_MODE_ACCEPTED}), got ${JSON.stringify(s)}`)),
  encode: (n) => ParseResult.succeed("0" + n.toString(8).padStart(3, "0"))
})

/** An IPv4 or IPv6 address. */
export const IpAddress = Schema.String.pipe(
  Schema.filter((s) => net.isIP(s) !== 0, {
    message: (issue) => `expected an IPv4 or IPv6 address such as 10.0.0.11 or fd00::11, got ${JSON.stringify(issue.actual)}`
  })
)

/** `backends.state` values and their names. */
export const BACKEND_STATES: ReadonlyArray<readonly [number, string]> = [[0, "up"], [1, "down"], [2, "drain"], [3, "health-down"]]

/** A backend state number. */
export const BackendState = Schema.Number.pipe(
  Schema.filter((n) => BACKEND_STATES.some(([s]) => s === n), {
    message: (issue) =>
      `expected a backend state ${BACKEND_STATES.map(([n, name]) => `${n} (${name})`).join(", ")}, got ${String(issue.actual)}`
  })
)

/** A TCP port number. */
export const Port = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) && n >= 1 && n <= 65535, {
    message: (issue) => `expected a port 1-65535, got ${String(issue.actual)}`
  })
)

/** The first message of a failed decode, on one line. */
export const issueMessage = (e: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(e)[0]?.message ?? e.message

/** Decode with a schema: the value or the one-line message. */
export const check = <A, I>(schema: Schema.Schema<A, I>, input: I): Either.Either<A, string> =>
  Either.mapLeft(Schema.decodeEither(schema)(input), issueMessage)

/** An integer setting of at least 1, with a default. */
export const positiveInt = (name: string, fallback: number): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be at least 1`, validation: (n: number) => n >= 1 })
  )
