// Global setup: migrate one template database per flavour, once per run. Each test file then
// clones its own database from it (a file copy for SQLite, CREATE DATABASE ... TEMPLATE for
// Postgres), so files never share state and no file pays for migrations.
// TEST_DATABASE_URL=postgresql://... adds Postgres; without it only SQLite runs, unless
// TESSERA_REQUIRE_POSTGRES=1, which makes a missing or unreachable Postgres fail the run.
import type { TestProject } from "vitest/node";
import { migrate } from "../../src/storage/prisma/migrate.ts";
import { createPgDatabase, dropPgDatabases, tempSqliteDatabase } from "../helpers/databases.ts";

declare module "vitest" {
  export interface ProvidedContext {
    sqliteTemplate: string;
    postgres: { adminUrl: string; template: string; prefix: string } | null;
    /** TEST_REDIS_URL when set and reachable (Redis-backed rate limits) */
    redis: string | null;
  }
}

export default async function setup(project: TestProject) {
  const sqliteTemplate = tempSqliteDatabase("tessera-test-", { file: "template.db" });
  await migrate(sqliteTemplate.url);
  project.provide("sqliteTemplate", sqliteTemplate.file);

  const adminUrl = process.env.TEST_DATABASE_URL;
  let cleanupPg: (() => Promise<void>) | undefined;
  if (adminUrl) {
    const prefix = `tessera_t${process.pid}_${Date.now().toString(36)}`;
    const template = `${prefix}_tmpl`;
    await migrate((await createPgDatabase(adminUrl, template)).url);
    project.provide("postgres", { adminUrl, template, prefix });
    // The template and every database cloned from it
    cleanupPg = () => dropPgDatabases(adminUrl, prefix);
  } else if (process.env.TESSERA_REQUIRE_POSTGRES === "1") {
    throw new Error("TESSERA_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set: the Postgres suite would be skipped");
  } else {
    project.provide("postgres", null);
  }

  // TEST_REDIS_URL=redis://... adds the Redis-backed tests; TESSERA_REQUIRE_REDIS=1 makes a
  // missing or unreachable Redis fail the run instead of skipping them.
  const redisUrl = process.env.TEST_REDIS_URL ?? null;
  if (redisUrl) {
    const { Redis } = await import("ioredis");
    const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
    try {
      await probe.connect();
      await probe.ping();
    } finally {
      probe.disconnect();
    }
    project.provide("redis", redisUrl);
  } else if (process.env.TESSERA_REQUIRE_REDIS === "1") {
    throw new Error("TESSERA_REQUIRE_REDIS=1 but TEST_REDIS_URL is not set: the Redis suite would be skipped");
  } else {
    project.provide("redis", null);
  }

  return async () => {
    await cleanupPg?.();
    await sqliteTemplate.drop();
  };
}
