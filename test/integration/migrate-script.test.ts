// `npm run migrate` as a deploy job runs it (a real `npm run`, child process, real database): on an
// empty database it applies every migration and names them, run again it applies nothing and says
// so; a migration that cannot run exits 1 with Prisma's reason, a bad DATABASE_URL exits 2.
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, expect, inject, it } from "vitest";
import { createPgDatabase, tempSqliteDatabase, type TempDatabase } from "../helpers/databases.ts";
import { describeEachDb, type Flavor } from "../helpers/issuer.ts";
import { baseEnv, ROOT } from "../helpers/process.ts";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run --silent migrate` with only `env` (and what npm needs) in its environment. */
function npmRunMigrate(env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile("npm", ["run", "--silent", "migrate"], { cwd: ROOT, env: { ...baseEnv(), ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const describeRun = (r: Run) => `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

const migrationNames = (flavor: Flavor) =>
  readdirSync(path.join(ROOT, "prisma", flavor, "migrations"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

const drops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const drop of drops.splice(0)) await drop();
});

let counter = 0;
/** A new, empty database (for SQLite: a path whose file and directory do not exist yet). */
async function emptyDatabase(flavor: Flavor): Promise<TempDatabase> {
  const db =
    flavor === "sqlite"
      ? tempSqliteDatabase("tessera-migrate-", { file: "new/tessera.db" })
      : await createPgDatabase(inject("postgres")!.adminUrl, `${inject("postgres")!.prefix}_migrate_${process.pid}_${++counter}`);
  drops.push(db.drop);
  return db;
}

async function finishedMigrations(flavor: Flavor, url: string): Promise<string[]> {
  const sql = `SELECT "migration_name" AS name FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL ORDER BY 1`;
  if (flavor === "sqlite") {
    const db = new Database(url.replace(/^file:/, ""), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare(sql).all() as Array<{ name: string }>).map((r) => r.name);
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ name: string }>(sql)).rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

describeEachDb("npm run migrate", (flavor) => {
  it("applies every migration to an empty database and names them; run again, reports it up to date", async () => {
    const db = await emptyDatabase(flavor);
    const names = migrationNames(flavor);
    expect(names.length).toBeGreaterThan(0);

    const first = await npmRunMigrate({ DATABASE_URL: db.url });
    expect(first.code, describeRun(first)).toBe(0);
    const lines = first.stdout.trimEnd().split("\n");
    expect(lines[0], describeRun(first)).toMatch(new RegExp(`: applied ${names.length} migrations$`));
    expect(lines.slice(1).map((l) => l.trim())).toEqual(names);
    expect(await finishedMigrations(flavor, db.url)).toEqual(names);

    const second = await npmRunMigrate({ DATABASE_URL: db.url });
    expect(second.code, describeRun(second)).toBe(0);
    expect(second.stdout.trimEnd(), describeRun(second)).toMatch(/: up to date, no migration to apply$/);
    expect(second.stdout).not.toMatch(new RegExp(names.join("|")));
  }, 90_000);

  it("exits 1 with the reason when the migrations cannot be applied", async () => {
    let url: string;
    if (flavor === "sqlite") {
      // The database path is a directory: SQLite cannot open it.
      const db = tempSqliteDatabase("tessera-migrate-");
      drops.push(db.drop);
      mkdirSync(db.file);
      url = db.url;
    } else {
      const info = inject("postgres")!;
      const u = new URL(info.adminUrl);
      u.pathname = `/${info.prefix}_missing_${process.pid}`;
      url = u.toString();
    }
    const r = await npmRunMigrate({ DATABASE_URL: url });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr, describeRun(r)).toMatch(/database migration failed/);
    expect(r.stdout).toBe("");
  }, 60_000);
});

it("exits 2 on a DATABASE_URL that is neither SQLite nor Postgres", async () => {
  const r = await npmRunMigrate({ DATABASE_URL: "mysql://localhost/tessera" });
  expect(r.code, describeRun(r)).toBe(2);
  expect(r.stderr).toMatch(/DATABASE_URL: expected file:<path> \(SQLite\) or postgresql:\/\/\.\.\. \(Postgres\)/);
});
