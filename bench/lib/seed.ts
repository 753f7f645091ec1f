// Seeding large session tables for the scale benchmarks: rows copied from one template session
// (and its refresh token) by the database itself, 100,000 per statement (under the Postgres
// pool's 5 s query timeout), so a million rows take seconds, not a million round trips.
import type { PrismaStorage } from "../../src/storage/prisma/index.ts";

export interface SeedOptions {
  /** ids are `${tag}-1` .. `${tag}-${count - 1}`, plus the template `tpl-${tag}` */
  tag: string;
  userId: string;
  clientId: string;
  count: number;
  createdAt: Date;
  expiresAt: Date;
  /** give session x the status list index `statusIdxBase + x` (the template gets `statusIdxBase`) */
  statusIdxBase?: number;
  /**
   * revoke one session in n at `createdAt`, at random (the database's random()): a regular
   * pattern would compress far better than real revocations do
   */
  revokeOneIn?: number;
}

/** `count` sessions, each with one refresh token. */
export async function seedSessions(s: PrismaStorage, o: SeedOptions): Promise<void> {
  const template = `tpl-${o.tag}`;
  const { passwordHash } = await s.db.user.findUniqueOrThrow({ where: { id: o.userId }, select: { passwordHash: true } });
  const started = await s.sessions.start(
    { id: template, userId: o.userId, clientId: o.clientId, scope: "", createdAt: o.createdAt, expiresAt: o.expiresAt, revokedAt: null, revokedReason: null, statusIdx: o.statusIdxBase ?? null },
    { id: `tok-${template}`, sessionId: template, hash: `hash-${template}`, parentId: null, createdAt: o.createdAt, expiresAt: o.expiresAt },
    { passwordHash },
  );
  if (!started) throw new Error(`seed: user ${o.userId} is disabled`);
  const idx = o.statusIdxBase === undefined ? "NULL" : `${o.statusIdxBase} + c.x`;
  const chance = s.flavor === "postgres" ? `random() < ${1 / (o.revokeOneIn ?? 1)}` : `abs(random()) % ${o.revokeOneIn} = 0`;
  const revokedAt = o.revokeOneIn === undefined ? "NULL" : `CASE WHEN ${chance} THEN t."createdAt" ELSE NULL END`;
  for (let from = 1; from < o.count; from += 100_000) {
    const to = Math.min(o.count - 1, from + 99_999);
    const series =
      s.flavor === "postgres"
        ? `generate_series(${from}, ${to}) AS c(x)`
        : `(WITH RECURSIVE c(x) AS (SELECT ${from} UNION ALL SELECT x + 1 FROM c WHERE x < ${to}) SELECT x FROM c) AS c`;
    await s.db.$executeRawUnsafe(
      `INSERT INTO "Session" ("id", "userId", "clientId", "scope", "createdAt", "expiresAt", "statusIdx", "revokedAt") ` +
        `SELECT '${o.tag}-' || c.x, t."userId", t."clientId", t."scope", t."createdAt", t."expiresAt", ${idx}, ${revokedAt} FROM "Session" t, ${series} WHERE t."id" = '${template}'`,
    );
    await s.db.$executeRawUnsafe(
      `INSERT INTO "RefreshToken" ("id", "sessionId", "hash", "createdAt", "expiresAt") ` +
        `SELECT 'tok-${o.tag}-' || c.x, '${o.tag}-' || c.x, 'hash-${o.tag}-' || c.x, t."createdAt", t."expiresAt" FROM "RefreshToken" t, ${series} WHERE t."id" = 'tok-${template}'`,
    );
  }
}
