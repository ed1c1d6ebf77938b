/**
 * The schema cannot be used as it is (or cannot be changed as asked); the message says what to do.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/** The schema cannot be used as it is; the message says what to do. */
export class SchemaError extends Data.TaggedError("SchemaError")<{
  readonly reason: "WrongStrategy" | "Duplicates" | "MissingColumn" | "Migration" | "NeedsMigration" | "Journal"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}
