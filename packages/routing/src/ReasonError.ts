/**
 * The base of doveroute's tagged errors that carry a closed `reason` union and an
 * operator-readable `detail`, which is also their message.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * `class E extends ReasonError("E")<"A" | "B">() {}` is `Data.TaggedError("E")` with the fields
 * `reason` (one of the union) and `detail`, and `detail` as its message.
 */
export const ReasonError = <const Tag extends string>(tag: Tag) => <Reason extends string>() =>
  class extends Data.TaggedError(tag)<{ readonly reason: Reason; readonly detail: string }> {
    override get message(): string {
      return this.detail
    }
  }
