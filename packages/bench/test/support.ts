// Shared pieces of the bench tool's tests.
import { makeTempDir, type TempDir } from "@doveroute/testkit"
import { afterAll, beforeAll } from "vitest"

/** A temp dir (`/tmp/<prefix>XXXXXX`) made before the enclosing describe's tests and removed after them. */
export const describeTempDir = (prefix: string): (() => TempDir) => {
  let tmp: TempDir | undefined
  beforeAll(() => {
    tmp = makeTempDir({ prefix })
  })
  afterAll(async () => {
    await tmp?.cleanup()
  })
  return () => {
    if (tmp === undefined) throw new Error("temp dir not made yet")
    return tmp
  }
}
