// Counts the SQL statements Tessera sends per operation (Prisma query events), in-process on a
// fresh database: `npx tsx bench/count-queries.ts [sqlite|postgres]` (Postgres needs
// BENCH_DATABASE_URL or TEST_DATABASE_URL). Prints each operation's statements.
import Database from "better-sqlite3";
import type { DirectHandle } from "../src/storage/prisma/client.ts";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { PrismaBetterSqlite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { buildApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { PrismaClient as PostgresClient } from "../src/generated/postgres/client.ts";
import { PrismaClient as SqliteClient } from "../src/generated/sqlite/client.ts";
import { createLogger } from "../src/logger.ts";
import { createServices } from "../src/services.ts";
import { driverQueries, prismaStorage } from "../src/storage/prisma/index.ts";
import { migrate } from "../src/storage/prisma/migrate.ts";
import { makeTempDir, runCleanups, runDatabase } from "./lib/proc.ts";

const flavor = process.argv[2] === "postgres" ? "postgres" : "sqlite";
const adminUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || "";

async function main(): Promise<void> {
  const dir = makeTempDir("tessera-count-");
  let url: string;
  if (flavor === "sqlite") {
    url = `file:${path.join(dir, "count.db")}`;
  } else {
    if (!adminUrl) throw new Error("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) for postgres");
    url = (await runDatabase(adminUrl, `bench_count_${randomBytes(4).toString("hex")}`)).url;
  }
  await migrate(url);

  const log = [{ emit: "event", level: "query" }] as const;
  const queries: string[] = [];
  let db: SqliteClient;
  if (flavor === "sqlite") {
    db = new SqliteClient({ adapter: new PrismaBetterSqlite3({ url: `file:${url.slice(5)}`, timeout: 5000 }), log: [...log] });
    await db.$queryRawUnsafe("PRAGMA journal_mode = WAL");
    await db.$queryRawUnsafe("PRAGMA synchronous = NORMAL");
    await db.$queryRawUnsafe("PRAGMA foreign_keys = ON");
  } else {
    db = new PostgresClient({ adapter: new PrismaPg({ connectionString: url, max: 10 }), log: [...log] }) as unknown as SqliteClient;
  }
  (db as unknown as { $on(e: "query", cb: (e: { query: string }) => void): void }).$on("query", (e) => queries.push(e.query));

  const config = loadConfig({ DATABASE_URL: url, KEYS_DIR: path.join(dir, "keys"), LOG_LEVEL: "silent" });
  const logger = createLogger("silent");
  // The login lookup and the refresh hot path bypass Prisma (src/storage/prisma/user-queries.ts,
  // session-queries.ts): count their statements too.
  const direct: DirectHandle =
    flavor === "sqlite"
      ? { flavor: "sqlite", sqlite: new Database(url.slice(5), { timeout: 0 }) }
      : { flavor: "postgres", pool: new pg.Pool({ connectionString: url, max: 10 }) };
  const inner = driverQueries(direct);
  const storage = prismaStorage(db, flavor, direct, {
    users: {
      findUserByEmail: (email) => (queries.push("[driver] SELECT user by email"), inner.users.findUserByEmail(email)),
    },
    sessions: {
      startSession: (s, t, c) => (queries.push("[driver] INSERT session + first refresh token (one transaction)"), inner.sessions.startSession(s, t, c)),
      findToken: (hash) => (queries.push("[driver] SELECT refresh token + session + successor"), inner.sessions.findToken(hash)),
      insertChild: (c, now) => (queries.push("[driver] INSERT refresh token if the session is live"), inner.sessions.insertChild(c, now)),
      pruneChunk: (after, ended, revoked, limit) => (queries.push("[driver] prune: a chunk of dead sessions"), inner.sessions.pruneChunk(after, ended, revoked, limit)),
    },
    loginThrottle: inner.loginThrottle,
    audit: {
      insertEvent: (e) => (queries.push(`[driver] INSERT audit event (${e.type})`), inner.audit.insertEvent(e)),
    },
  });
  const services = await createServices(config, logger, { storage });
  const app = await buildApp(services, logger);
  await app.ready();

  const form = (p: Record<string, string>) => ({
    method: "POST" as const,
    url: "/oauth/token",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    payload: new URLSearchParams(p).toString(),
  });
  async function measure(label: string, run: () => Promise<{ statusCode: number; body: string }>) {
    queries.length = 0;
    const res = await run();
    console.log(`\n${label}: HTTP ${res.statusCode}, ${queries.length} statements`);
    for (const q of queries) console.log(`  ${q.replace(/\s+/g, " ").slice(0, 240)}`);
    return res;
  }

  const email = "count@example.test";
  const password = "correct horse battery staple";
  await measure("register", () => app.inject({ method: "POST", url: "/auth/register", payload: { email, password } }));
  const loginRes = await measure("password grant", () =>
    app.inject(form({ grant_type: "password", username: email, password, client_id: "web" })),
  );
  const tokens = [(JSON.parse(loginRes.body) as { refresh_token: string }).refresh_token];
  for (let i = 1; i <= 2; i++) {
    const r = await measure(`refresh #${i}`, () =>
      app.inject(form({ grant_type: "refresh_token", refresh_token: tokens.at(-1)!, client_id: "web" })),
    );
    tokens.push((JSON.parse(r.body) as { refresh_token: string }).refresh_token);
  }
  await measure("reuse of a rotated token", () => app.inject(form({ grant_type: "refresh_token", refresh_token: tokens[0]!, client_id: "web" })));
  await measure("GET /.well-known/jwks.json", () => app.inject({ method: "GET", url: "/.well-known/jwks.json" }));
  await app.close();
  // Prisma and the direct handle: an open pool would outlive the database dropped at cleanup.
  await storage.close();
}

try {
  await main();
} catch (err) {
  console.error((err as Error).stack ?? String(err));
  process.exitCode = 1;
} finally {
  await runCleanups();
}
