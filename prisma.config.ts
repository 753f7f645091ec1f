// One Prisma config for both databases: DATABASE_URL picks the schema, the migrations folder
// and the driver adapter (postgres:// or postgresql:// -> Postgres, anything else -> SQLite).
// The CLI runs Rust-free: wasm schema engine plus JavaScript driver adapters, so migrate and
// generate work offline (see README, "Why Prisma 6.19 with driver adapters").
import path from "node:path";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";

const url = process.env.DATABASE_URL ?? "file:./data/tessera.db";
process.env.DATABASE_URL = url;
const flavor = /^postgres(ql)?:/.test(url) ? "postgres" : "sqlite";

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
