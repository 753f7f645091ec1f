// The refresh hot path on the driver itself: one SELECT (token + session + user + successor +
// "successor consumed?") and one INSERT per rotation, as prepared statements. The ORM costs
// several milliseconds of CPU per statement here, the driver a few microseconds; the INSERT's
// unique parentId still decides which concurrent consumer wins, exactly as before. Pruning's
// chunks are here too: the ORM compiled their queries on the main thread, requests waiting.
import type Database from "better-sqlite3";
import type pg from "pg";
import type { ConsumeOutcome, LoginCheck, RefreshTokenLookup, RefreshTokenRecord, SessionRecord } from "../../domain/sessions/session-store.ts";
import type { DirectHandle } from "./client.ts";
import { date, pgEpochMs, pgTimestamp, retryWhileBusy, sqliteTimestamp } from "./driver.ts";
import { splitList } from "./lists.ts";

export interface SessionQueries {
  /** login: the session and its first refresh token, atomically, if the user passes `check` (SessionStore.start) */
  startSession(session: SessionRecord, first: RefreshTokenRecord, check: LoginCheck): Promise<boolean>;
  findToken(hash: string): Promise<RefreshTokenLookup | null>;
  /** the consume: see SessionStore.insertChild */
  insertChild(child: RefreshTokenRecord, now: Date): Promise<ConsumeOutcome>;
  /**
   * One chunk of SessionStore.pruneDead: looks at the next `limit` sessions in id order after
   * `after` ("" for the first) and deletes the dead ones among them (their refresh tokens
   * cascade). A chunk's work is bounded by `limit` however few of them are dead. `last` is the
   * last id looked at, where the next chunk starts; `seen` < `limit` means the end.
   */
  pruneChunk(after: string, endedBefore: Date, revokedBefore: Date, limit: number): Promise<{ seen: number; deleted: number; last: string | null }>;
}

interface Row {
  id: string;
  sessionId: string;
  hash: string;
  parentId: string | null;
  createdAt: string | number;
  expiresAt: string | number;
  s_userId: string;
  s_clientId: string;
  s_scope: string;
  s_createdAt: string | number;
  s_expiresAt: string | number;
  s_revokedAt: string | number | null;
  s_revokedReason: string | null;
  /** BIGINT: a number from SQLite, a string from pg */
  s_statusIdx: string | number | null;
  u_roles: string;
  u_disabledAt: string | number | null;
  c_id: string | null;
  c_hash: string | null;
  c_createdAt: string | number | null;
  c_expiresAt: string | number | null;
  g_id: string | null;
}

function toLookup(r: Row): RefreshTokenLookup {
  return {
    token: { id: r.id, sessionId: r.sessionId, hash: r.hash, parentId: r.parentId, createdAt: date(r.createdAt), expiresAt: date(r.expiresAt) },
    session: {
      id: r.sessionId,
      userId: r.s_userId,
      clientId: r.s_clientId,
      scope: r.s_scope,
      createdAt: date(r.s_createdAt),
      expiresAt: date(r.s_expiresAt),
      revokedAt: r.s_revokedAt === null ? null : date(r.s_revokedAt),
      revokedReason: r.s_revokedReason,
      statusIdx: r.s_statusIdx === null ? null : Number(r.s_statusIdx),
    },
    user: { roles: splitList(r.u_roles), disabledAt: r.u_disabledAt === null ? null : date(r.u_disabledAt) },
    child:
      r.c_id === null
        ? null
        : {
            token: { id: r.c_id, sessionId: r.sessionId, hash: r.c_hash!, parentId: r.id, createdAt: date(r.c_createdAt!), expiresAt: date(r.c_expiresAt!) },
            consumed: r.g_id !== null,
          },
  };
}

/** `col` as it should be selected: SQLite keeps Prisma's ISO text; Postgres gives epoch ms (no time-zone guessing). */
function selectSql(ts: (col: string) => string, param: string): string {
  return `
  SELECT t."id", t."sessionId", t."hash", t."parentId", ${ts('t."createdAt"')} AS "createdAt", ${ts('t."expiresAt"')} AS "expiresAt",
         s."userId" AS "s_userId", s."clientId" AS "s_clientId", s."scope" AS "s_scope",
         ${ts('s."createdAt"')} AS "s_createdAt", ${ts('s."expiresAt"')} AS "s_expiresAt",
         ${ts('s."revokedAt"')} AS "s_revokedAt", s."revokedReason" AS "s_revokedReason", s."statusIdx" AS "s_statusIdx",
         u."roles" AS "u_roles", ${ts('u."disabledAt"')} AS "u_disabledAt",
         c."id" AS "c_id", c."hash" AS "c_hash", ${ts('c."createdAt"')} AS "c_createdAt", ${ts('c."expiresAt"')} AS "c_expiresAt",
         g."id" AS "g_id"
    FROM "RefreshToken" t
    JOIN "Session" s ON s."id" = t."sessionId"
    JOIN "User" u ON u."id" = s."userId"
    LEFT JOIN "RefreshToken" c ON c."parentId" = t."id"
    LEFT JOIN "RefreshToken" g ON g."parentId" = c."id"
   WHERE t."hash" = ${param}`;
}

const INSERT_COLUMNS = `"id", "sessionId", "hash", "parentId", "createdAt", "expiresAt"`;

/**
 * The consume: insert the successor only if the session is live at this very statement (not
 * revoked, not past its end, its user not disabled). "Session live" is part of the atomic step,
 * not a read made earlier, so a logout or reuse revocation committed between the lookup and
 * this insert wins. On Postgres, FOR SHARE makes the insert wait for a revocation in flight on
 * the session row and re-check it once committed (READ COMMITTED re-evaluates locked rows); on
 * SQLite the statement runs under the single writer lock, so nothing interleaves with it.
 * `p(n)` renders the n-th parameter: child columns 1-6, then the session id and now.
 */
function consumeSql(p: (n: number) => string, ts: (n: number) => string, lock: string): string {
  return `INSERT INTO "RefreshToken" (${INSERT_COLUMNS})
    SELECT ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${ts(5)}, ${ts(6)}
      FROM "Session" s JOIN "User" u ON u."id" = s."userId"
     WHERE s."id" = ${p(7)} AND s."revokedAt" IS NULL AND s."expiresAt" > ${ts(8)} AND u."disabledAt" IS NULL${lock}`;
}
const SESSION_COLUMNS = `"id", "userId", "clientId", "scope", "createdAt", "expiresAt", "statusIdx", "userAgent", "address"`;

/**
 * Session `s` is dead (SessionStore.pruneDead): not revoked, and past its end or idle past its
 * newest refresh token's deadline, before `ended`; or revoked before `revoked`.
 */
const deadSql = (ended: string, revoked: string) =>
  `((s."revokedAt" IS NULL AND (s."expiresAt" < ${ended}
      OR NOT EXISTS (SELECT 1 FROM "RefreshToken" r WHERE r."sessionId" = s."id" AND r."expiresAt" >= ${ended})))
    OR s."revokedAt" < ${revoked})`;

// ---- SQLite ----

function sqliteSessionQueries(sqlite: Database.Database): SessionQueries {
  let select: Database.Statement | undefined;
  let insert: Database.Statement | undefined;
  let start: ((s: SessionRecord, t: RefreshTokenRecord, check: LoginCheck) => boolean) | undefined;
  let chunk: Database.Statement | undefined;
  let remove: Database.Statement | undefined;
  return {
    async startSession(session, first, check) {
      if (!start) {
        const userAsChecked = sqlite.prepare(`SELECT 1 FROM "User" WHERE "id" = ? AND "disabledAt" IS NULL AND "passwordHash" = ?`);
        const insertSession = sqlite.prepare(`INSERT INTO "Session" (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
        const insertToken = sqlite.prepare(`INSERT INTO "RefreshToken" (${INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`);
        // One synchronous transaction, under the write lock from its BEGIN: nothing else writes
        // between the user's check and the inserts, here or in another process.
        start = sqlite.transaction((s: SessionRecord, t: RefreshTokenRecord, c: LoginCheck) => {
          if (userAsChecked.get(s.userId, c.passwordHash) === undefined) return false;
          insertSession.run(s.id, s.userId, s.clientId, s.scope, sqliteTimestamp(s.createdAt), sqliteTimestamp(s.expiresAt), s.statusIdx === null ? null : BigInt(s.statusIdx), s.userAgent ?? null, s.address ?? null);
          insertToken.run(t.id, t.sessionId, t.hash, t.parentId, sqliteTimestamp(t.createdAt), sqliteTimestamp(t.expiresAt));
          return true;
        }).immediate;
      }
      return retryWhileBusy(() => start!(session, first, check));
    },
    async findToken(hash) {
      select ??= sqlite.prepare(selectSql((c) => c, "?"));
      const row = await retryWhileBusy(() => select!.get(hash) as Row | undefined);
      return row ? toLookup(row) : null;
    },
    async insertChild(c, now) {
      insert ??= sqlite.prepare(consumeSql(() => "?", () => "?", ""));
      try {
        const { changes } = await retryWhileBusy(() =>
          insert!.run(c.id, c.sessionId, c.hash, c.parentId, sqliteTimestamp(c.createdAt), sqliteTimestamp(c.expiresAt), c.sessionId, sqliteTimestamp(now)),
        );
        return changes === 1 ? "inserted" : "session_ended";
      } catch (err) {
        if (String((err as { code?: unknown }).code).startsWith("SQLITE_CONSTRAINT_UNIQUE")) return "consumed";
        throw err;
      }
    },
    async pruneChunk(after, endedBefore, revokedBefore, limit) {
      // The look is a read, outside the write lock (other processes on the file, WORKERS or the
      // rotation script, do not wait for it); only the DELETE, which repeats the condition, takes it.
      chunk ??= sqlite.prepare(`SELECT s."id", ${deadSql("@ended", "@revoked")} AS "dead" FROM "Session" s WHERE s."id" > @after ORDER BY s."id" LIMIT @limit`);
      remove ??= sqlite.prepare(`DELETE FROM "Session" AS s WHERE s."id" IN (SELECT value FROM json_each(@ids)) AND ${deadSql("@ended", "@revoked")}`);
      const ended = sqliteTimestamp(endedBefore);
      const revoked = sqliteTimestamp(revokedBefore);
      const rows = (await retryWhileBusy(() => chunk!.all({ after, ended, revoked, limit }))) as Array<{ id: string; dead: number }>;
      const dead = rows.filter((r) => r.dead).map((r) => r.id);
      const deleted = dead.length === 0 ? 0 : (await retryWhileBusy(() => remove!.run({ ids: JSON.stringify(dead), ended, revoked }))).changes;
      return { seen: rows.length, deleted, last: rows.at(-1)?.id ?? null };
    },
  };
}

// ---- Postgres ----

function postgresSessionQueries(pool: pg.Pool): SessionQueries {
  const select = { name: "tessera_find_refresh_token", text: selectSql(pgEpochMs, "$1") };
  const consumeText = consumeSql((n) => `$${n}`, (n) => `$${n}::timestamp`, " FOR SHARE OF s");
  // The chunk, and the DELETE of those still dead, in one statement: one round trip per chunk.
  const pruneText = `WITH chunk AS (
      SELECT s."id", ${deadSql("$2::timestamp", "$3::timestamp")} AS "dead" FROM "Session" s WHERE s."id" > $1 ORDER BY s."id" LIMIT $4),
    gone AS (DELETE FROM "Session" s WHERE s."id" IN (SELECT "id" FROM chunk WHERE "dead") AND ${deadSql("$2::timestamp", "$3::timestamp")} RETURNING 1)
    SELECT (SELECT count(*) FROM chunk)::int AS "seen", (SELECT count(*) FROM gone)::int AS "deleted",
           (SELECT "id" FROM chunk ORDER BY "id" DESC LIMIT 1) AS "last"`;
  // Session and first token in ONE statement (a data-modifying CTE): atomic, one round trip. The
  // user's row is locked FOR SHARE: a reset or disable in flight on it is waited for, and READ
  // COMMITTED re-checks the row as committed; one that comes later waits for this statement, and
  // then revokes the session it wrote.
  const startText = `WITH u AS (
      SELECT "id" FROM "User" WHERE "id" = $2 AND "disabledAt" IS NULL AND "passwordHash" = $14 FOR SHARE),
    s AS (
      INSERT INTO "Session" (${SESSION_COLUMNS}) SELECT $1, u."id", $3, $4, $5::timestamp, $6::timestamp, $7::bigint, $12, $13 FROM u RETURNING "id")
    INSERT INTO "RefreshToken" (${INSERT_COLUMNS}) SELECT $8, s."id", $9, NULL, $10::timestamp, $11::timestamp FROM s`;
  return {
    async startSession(session, first, check) {
      const { rowCount } = await pool.query({
        name: "tessera_start_session",
        text: startText,
        values: [
          session.id,
          session.userId,
          session.clientId,
          session.scope,
          pgTimestamp(session.createdAt),
          pgTimestamp(session.expiresAt),
          session.statusIdx,
          first.id,
          first.hash,
          pgTimestamp(first.createdAt),
          pgTimestamp(first.expiresAt),
          session.userAgent ?? null,
          session.address ?? null,
          check.passwordHash,
        ],
      });
      return rowCount === 1;
    },
    async findToken(hash) {
      const { rows } = await pool.query<Row>({ ...select, values: [hash] });
      return rows[0] ? toLookup(rows[0]) : null;
    },
    async insertChild(c, now) {
      try {
        const { rowCount } = await pool.query({
          name: "tessera_consume_refresh_token",
          text: consumeText,
          values: [c.id, c.sessionId, c.hash, c.parentId, pgTimestamp(c.createdAt), pgTimestamp(c.expiresAt), c.sessionId, pgTimestamp(now)],
        });
        return rowCount === 1 ? "inserted" : "session_ended";
      } catch (err) {
        if ((err as { code?: unknown }).code === "23505") return "consumed"; // unique_violation
        throw err;
      }
    },
    async pruneChunk(after, endedBefore, revokedBefore, limit) {
      const { rows } = await pool.query<{ seen: number; deleted: number; last: string | null }>({
        name: "tessera_prune_sessions",
        text: pruneText,
        values: [after, pgTimestamp(endedBefore), pgTimestamp(revokedBefore), limit],
      });
      return rows[0]!;
    },
  };
}

export function sessionQueries(direct: DirectHandle): SessionQueries {
  return direct.flavor === "sqlite" ? sqliteSessionQueries(direct.sqlite) : postgresSessionQueries(direct.pool);
}
