import { defineProject } from "vitest/config"

// Real Dovecot instances: each test file owns its own instances, ports and temp dirs.
export default defineProject({
  test: {
    name: "e2e",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    poolOptions: { forks: { singleFork: true } }
  }
})
