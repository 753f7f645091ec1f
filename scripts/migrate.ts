// `npm run migrate`: applies the pending migrations to DATABASE_URL (the same migrate() the server
// runs at start unless MIGRATE_ON_START=false) and prints which ones it applied, or that the
// database was up to date. Exit 0 on success, 1 when a migration fails, 2 on a configuration error.
import { runMain } from "../src/admin/context.ts";
import { loadConfig } from "../src/config.ts";
import { flavorOf, sqlitePath } from "../src/storage/prisma/client.ts";
import { migrate } from "../src/storage/prisma/migrate.ts";

/** The database, for humans: the SQLite file, or the Postgres host and database (no credentials). */
function describeDatabase(url: string): string {
  if (flavorOf(url) === "sqlite") return `SQLite ${sqlitePath(url)}`;
  const u = new URL(url);
  return `Postgres ${u.host}${u.pathname}`;
}

await runMain(async () => {
  const { databaseUrl } = loadConfig({ LOG_LEVEL: "warn", ...process.env });
  const target = describeDatabase(databaseUrl);
  let applied: string[];
  try {
    applied = await migrate(databaseUrl);
  } catch (err) {
    // Prisma's whole output: it names the failing migration and the statement.
    process.stderr.write(`${target}: ${(err as Error).message}\n`);
    return 1;
  }
  if (applied.length === 0) {
    process.stdout.write(`${target}: up to date, no migration to apply\n`);
  } else {
    const n = applied.length;
    process.stdout.write(`${target}: applied ${n} migration${n === 1 ? "" : "s"}\n${applied.map((m) => `  ${m}\n`).join("")}`);
  }
  return 0;
});
