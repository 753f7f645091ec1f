// The token status list stores on Prisma: the shared index counter (StatusIndexStore) and the
// revoked indices the lists are built from (RevokedIndexStore).
import type { StatusIndexStore } from "../../domain/tokens/status-index.ts";
import type { RevokedIndexStore } from "../../domain/tokens/status-publisher.ts";
import type { Db } from "./client.ts";

/** The counter's one row (inserted by the migration 20261129020000_token_status_list). */
const COUNTER = { id: 1 };

export function prismaStatusIndexStore(db: Db): StatusIndexStore {
  return {
    async reserve(count) {
      // One UPDATE ... SET "next" = "next" + count: atomic on both databases (Postgres locks the
      // row until commit, SQLite runs it under its single writer lock), so concurrent reservations,
      // from any instance, get disjoint blocks.
      const { next } = await db.statusIndexCounter.update({ where: COUNTER, data: { next: { increment: count } }, select: { next: true } });
      return Number(next) - count;
    },
    async reserved() {
      const row = await db.statusIndexCounter.findUnique({ where: COUNTER, select: { next: true } });
      if (!row) throw new Error("the StatusIndexCounter row is missing: apply the database migrations");
      return Number(row.next);
    },
  };
}

/** BIGINT as the drivers return it */
type Row = { statusIdx: bigint | number | string };

export function prismaRevokedIndexStore(db: Db): RevokedIndexStore {
  return {
    async revokedIndices() {
      // Two reads, O(revoked) rather than O(sessions): the index Session(revokedAt, statusIdx)
      // answers the first alone (an index-only range scan; Prisma's findMany would also select
      // the id, which is not in it); RevokedAccessToken holds only revoked, unexpired tokens.
      const sessions = await db.$queryRaw<Row[]>`SELECT "statusIdx" FROM "Session" WHERE "revokedAt" IS NOT NULL AND "statusIdx" IS NOT NULL`;
      const tokens = await db.$queryRaw<Row[]>`SELECT "statusIdx" FROM "RevokedAccessToken" WHERE "statusIdx" IS NOT NULL`;
      return [...sessions, ...tokens].map((r) => Number(r.statusIdx));
    },
  };
}
