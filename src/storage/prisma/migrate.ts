// Applies the committed migrations for the database in `url` with Prisma's own migrate deploy
// (wasm schema engine + driver adapter; no native engine download). Idempotent.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { lockExclusive, unlockAndClose } from "../sqlite-lock.ts";
import { projectRoot } from "../../project-root.ts";
import { flavorOf, sqlitePath } from "./client.ts";

/** The package root (where prisma.config.ts and prisma/ live), from src/ or dist/src/. */

/**
 * Applies the pending migrations. Resolves with the names of the migrations this call applied,
 * in order; [] when every migration was already applied (the usual case, which runs no CLI).
 */
export async function migrate(url: string): Promise<string[]> {
  const root = projectRoot();
  if (flavorOf(url) === "sqlite") {
    // Resolve a relative SQLite path against our cwd, not the CLI's, so both open one file.
    await fs.mkdir(path.dirname(sqlitePath(url)), { recursive: true });
    url = `file:${sqlitePath(url)}`;
  }
  const wanted = await migrationNames(path.join(root, "prisma", flavorOf(url), "migrations"));
  const pending = (applied: string[]) => wanted.filter((m) => !applied.includes(m));
  /** migrate deploy, then the migrations finished now that were not before it */
  const deploy = async (before: string[]) => {
    await runMigrateDeploy(root, url);
    const after = await finishedMigrations(url);
    return pending(before).filter((m) => after.includes(m));
  };
  // The usual case (every migration already applied) needs no CLI run: on Postgres the CLI
  // takes ~10 s (a timer in its wasm engine) and takes the migration lock.
  const before = await finishedMigrations(url);
  if (pending(before).length === 0) return [];
  if (flavorOf(url) === "postgres") return deploy(before);
  // SQLite: Prisma's migrate deploy takes no lock there, and two processes migrating one new
  // file at once (two cron runs, a server and a cron run) make one of them fail. Serialise them
  // with a lock the OS drops if its holder dies, then look again: the first one may have done it.
  return withSqliteMigrationLock(sqlitePath(url), async () => {
    const locked = await finishedMigrations(url);
    return pending(locked).length === 0 ? [] : deploy(locked);
  });
}

/**
 * Runs `fn` holding an exclusive lock on `<database>.migrate-lock` (a SQLite file locked with
 * BEGIN EXCLUSIVE: a POSIX lock the kernel releases when the process exits, so it never goes
 * stale). Polled without blocking the event loop.
 */
async function withSqliteMigrationLock<T>(dbFile: string, fn: () => Promise<T>): Promise<T> {
  const lockFile = `${dbFile}.migrate-lock`;
  const lock = new Database(lockFile, { timeout: 0 });
  let held = false;
  try {
    held = await lockExclusive(lock, Date.now() + 120_000, () => 50 + Math.random() * 50);
    if (!held) throw new Error(`${lockFile} is still held by another process after 120 s (a migration running elsewhere?)`);
    return await fn();
  } finally {
    if (held) unlockAndClose(lock);
    else lock.close();
  }
}

function runMigrateDeploy(root: string, url: string): Promise<string> {
  const cli = createRequire(path.join(root, "package.json")).resolve("prisma/build/index.js");
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [cli, "migrate", "deploy"],
      {
        cwd: root,
        env: { ...process.env, DATABASE_URL: url, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        if (err) {
          // Prisma's output names the failing migration; the URL (with any password) is not echoed.
          reject(new Error(`database migration failed:\n${stdout}\n${stderr}`.trim()));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** The migration folders' names, in the order migrate deploy applies them. */
async function migrationNames(migrationsDir: string): Promise<string[]> {
  return (await fs.readdir(migrationsDir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

/** The migrations _prisma_migrations lists as finished (and not rolled back). */
async function finishedMigrations(url: string): Promise<string[]> {
  const sql = `SELECT "migration_name" AS name FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL AND "rolled_back_at" IS NULL`;
  try {
    if (flavorOf(url) === "postgres") {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
      await client.connect();
      try {
        return (await client.query<{ name: string }>(sql)).rows.map((r) => r.name);
      } finally {
        await client.end();
      }
    }
    const file = sqlitePath(url);
    if (!existsSync(file)) return [];
    const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5000 });
    try {
      return (db.prepare(sql).all() as Array<{ name: string }>).map((r) => r.name);
    } finally {
      db.close();
    }
  } catch {
    return []; // no migrations table yet, or unreachable: let the CLI do (or report) it
  }
}
