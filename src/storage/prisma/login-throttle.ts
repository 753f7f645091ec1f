// The login throttle's log (LoginThrottleStore) on the driver, because its one rule is
// atomicity: the check and the recording of an attempt happen in one step that concurrent
// attempts on the same account, on any instance, cannot interleave with.
// - SQLite: one IMMEDIATE transaction (the database's single writer lock), run synchronously.
// - Postgres: a transaction that first locks the user's row (FOR NO KEY UPDATE: it serialises
//   attempts on the account without blocking sessions that reference the user), then reads the
//   log with fresh statements (READ COMMITTED sees what the previous holder committed), then inserts.
import type Database from "better-sqlite3";
import type pg from "pg";
import type { FailureHistory } from "../../domain/credentials/throttle.ts";
import type { LoginAttempt, LoginThrottleStore } from "../ports.ts";
import type { DirectHandle } from "./client.ts";
import { date, pgEpochMs, pgTimestamp, retryWhileBusy, sqliteTimestamp } from "./fast-path.ts";

const COUNT_SQL = (p1: string, p2: string, p3: string) =>
  `SELECT COUNT(*) AS "n", COALESCE(SUM(CASE WHEN "pending" AND "at" > ${p3} THEN 1 ELSE 0 END), 0) AS "pending"
     FROM "LoginFailure" WHERE "userId" = ${p1} AND "at" > ${p2}`;
const ADDRESS_SQL = (ts: (c: string) => string, p1: string, p2: string, p3: string) =>
  `SELECT ${ts('"at"')} AS "at", "pending" FROM "LoginFailure" WHERE "userId" = ${p1} AND "address" = ${p2} AND "at" > ${p3} ORDER BY "at" ASC`;
const INSERT_SQL = (p: (n: number) => string) =>
  `INSERT INTO "LoginFailure" ("id", "userId", "address", "at", "pending") VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, TRUE)`;
// Settled failures only: another attempt from the address may still be pending (and may be a guess).
const FORGET_SQL = (p1: string, p2: string, p3: string) =>
  `DELETE FROM "LoginFailure" WHERE ("userId" = ${p1} AND "address" = ${p2} AND NOT "pending") OR "id" = ${p3}`;
const SETTLE_SQL = (p1: string) => `UPDATE "LoginFailure" SET "pending" = FALSE WHERE "id" = ${p1}`;

type CountRow = { n: number | string; pending: number | string };
type AttemptRow = { at: string | number; pending: boolean | number };
const toHistory = (count: CountRow | undefined, rows: AttemptRow[]): FailureHistory => ({
  accountFailures: Number(count?.n ?? 0),
  accountPending: Number(count?.pending ?? 0),
  address: rows.map((r) => ({ at: date(r.at), pending: Boolean(r.pending) })),
});

function sqliteThrottle(sqlite: Database.Database): LoginThrottleStore {
  type Since = { account: Date; address: Date; pending: Date };
  let reserveTx: ((a: LoginAttempt, since: Since, decide: (h: FailureHistory) => boolean) => { history: FailureHistory; reserved: boolean }) | undefined;
  const prepared = () => {
    const count = sqlite.prepare(COUNT_SQL("?", "?", "?"));
    const history = sqlite.prepare(ADDRESS_SQL((c) => c, "?", "?", "?"));
    const insert = sqlite.prepare(INSERT_SQL(() => "?"));
    return sqlite.transaction((a: LoginAttempt, since: Since, decide: (h: FailureHistory) => boolean) => {
      // Positional "?" bind in textual order: the CASE's parameter (p3) comes first.
      const c = count.get(sqliteTimestamp(since.pending), a.userId, sqliteTimestamp(since.account)) as CountRow;
      const rows = history.all(a.userId, a.address, sqliteTimestamp(since.address)) as AttemptRow[];
      const h = toHistory(c, rows);
      const reserved = decide(h);
      if (reserved) insert.run(a.id, a.userId, a.address, sqliteTimestamp(a.at));
      return { history: h, reserved };
    }).immediate;
  };
  return {
    async reserve(attempt, since, decide) {
      reserveTx ??= prepared();
      return retryWhileBusy(() => reserveTx!(attempt, since, decide));
    },
    async settleFailed(id) {
      const stmt = sqlite.prepare(SETTLE_SQL("?"));
      await retryWhileBusy(() => stmt.run(id));
    },
    async forgetAddress(a) {
      const stmt = sqlite.prepare(FORGET_SQL("?", "?", "?"));
      await retryWhileBusy(() => stmt.run(a.userId, a.address, a.id));
    },
    async discard(id) {
      const stmt = sqlite.prepare(`DELETE FROM "LoginFailure" WHERE "id" = ?`);
      await retryWhileBusy(() => stmt.run(id));
    },
    async prune(before) {
      const stmt = sqlite.prepare(`DELETE FROM "LoginFailure" WHERE "at" < ?`);
      return (await retryWhileBusy(() => stmt.run(sqliteTimestamp(before)))).changes;
    },
  };
}

function postgresThrottle(pool: pg.Pool): LoginThrottleStore {
  return {
    async reserve(a, since, decide) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        // Serialise attempts on this account (a missing user simply locks nothing: no attempt is
        // recorded for an account that does not exist, the insert's foreign key refuses it).
        await client.query({ name: "tessera_throttle_lock", text: `SELECT 1 FROM "User" WHERE "id" = $1 FOR NO KEY UPDATE`, values: [a.userId] });
        const count = await client.query<CountRow>({
          name: "tessera_throttle_count",
          text: COUNT_SQL("$1", "$2::timestamp", "$3::timestamp"),
          values: [a.userId, pgTimestamp(since.account), pgTimestamp(since.pending)],
        });
        const rows = await client.query<AttemptRow>({
          name: "tessera_throttle_history",
          text: ADDRESS_SQL(pgEpochMs, "$1", "$2", "$3::timestamp"),
          values: [a.userId, a.address, pgTimestamp(since.address)],
        });
        const history = toHistory(count.rows[0], rows.rows);
        const reserved = decide(history);
        if (reserved) {
          await client.query({ name: "tessera_throttle_insert", text: INSERT_SQL((n) => (n === 4 ? `$4::timestamp` : `$${n}`)), values: [a.id, a.userId, a.address, pgTimestamp(a.at)] });
        }
        await client.query("COMMIT");
        return { history, reserved };
      } catch (err) {
        broken = err as Error;
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        // A connection whose query failed (timeout, reset) is not reused.
        client.release(broken);
      }
    },
    async settleFailed(id) {
      await pool.query({ name: "tessera_throttle_settle", text: SETTLE_SQL("$1"), values: [id] });
    },
    async forgetAddress(a) {
      await pool.query({
        name: "tessera_throttle_forget",
        text: FORGET_SQL("$1", "$2", "$3"),
        values: [a.userId, a.address, a.id],
      });
    },
    async discard(id) {
      await pool.query({ name: "tessera_throttle_discard", text: `DELETE FROM "LoginFailure" WHERE "id" = $1`, values: [id] });
    },
    async prune(before) {
      const { rowCount } = await pool.query(`DELETE FROM "LoginFailure" WHERE "at" < $1::timestamp`, [pgTimestamp(before)]);
      return rowCount ?? 0;
    },
  };
}

export function loginThrottleStore(direct: DirectHandle): LoginThrottleStore {
  return direct.flavor === "sqlite" ? sqliteThrottle(direct.sqlite) : postgresThrottle(direct.pool);
}
