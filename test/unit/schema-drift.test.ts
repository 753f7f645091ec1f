// The migrations must build exactly the schema: per database, one database migrated from empty
// (the run's template, migrated by migrate() in test/setup/databases.ts, i.e. prisma migrate
// deploy) and one created from schema.prisma (Prisma's own `migrate diff --from-empty
// --to-schema-datamodel --script`, executed) must have the same catalog: tables, columns (type,
// nullability, default), primary keys, unique and foreign-key constraints, indexes, and any
// view, trigger, enum or sequence. A schema change without its migration, or a migration that
// does not match the schema, fails here. Column order is not compared (SQLite and Postgres
// append added columns; Prisma ignores the order too), nor is data (the KeyLock row).
//
// Prisma's own check (`migrate diff --from-migrations ... --exit-code`) does not work with the
// driver adapters here: on SQLite the 6.19 engine sends whole migration scripts to the 7.x
// adapter's single-statement executeRaw, on Postgres introspection fails ("Column type 'char'
// could not be deserialized"); `--from-url` and `--shadow-database-url` are refused with an
// adapter config.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { createPgDatabase } from "../helpers/databases.ts";
import { describeEachDb, freshDatabase, type Flavor } from "../helpers/issuer.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (p: string) => readFileSync(path.join(ROOT, p), "utf8");
const SOURCE = "prisma/sqlite/schema.prisma";
const GENERATED = "prisma/postgres/schema.prisma";

describe("schema source", () => {
  it("prisma/postgres/schema.prisma is generated from the SQLite schema: identical but for provider and output", () => {
    const generated = read(GENERATED);
    const [header, body] = [generated.split("\n").slice(0, 4).join("\n"), generated.split("\n").slice(5).join("\n")];
    expect(header).toMatch(new RegExp(`^// GENERATED from ${SOURCE} by scripts/prisma-generate\\.mjs`));
    const sourceHash = createHash("sha256").update(read(SOURCE)).digest("hex");
    expect(header, "stale: run node scripts/prisma-generate.mjs").toContain(`// source-sha256: ${sourceHash}`);
    const normalise = (s: string) =>
      s.replace(/provider = "(sqlite|postgresql)"/, 'provider = "<db>"').replace(/src\/generated\/(sqlite|postgres)/, "src/generated/<db>");
    expect(body).toContain('provider = "postgresql"');
    expect(normalise(body)).toBe(normalise(read(SOURCE)));
  });

  it("both databases have the same migrations, by name", () => {
    const names = (flavor: Flavor) =>
      readdirSync(path.join(ROOT, "prisma", flavor, "migrations"), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    expect(names("postgres")).toEqual(names("sqlite"));
    expect(names("sqlite").length).toBeGreaterThan(0);
  });
});

const execFileAsync = promisify(execFile);
const prismaCli = createRequire(import.meta.url).resolve("prisma/build/index.js");

/** The SQL Prisma would run to create `schema` in an empty database (nothing is connected to on SQLite). */
async function createScript(schema: string, databaseUrl: string): Promise<string> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [prismaCli, "migrate", "diff", "--from-empty", "--to-schema-datamodel", schema, "--script"],
    {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
      timeout: 60_000,
    },
  );
  expect(stdout).toMatch(/CREATE TABLE/);
  return stdout;
}

type Catalog = Record<string, unknown>;
const squash = (sql: string | null) => (sql ?? "").replace(/\s+/g, " ").trim();

/** Everything SQLite knows about the schema, keyed by name, without Prisma's _prisma_migrations. */
function sqliteCatalog(db: Database.Database): Catalog {
  const objects = db
    .prepare(
      `SELECT type, name, sql FROM sqlite_master
       WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> '_prisma_migrations' ORDER BY type, name`,
    )
    .all() as Array<{ type: string; name: string; sql: string | null }>;
  const tables: Catalog = {};
  for (const { name, sql } of objects.filter((o) => o.type === "table")) {
    const columns: Catalog = {};
    for (const c of db.prepare(`SELECT * FROM pragma_table_xinfo(?)`).all(name) as Array<{ name: string; cid: number }>) {
      const { cid: _position, name: column, ...rest } = c;
      columns[column] = rest; // type, notnull, dflt_value, pk (position in the key), hidden
    }
    const indexes = (
      db.prepare(`SELECT * FROM pragma_index_list(?)`).all(name) as Array<{ name: string; unique: number; origin: string; partial: number }>
    )
      .map((i) => ({
        // SQLite names the indexes of PRIMARY KEY / UNIQUE clauses itself: compare them by content.
        name: i.name.startsWith("sqlite_autoindex_") ? `(${i.origin} autoindex)` : i.name,
        unique: i.unique,
        origin: i.origin,
        columns: (
          db.prepare(`SELECT name, "desc", coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno`).all(i.name) as Array<{
            name: string | null;
            desc: number;
            coll: string;
          }>
        ).map((k) => `${k.name ?? "<expression>"} ${k.desc ? "DESC" : "ASC"} ${k.coll}`),
        where: i.partial ? squash(objects.find((o) => o.type === "index" && o.name === i.name)?.sql ?? null).replace(/^.*? WHERE /i, "") : null,
      }))
      .sort((a, b) => `${a.name} ${a.columns}`.localeCompare(`${b.name} ${b.columns}`));
    const fkRows = db.prepare(`SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq`).all(name) as Array<{
      id: number;
      table: string;
      from: string;
      to: string | null;
      on_update: string;
      on_delete: string;
      match: string;
    }>;
    const foreignKeys = [...new Set(fkRows.map((r) => r.id))]
      .map((id) => {
        const rows = fkRows.filter((r) => r.id === id);
        const { table, on_update, on_delete, match } = rows[0]!;
        return { from: rows.map((r) => r.from), table, to: rows.map((r) => r.to), on_update, on_delete, match };
      })
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    const kind = db.prepare(`SELECT type, wr, strict FROM pragma_table_list WHERE schema = 'main' AND name = ?`).get(name);
    tables[name] = { kind, autoincrement: /\bAUTOINCREMENT\b/i.test(sql ?? ""), columns, indexes, foreignKeys };
  }
  const other = (type: string) => Object.fromEntries(objects.filter((o) => o.type === type).map((o) => [o.name, squash(o.sql)]));
  return { tables, views: other("view"), triggers: other("trigger") };
}

/** Everything Postgres knows about the schema "public", without Prisma's _prisma_migrations. */
async function postgresCatalog(url: string): Promise<Catalog> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const rows = async (sql: string) => (await client.query(sql)).rows as Array<Record<string, unknown>>;
    const inPublic = `JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname <> '_prisma_migrations'`;
    const relations = await rows(
      `SELECT c.relname AS name, c.relkind::text AS kind,
              CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
       FROM pg_class c ${inPublic} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY 1`,
    );
    const columns = await rows(
      `SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
              a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default,
              a.attidentity::text AS identity, a.attgenerated::text AS generated, coll.collname AS collation
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       LEFT JOIN pg_collation coll ON coll.oid = a.attcollation
       ${inPublic} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2`,
    );
    const constraints = await rows(
      `SELECT c.relname AS table, con.conname AS name, con.contype::text AS type, pg_get_constraintdef(con.oid) AS definition
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid ${inPublic} ORDER BY 1, 2`,
    );
    const indexes = await rows(
      `SELECT tablename AS table, indexname AS name, indexdef AS definition FROM pg_indexes
       WHERE schemaname = 'public' AND tablename <> '_prisma_migrations' ORDER BY 1, 2`,
    );
    const triggers = await rows(
      `SELECT c.relname AS table, t.tgname AS name, pg_get_triggerdef(t.oid) AS definition
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid ${inPublic} AND NOT t.tgisinternal ORDER BY 1, 2`,
    );
    const enums = await rows(
      `SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public' GROUP BY 1 ORDER BY 1`,
    );
    const tables: Catalog = {};
    for (const r of relations) {
      const of = <T extends Record<string, unknown>>(list: T[]) =>
        Object.fromEntries(list.filter((x) => x.table === r.name).map(({ table: _t, name, column, ...rest }) => [(name ?? column) as string, rest]));
      tables[r.name as string] = {
        kind: r.kind,
        definition: r.definition,
        columns: of(columns),
        constraints: of(constraints),
        indexes: of(indexes),
        triggers: of(triggers),
      };
    }
    return { tables, enums };
  } finally {
    await client.end();
  }
}

describeEachDb("migrations build exactly schema.prisma", (flavor) => {
  it("a database migrated from empty and one created from the schema have the same catalog", async () => {
    const migrated = await freshDatabase(flavor); // a copy of the run's migrated template
    const cleanup: Array<() => Promise<void> | void> = [migrated.drop];
    try {
      if (flavor === "sqlite") {
        const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-drift-"));
        cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
        const script = await createScript(SOURCE, `file:${path.join(dir, "unused.db")}`);
        const fromSchema = new Database(":memory:");
        cleanup.push(() => void fromSchema.close());
        fromSchema.exec(script);
        const fromMigrations = new Database(migrated.url.replace(/^file:/, ""), { readonly: true, fileMustExist: true });
        cleanup.push(() => void fromMigrations.close());

        const expected = sqliteCatalog(fromSchema);
        expect(sqliteCatalog(fromMigrations), "the migrations do not build schema.prisma: add or fix a migration").toEqual(expected);
        // The comparison sees a column the migrations would lack.
        fromSchema.exec(`ALTER TABLE "User" ADD COLUMN "driftProbe" TEXT`);
        expect(sqliteCatalog(fromSchema)).not.toEqual(expected);
      } else {
        const info = inject("postgres")!;
        const scratch = await createPgDatabase(info.adminUrl, `${info.prefix}_drift_${process.pid}`);
        cleanup.push(scratch.drop);
        // prisma.config.ts refuses a stale generated Postgres schema, so this is the current model.
        const script = await createScript(GENERATED, scratch.url);
        const client = new pg.Client({ connectionString: scratch.url });
        await client.connect();
        try {
          await client.query(script);
        } finally {
          await client.end();
        }

        const expected = await postgresCatalog(scratch.url);
        expect(await postgresCatalog(migrated.url), "the migrations do not build schema.prisma: add or fix a migration").toEqual(expected);
        const probe = new pg.Client({ connectionString: scratch.url });
        await probe.connect();
        await probe.query(`ALTER TABLE "User" ADD COLUMN "driftProbe" TEXT`).finally(() => probe.end());
        expect(await postgresCatalog(scratch.url)).not.toEqual(expected);
      }
    } finally {
      for (const fn of cleanup.reverse()) await fn();
    }
  }, 60_000);
});
