import { describe, expect, it } from "vitest"
import { isStoreErrorReason, type TempFailReason } from "@doveroute/routing"

describe("TempFailReason", () => {
  it("only the store's reasons count as store errors: Held and the lookup deadline do not", () => {
    const all: ReadonlyArray<TempFailReason> = [
      "NoBackend", "BackendDown", "InvalidUser", "Held", "Unavailable", "Timeout", "Integrity", "Query", "LookupTimeout", "Internal"
    ]
    expect(all.filter(isStoreErrorReason)).toEqual(["Unavailable", "Timeout", "Integrity", "Query"])
  })
})
