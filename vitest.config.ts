import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/databases.ts"],
    // Native modules (argon2, better-sqlite3) are happiest in child processes.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers only queue argon2 work behind each other.
    maxWorkers: 2,
  },
});
