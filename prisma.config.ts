// One Prisma config for both databases: DATABASE_URL picks the schema, the migrations folder
// and the driver adapter (postgres:// or postgresql:// -> Postgres, anything else -> SQLite).
// The CLI runs Rust-free: wasm schema engine plus JavaScript driver adapters, so migrate and
// generate work offline (see README, "Why Prisma 6.19 with driver adapters").
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";

const url = process.env.DATABASE_URL ?? "file:./data/tessera.db";
process.env.DATABASE_URL = url;
const flavor = /^postgres(ql)?:/.test(url) ? "postgres" : "sqlite";

// prisma/postgres/schema.prisma is generated (git-ignored) from prisma/sqlite/schema.prisma by
// scripts/prisma-generate.mjs; never let the CLI use a missing or stale one.
if (flavor === "postgres") {
  const root = path.dirname(fileURLToPath(import.meta.url));
  const source = createHash("sha256")
    .update(readFileSync(path.join(root, "prisma", "sqlite", "schema.prisma")))
    .digest("hex");
  let generated: string | undefined;
  try {
    generated = /^\/\/ source-sha256: ([0-9a-f]{64})$/m.exec(readFileSync(path.join(root, "prisma", "postgres", "schema.prisma"), "utf8"))?.[1];
  } catch {
    // missing
  }
  if (generated !== source) {
    throw new Error(
      "prisma/postgres/schema.prisma is missing or older than prisma/sqlite/schema.prisma, which it is " +
        "generated from: run `node scripts/prisma-generate.mjs` (it also regenerates both clients)",
    );
  }
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", flavor, "schema.prisma"),
  migrations: { path: path.join("prisma", flavor, "migrations") },
  adapter: async () =>
    flavor === "postgres"
      ? // One connection: the migration lock and the statements share a session, and it closes
        // soon after the last one, so no idle connection keeps holding the advisory lock.
        new PrismaPg({ connectionString: url, max: 1, idleTimeoutMillis: 1000 })
      : new PrismaBetterSqlite3({ url }),
});
