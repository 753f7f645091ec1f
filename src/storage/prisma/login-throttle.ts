// The login throttle's log (LoginThrottleStore) on the driver, because its one rule is
// atomicity: the check and the recording of an attempt happen in one step that concurrent
// attempts on the same account, on any instance, cannot interleave with.
// - SQLite: one IMMEDIATE transaction (the database's single writer lock), run synchronously.
// - Postgres: a READ COMMITTED transaction that first locks the user's row (FOR NO KEY UPDATE:
//   it serialises attempts on the account without blocking sessions that reference the user),
//   then reads the log with fresh statements (they see what the previous holder committed), then
//   inserts.
// Parameters are written p1, p2, ... and bound in that order on both databases (SQLite's
// positional "?" follow the text, so every statement below uses its parameters in order).
import type Database from "better-sqlite3";
import type pg from "pg";
import { addSeconds } from "../../domain/clock.ts";
import { PENDING_SECONDS, type FailureHistory, type LoginAttempt, type LoginThrottleStore } from "../../domain/credentials/throttle.ts";
import type { DirectHandle } from "./client.ts";
import { date, pgEpochMs, pgTimestamp, retryWhileBusy, sqliteTimestamp } from "./driver.ts";

type P = (n: number) => string;

/** Pending attempts reserved before this are failures whose outcome was never written. */
const staleBefore = (now: Date) => addSeconds(now, -PENDING_SECONDS);

/** The account's failed, pending and forgiven attempts since p2; of them, pending since p3. */
const COUNT_SQL = (p: P) =>
  `WITH w AS (SELECT "pending", "at" FROM "LoginFailure" WHERE "userId" = ${p(1)} AND "at" > ${p(2)})
   SELECT COUNT(*) AS "n", COALESCE(SUM(CASE WHEN "pending" AND "at" > ${p(3)} THEN 1 ELSE 0 END), 0) AS "pending" FROM w`;
/** The address's attempts that still count against it (not forgiven by a later success). */
const ADDRESS_SQL = (p: P, ts: (c: string) => string) =>
  `SELECT ${ts('"at"')} AS "at", "pending" FROM "LoginFailure"
    WHERE "userId" = ${p(1)} AND "address" = ${p(2)} AND "at" > ${p(3)} AND NOT "forgiven" ORDER BY "at" ASC`;
const KNOWN_SQL = (p: P) => `SELECT 1 AS "known" FROM "LoginAddress" WHERE "userId" = ${p(1)} AND "address" = ${p(2)} AND "lastSuccessAt" > ${p(3)}`;
// Only for an account that exists (p5 is the user id again): an attempt on an email with no
// account makes the same reservation on an id no account has (Users.authenticate), which must
// write nothing.
const INSERT_SQL = (p: P) =>
  `INSERT INTO "LoginFailure" ("id", "userId", "address", "at", "pending") SELECT ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, TRUE WHERE EXISTS (SELECT 1 FROM "User" WHERE "id" = ${p(5)})`;
const SETTLE_SQL = (p: P) => `UPDATE "LoginFailure" SET "pending" = FALSE WHERE "id" = ${p(1)}`;
const DISCARD_SQL = (p: P) => `DELETE FROM "LoginFailure" WHERE "id" = ${p(1)}`;
// A success forgives the address's failures: they stop counting against the address but stay in
// the account's hourly count (each was an evaluated wrong password). Pending attempts from the
// address are left alone, they may be guesses still being evaluated, unless they are older than
// p3 (PENDING_SECONDS): the throttle counts those as failures (their outcome was never written),
// so a success forgives them like one. Never the successful attempt itself (p4), which is
// deleted in the same step (on Postgres, in the same statement: a row two CTEs modify gets one
// of the two changes, which one is not defined).
const FORGIVE_SQL = (p: P) =>
  `UPDATE "LoginFailure" SET "forgiven" = TRUE WHERE "userId" = ${p(1)} AND "address" = ${p(2)} AND (NOT "pending" OR "at" < ${p(3)}) AND "id" <> ${p(4)}`;
const KNOW_SQL = (p: P) =>
  `INSERT INTO "LoginAddress" ("userId", "address", "lastSuccessAt") VALUES (${p(1)}, ${p(2)}, ${p(3)})
   ON CONFLICT ("userId", "address") DO UPDATE SET "lastSuccessAt" = excluded."lastSuccessAt"`;

/** A success, on Postgres: DISCARD, FORGIVE and KNOW above as one statement ($1 attempt id, $2 user, $3 address, $4 time, $5 stale before). */
const SUCCEEDED_PG = `WITH discarded AS (${DISCARD_SQL(() => "$1")}),
  forgiven AS (${FORGIVE_SQL((n) => (n === 3 ? "$5::timestamp" : n === 4 ? "$1" : `$${n + 1}`))})
  ${KNOW_SQL((n) => (n === 3 ? "$4::timestamp" : `$${n + 1}`))}`;

/**
 * The reservation's three reads, on Postgres, as one statement (one round trip): COUNT, ADDRESS
 * (as a JSON array of [epoch ms, pending]) and KNOWN above. $1 user, $2 address, then the
 * cut-offs: $3 account, $4 pending, $5 address, $6 known.
 */
const HISTORY_PG = `SELECT c."n", c."pending",
    EXISTS (${KNOWN_SQL((n) => (n === 3 ? "$6::timestamp" : `$${n}`))}) AS "known",
    COALESCE((SELECT json_agg(json_build_array(h."at", h."pending") ORDER BY h."at") FROM (${ADDRESS_SQL((n) => (n === 3 ? "$5::timestamp" : `$${n}`), pgEpochMs)}) h), '[]'::json) AS "history"
  FROM (${COUNT_SQL((n) => (n === 1 ? "$1" : n === 2 ? "$3::timestamp" : "$4::timestamp"))}) c`;

type CountRow = { n: number | string; pending: number | string };
type AttemptRow = { at: string | number; pending: boolean | number };
const toHistory = (count: CountRow | undefined, rows: AttemptRow[], known: boolean): FailureHistory => ({
  accountFailures: Number(count?.n ?? 0),
  accountPending: Number(count?.pending ?? 0),
  address: rows.map((r) => ({ at: date(r.at), pending: Boolean(r.pending) })),
  knownAddress: known,
});

type Since = { account: Date; address: Date; pending: Date; known: Date };
type Reserve = (a: LoginAttempt, since: Since, decide: (h: FailureHistory) => boolean) => { history: FailureHistory; reserved: boolean };

function sqliteThrottle(sqlite: Database.Database): LoginThrottleStore {
  const q = () => "?";
  let reserveTx: Reserve | undefined;
  let succeededTx: ((a: LoginAttempt, at: Date) => void) | undefined;
  const statements = new Map<string, Database.Statement>();
  const stmt = (sql: string) => {
    let s = statements.get(sql);
    if (!s) statements.set(sql, (s = sqlite.prepare(sql)));
    return s;
  };
  return {
    async reserve(attempt, since, decide) {
      reserveTx ??= sqlite.transaction((a: LoginAttempt, s: Since, judge: (h: FailureHistory) => boolean) => {
        const c = stmt(COUNT_SQL(q)).get(a.userId, sqliteTimestamp(s.account), sqliteTimestamp(s.pending)) as CountRow;
        const rows = stmt(ADDRESS_SQL(q, (col) => col)).all(a.userId, a.address, sqliteTimestamp(s.address)) as AttemptRow[];
        const known = stmt(KNOWN_SQL(q)).get(a.userId, a.address, sqliteTimestamp(s.known)) !== undefined;
        const history = toHistory(c, rows, known);
        const reserved = judge(history);
        if (reserved) stmt(INSERT_SQL(q)).run(a.id, a.userId, a.address, sqliteTimestamp(a.at), a.userId);
        return { history, reserved };
      }).immediate;
      return retryWhileBusy(() => reserveTx!(attempt, since, decide));
    },
    async settleFailed(id) {
      await retryWhileBusy(() => stmt(SETTLE_SQL(q)).run(id));
    },
    async succeeded(a, at) {
      succeededTx ??= sqlite.transaction((x: LoginAttempt, when: Date) => {
        stmt(DISCARD_SQL(q)).run(x.id);
        stmt(FORGIVE_SQL(q)).run(x.userId, x.address, sqliteTimestamp(staleBefore(when)), x.id);
        stmt(KNOW_SQL(q)).run(x.userId, x.address, sqliteTimestamp(when));
      }).immediate;
      await retryWhileBusy(() => succeededTx!(a, at));
    },
    async discard(id) {
      await retryWhileBusy(() => stmt(DISCARD_SQL(q)).run(id));
    },
    async prune(failuresBefore, addressesBefore) {
      const failures = (await retryWhileBusy(() => stmt(`DELETE FROM "LoginFailure" WHERE "at" < ?`).run(sqliteTimestamp(failuresBefore)))).changes;
      await retryWhileBusy(() => stmt(`DELETE FROM "LoginAddress" WHERE "lastSuccessAt" < ?`).run(sqliteTimestamp(addressesBefore)));
      return failures;
    },
  };
}

function postgresThrottle(pool: pg.Pool): LoginThrottleStore {
  const d: P = (n) => `$${n}`;
  const ts: P = (n) => `$${n}::timestamp`;
  /** Runs `fn` in one READ COMMITTED transaction on one connection. */
  async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      // READ COMMITTED whatever the database's default: each read after the lock must see what
      // the previous holder committed (under REPEATABLE READ the snapshot would predate it).
      await client.query("BEGIN ISOLATION LEVEL READ COMMITTED");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      broken = err as Error;
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      // A connection whose query failed (timeout, reset) is not reused.
      client.release(broken);
    }
  }
  return {
    reserve: (a, since, decide) =>
      inTransaction(async (client) => {
        // Serialise attempts on this account (a missing user locks nothing, and the insert
        // writes nothing for an account that does not exist).
        await client.query({ name: "tessera_throttle_lock", text: `SELECT 1 FROM "User" WHERE "id" = $1 FOR NO KEY UPDATE`, values: [a.userId] });
        // After the lock, in a statement of its own: its snapshot sees what the previous holder committed.
        const { rows } = await client.query<CountRow & { known: boolean; history: Array<[number, boolean]> }>({
          name: "tessera_throttle_history",
          text: HISTORY_PG,
          values: [a.userId, a.address, pgTimestamp(since.account), pgTimestamp(since.pending), pgTimestamp(since.address), pgTimestamp(since.known)],
        });
        const row = rows[0];
        const history = toHistory(row, (row?.history ?? []).map(([at, pending]) => ({ at, pending })), row?.known === true);
        const reserved = decide(history);
        if (reserved) {
          await client.query({ name: "tessera_throttle_insert", text: INSERT_SQL((n) => (n === 4 ? ts(n) : d(n))), values: [a.id, a.userId, a.address, pgTimestamp(a.at), a.userId] });
        }
        return { history, reserved };
      }),
    async settleFailed(id) {
      await pool.query({ name: "tessera_throttle_settle", text: SETTLE_SQL(d), values: [id] });
    },
    // One statement (data-modifying CTEs): the three writes are atomic without a transaction of
    // their own, in one round trip instead of five. They touch different rows (FORGIVE leaves the
    // attempt's own row to the DELETE), so the statement's one snapshot changes nothing.
    async succeeded(a, at) {
      await pool.query({ name: "tessera_throttle_succeeded", text: SUCCEEDED_PG, values: [a.id, a.userId, a.address, pgTimestamp(at), pgTimestamp(staleBefore(at))] });
    },
    async discard(id) {
      await pool.query({ name: "tessera_throttle_discard", text: DISCARD_SQL(d), values: [id] });
    },
    async prune(failuresBefore, addressesBefore) {
      const { rowCount } = await pool.query(`DELETE FROM "LoginFailure" WHERE "at" < $1::timestamp`, [pgTimestamp(failuresBefore)]);
      await pool.query(`DELETE FROM "LoginAddress" WHERE "lastSuccessAt" < $1::timestamp`, [pgTimestamp(addressesBefore)]);
      return rowCount ?? 0;
    },
  };
}

export function loginThrottleStore(direct: DirectHandle): LoginThrottleStore {
  return direct.flavor === "sqlite" ? sqliteThrottle(direct.sqlite) : postgresThrottle(direct.pool);
}
