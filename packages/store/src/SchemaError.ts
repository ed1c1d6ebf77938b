/**
 * The schema cannot be used as it is (or cannot be changed as asked); the message says what to do.
 *
 * @since 0.1.0
 */
import { ReasonError } from "@doveroute/routing"

/** The schema cannot be used as it is; the message says what to do. */
export class SchemaError extends ReasonError("SchemaError")<"WrongStrategy" | "Duplicates" | "MissingColumn" | "Migration" | "NeedsMigration" | "Journal">() {}
