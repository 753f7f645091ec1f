// The SessionStore on Prisma. The refresh hot path (findToken, insertChild) and login's session
// start run on the driver directly (session-queries.ts): one read (token + session + child) and
// one INSERT whose unique parentId arbitrates concurrent consumers.
import type { SessionRecord, SessionStore } from "../../domain/sessions/session-store.ts";
import type { Db } from "./client.ts";
import type { SessionQueries } from "./session-queries.ts";

const tokenFields = {
  id: true,
  sessionId: true,
  hash: true,
  parentId: true,
  createdAt: true,
  expiresAt: true,
} as const;

type SessionRow = Omit<SessionRecord, "statusIdx" | "userAgent" | "address"> & { statusIdx: bigint | null; userAgent: string | null; address: string | null };

/**
 * A Session row as the domain sees it (the status list index is a BIGINT: bigint in Prisma); the
 * login metadata only when it was kept, as the session was started.
 */
const toSession = ({ statusIdx, userAgent, address, ...row }: SessionRow): SessionRecord => ({
  ...row,
  statusIdx: statusIdx === null ? null : Number(statusIdx),
  ...(userAgent !== null ? { userAgent } : {}),
  ...(address !== null ? { address } : {}),
});

/** Sessions looked at per chunk when pruning; the dead among them go in one DELETE. */
export const PRUNE_CHUNK = 200;

export function prismaSessionStore(db: Db, queries: SessionQueries): SessionStore {
  return {
    // Login's session + first token run on the driver, in one transaction (session-queries.ts).
    start: (session, first, check) => queries.startSession(session, first, check),

    findToken: (hash) => queries.findToken(hash),

    insertChild: (child, now) => queries.insertChild(child, now),

    async findChildOf(parentId) {
      const r = await db.refreshToken.findUnique({
        where: { parentId },
        select: { ...tokenFields, child: { select: { id: true } } },
      });
      if (!r) return null;
      const { child, ...token } = r;
      return { token, consumed: child !== null };
    },

    async findSession(id) {
      const row = await db.session.findUnique({ where: { id } });
      return row ? toSession(row) : null;
    },

    async revoke(sessionId, reason, at) {
      // Conditional update: of concurrent revokers exactly one sees count 1.
      const { count } = await db.session.updateMany({
        where: { id: sessionId, revokedAt: null },
        data: { revokedAt: at, revokedReason: reason },
      });
      return count === 1;
    },

    async revokeAllForUser(userId, reason, at, exceptSessionId) {
      const { count } = await db.session.updateMany({
        where: { userId, revokedAt: null, ...(exceptSessionId !== undefined ? { id: { not: exceptSessionId } } : {}) },
        data: { revokedAt: at, revokedReason: reason },
      });
      return count;
    },

    async listLive(userId, now, limit) {
      const rows = await db.session.findMany({
        // Its newest token's deadline is the latest of all (rotation never moves it back).
        where: { userId, revokedAt: null, expiresAt: { gt: now }, refreshTokens: { some: { expiresAt: { gt: now } } } },
        include: { refreshTokens: { orderBy: [{ createdAt: "desc" }, { expiresAt: "desc" }], take: 1, select: { createdAt: true, expiresAt: true } } },
        orderBy: [{ createdAt: "desc" }, { id: "asc" }],
        take: limit,
      });
      return rows.flatMap(({ refreshTokens, ...row }) => {
        const newest = refreshTokens[0];
        return newest ? [{ session: toSession(row), lastUsedAt: newest.createdAt, idleExpiresAt: newest.expiresAt }] : [];
      });
    },

    async pruneDead(endedBefore, revokedBefore) {
      // In chunks, on the driver (session-queries.ts): each looks at PRUNE_CHUNK sessions and
      // deletes the dead among them (their refresh tokens go with them), so its work is bounded
      // whether dead sessions are many or few. One DELETE of a million rows would hold SQLite's
      // writer lock, and the event loop (the driver is synchronous), for seconds; between chunks,
      // requests go on. Each DELETE repeats the condition; a dead session cannot come back to life
      // anyway (its end and its tokens' deadlines are past, and rotation needs a live token).
      // One pass in id order (keyset): each chunk walks the primary key from where the last one
      // stopped, so the whole prune reads each row once.
      let sessions = 0;
      let after = "";
      for (;;) {
        const { seen, deleted, last } = await queries.pruneChunk(after, endedBefore, revokedBefore, PRUNE_CHUNK);
        sessions += deleted;
        if (seen < PRUNE_CHUNK || last === null) break;
        after = last;
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { sessions };
    },
  };
}
