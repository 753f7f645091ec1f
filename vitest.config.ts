import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // @tessera/verifier (packages/verifier, linked into node_modules by the workspace) resolves to
  // its TypeScript sources through the package's "tessera-source" export condition, as in
  // tsconfig.json's customConditions: tests never need a build of the package. Tests run in
  // Vite's server (SSR) environment, so the condition goes into ssr.resolve.conditions, with
  // Vite's defaults kept.
  ssr: { resolve: { conditions: ["tessera-source", ...defaultServerConditions] } },
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
