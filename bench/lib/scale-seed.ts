// Seeding users, and sessions spread across them, for bench/scale.ts: rows copied from a template
// row by the database itself, 25,000 per statement, like seedSessions in seed.ts (which seeds
// many sessions for one user; these give each session its own owner among the seeded users).
import pg from "pg";
import type { PrismaStorage } from "../../src/storage/prisma/index.ts";

/**
 * Rows per statement. 50,000 took 1-2 s per statement on Postgres 15 at 200k rows (random index
 * keys, busy 2-core machine): half that leaves room under the pool's 5 s query timeout at 1M.
 */
const STEP = 25_000;

/** The rows c.x = from..to as a FROM item. */
const series = (s: PrismaStorage, from: number, to: number) =>
  s.flavor === "postgres"
    ? `generate_series(${from}, ${to}) AS c(x)`
    : `(WITH RECURSIVE c(x) AS (SELECT ${from} UNION ALL SELECT x + 1 FROM c WHERE x < ${to}) SELECT x FROM c) AS c`;

/**
 * A random 43-character value per row, shaped like a real refresh token hash (base64url SHA-256):
 * lookups and inserts then meet an index of random keys, as in production, not an ordered one.
 */
const randomHash = (s: PrismaStorage) =>
  s.flavor === "postgres"
    ? `translate(rtrim(encode(sha256(convert_to(random()::text || c.x, 'UTF8')), 'base64'), '='), '+/', '-_')`
    : `substr(hex(randomblob(22)), 1, 43)`;

/** Runs `fn(from, to)` over 1..count in steps of STEP. */
async function inSteps(count: number, fn: (from: number, to: number) => Promise<unknown>): Promise<void> {
  for (let from = 1; from <= count; from += STEP) await fn(from, Math.min(count, from + STEP - 1));
}

/**
 * Users `${prefix}1` .. `${prefix}${count}` (emails `${prefix}N@scale.bench`), copies of the user
 * `templateId`: same password hash (a real one) and roles.
 */
export async function seedUsers(s: PrismaStorage, o: { templateId: string; prefix: string; count: number }): Promise<void> {
  await inSteps(o.count, (from, to) =>
    s.db.$executeRawUnsafe(
      `INSERT INTO "User" ("id", "email", "passwordHash", "roles", "createdAt") ` +
        `SELECT '${o.prefix}' || c.x, '${o.prefix}' || c.x || '@scale.bench', t."passwordHash", t."roles", t."createdAt" ` +
        `FROM "User" t, ${series(s, from, to)} WHERE t."id" = '${o.templateId}'`,
    ),
  );
}

/**
 * `count` sessions `${tag}-1` .. `${tag}-${count}`, each with one refresh token (random hash),
 * copied from the session `templateId` and its token `tok-${templateId}` (seed.ts's template), but
 * owned round-robin by the users `${userPrefix}1` .. `${userPrefix}${users}`. Status list
 * indices `statusIdxBase + 1` .. `statusIdxBase + count` (reserve them first).
 */
export async function seedSpreadSessions(
  s: PrismaStorage,
  o: { tag: string; templateId: string; userPrefix: string; users: number; count: number; statusIdxBase: number },
): Promise<void> {
  await inSteps(o.count, async (from, to) => {
    await s.db.$executeRawUnsafe(
      `INSERT INTO "Session" ("id", "userId", "clientId", "scope", "createdAt", "expiresAt", "statusIdx") ` +
        `SELECT '${o.tag}-' || c.x, '${o.userPrefix}' || (c.x % ${o.users} + 1), t."clientId", t."scope", t."createdAt", t."expiresAt", ${o.statusIdxBase} + c.x ` +
        `FROM "Session" t, ${series(s, from, to)} WHERE t."id" = '${o.templateId}'`,
    );
    await s.db.$executeRawUnsafe(
      `INSERT INTO "RefreshToken" ("id", "sessionId", "hash", "createdAt", "expiresAt") ` +
        `SELECT 'tok-${o.tag}-' || c.x, '${o.tag}-' || c.x, ${randomHash(s)}, t."createdAt", t."expiresAt" ` +
        `FROM "RefreshToken" t, ${series(s, from, to)} WHERE t."id" = 'tok-${o.templateId}'`,
    );
  });
}

/**
 * After a bulk seed, the state a database reaches in service: Postgres VACUUM ANALYZEd (what
 * autovacuum does in time: planner statistics, visibility map, hint bits set), on a client of its
 * own (at a million rows it may outlast the pool's 5 s query timeout), then CHECKPOINTed; SQLite's
 * WAL checkpointed.
 */
export async function settle(s: PrismaStorage, url: string): Promise<void> {
  if (s.flavor === "sqlite") {
    await s.db.$queryRawUnsafe("PRAGMA wal_checkpoint(TRUNCATE)");
    return;
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`VACUUM ANALYZE "User", "Session", "RefreshToken"`);
    // The seed's dirty pages written now, not by the checkpointer during the measurement (needs
    // superuser or pg_checkpoint; skipped without).
    await c.query("CHECKPOINT").catch(() => undefined);
  } finally {
    await c.end();
  }
}
