// Databases for a test file or a benchmark run: a Postgres database created on an admin URL (empty,
// or cloned from a template) and dropped after, or a SQLite file in a temp directory.
// Shared by test/ and bench/ (no vitest imports here).
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";

export interface TempDatabase {
  /** DATABASE_URL for Tessera */
  url: string;
  drop(): Promise<void>;
}

/** `url` pointing at another database on the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs `fn` on a connection to `adminUrl`, closed afterwards. */
async function onAdmin<T>(adminUrl: string, fn: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/** CREATE DATABASE `name` (a clone of `template` when given) on the server of `adminUrl`. */
export async function createPgDatabase(adminUrl: string, name: string, opts: { template?: string } = {}): Promise<TempDatabase> {
  const sql = `CREATE DATABASE "${name}"${opts.template ? ` TEMPLATE "${opts.template}"` : ""}`;
  await onAdmin(adminUrl, async (admin) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(sql);
        return;
      } catch (err) {
        // Two workers cloning the same template at the same instant: wait and retry.
        if (attempt > 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  });
  return { url: withDatabase(adminUrl, name), drop: () => dropPgDatabase(adminUrl, name) };
}

/** DROP DATABASE IF EXISTS ... WITH (FORCE): connections still open are cut. */
export async function dropPgDatabase(adminUrl: string, name: string): Promise<void> {
  await onAdmin(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}

/** Drops every database whose name starts with `prefix`. */
export async function dropPgDatabases(adminUrl: string, prefix: string): Promise<void> {
  await onAdmin(adminUrl, async (admin) => {
    const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${prefix}%`]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  });
}

/**
 * A SQLite database file `file` in a new temp directory named `prefix`..., a copy of `copyOf` when
 * given (else Tessera creates it); `drop` removes the directory.
 */
export function tempSqliteDatabase(prefix: string, opts: { file?: string; copyOf?: string } = {}): TempDatabase & { file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, opts.file ?? "test.db");
  if (opts.copyOf) copyFileSync(opts.copyOf, file);
  return { url: `file:${file}`, file, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}
