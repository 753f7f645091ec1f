// Opens the Prisma client that matches DATABASE_URL. SQLite and Postgres have separate
// generated clients (the provider is fixed per schema); their model APIs are identical, so
// the rest of storage/prisma is written once against the SQLite client's type.
//
// Next to Prisma, each database gets a direct driver handle for the hot paths that bypass the ORM
// (session-queries.ts, user-queries.ts, login-throttle.ts, audit-queries.ts): on Postgres the very
// pool the adapter uses, on SQLite a second connection (and, for WAL checkpoints, a worker
// thread's: checkpointer.ts).
import { AsyncLocalStorage } from "node:async_hooks";
import fs from "node:fs";
import path from "node:path";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import Database from "better-sqlite3";
import pg from "pg";
import { PrismaClient as SqliteClient } from "../../generated/sqlite/client.ts";
import { PrismaClient as PostgresClient } from "../../generated/postgres/client.ts";
import { AUTOCHECKPOINT_PAGES, startCheckpointer, WAL_SIZE_LIMIT, type Checkpointer, type CheckpointerOptions } from "./checkpointer.ts";

export type Db = SqliteClient;
export type DbFlavor = "sqlite" | "postgres";

export type DirectHandle =
  | { flavor: "postgres"; pool: pg.Pool }
  | { flavor: "sqlite"; sqlite: Database.Database; checkpointer?: Checkpointer };

/**
 * The transaction client while a Prisma interactive transaction runs (database-key-store.ts). On
 * SQLite that transaction holds the write lock on Prisma's connection, so a write on the direct
 * connection from inside it (an audit event recorded by the key manager) could never get the
 * lock: such writes go through this client instead, and are part of the transaction.
 */
export const inPrismaTransaction = new AsyncLocalStorage<Pick<Db, "auditEvent">>();

export const flavorOf = (url: string): DbFlavor => (/^postgres(ql)?:/.test(url) ? "postgres" : "sqlite");

/** file:./data/x.db -> absolute path of the SQLite file */
export function sqlitePath(url: string): string {
  return path.resolve(url.replace(/^file:/, "").replace(/\?.*$/, ""));
}

export interface OpenOptions {
  /** Postgres pool size */
  poolSize?: number;
  /** SQLite: WAL checkpoints in a worker thread (checkpointer.ts); default on, false = SQLite's inline ones */
  checkpointer?: false | CheckpointerOptions;
}

export async function openDb(url: string, opts: OpenOptions = {}): Promise<{ db: Db; flavor: DbFlavor; direct: DirectHandle }> {
  if (flavorOf(url) === "postgres") {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      // Fail fast when the database is down instead of queueing requests forever.
      connectionTimeoutMillis: 3000,
      // A database that stops answering (partition, frozen host) must not hang a request on an
      // already-open connection: give up on a query after 5 s (-> 503, connection discarded).
      query_timeout: 5000,
    });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on("error", () => undefined);
    const db = new PostgresClient({ adapter: new PrismaPg(pool) }) as unknown as Db;
    return { db, flavor: "postgres", direct: { flavor: "postgres", pool } };
  }
  const file = sqlitePath(url);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // busy timeout: another process (the rotation script) may hold the write lock briefly.
  const adapter = new PrismaBetterSqlite3({ url: `file:${file}`, timeout: 5000 });
  const db = new SqliteClient({ adapter });
  // WAL lets readers proceed during a write; NORMAL sync is durable across process crashes.
  await db.$queryRawUnsafe("PRAGMA journal_mode = WAL");
  await db.$queryRawUnsafe("PRAGMA synchronous = NORMAL");
  await db.$queryRawUnsafe("PRAGMA foreign_keys = ON");
  // The second connection never waits inside SQLite (that would block the event loop while
  // Prisma's connection holds the write lock across awaits); retryWhileBusy (driver.ts) retries instead.
  const sqlite = new Database(file, { timeout: 0 });
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  const checkpointer =
    opts.checkpointer === false
      ? undefined
      : await startCheckpointer(
          file,
          async (worker) => {
            // Both connections write: each commit checks its own connection's settings.
            const pragmas = worker ? ["wal_autocheckpoint = 0", `journal_size_limit = ${WAL_SIZE_LIMIT}`] : [`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`, "journal_size_limit = -1"];
            for (const p of pragmas) {
              sqlite.pragma(p);
              await db.$queryRawUnsafe(`PRAGMA ${p}`);
            }
          },
          opts.checkpointer,
        );
  return { db, flavor: "sqlite", direct: { flavor: "sqlite", sqlite, checkpointer } };
}

/** Closes the direct driver handle (after Prisma's own disconnect: on Postgres they share the pool). */
export async function closeDirect(direct: DirectHandle): Promise<void> {
  if (direct.flavor === "sqlite") {
    await direct.checkpointer?.close();
    direct.sqlite.close();
  } else {
    await direct.pool.end();
  }
}
