// Login's user lookup on the driver itself (one prepared SELECT by email), for the same reason
// as the refresh hot path (session-queries.ts): the ORM's CPU per statement dwarfs the driver's.
import type Database from "better-sqlite3";
import type pg from "pg";
import type { UserRecord } from "../../domain/credentials/user-store.ts";
import type { DirectHandle } from "./client.ts";
import { date, pgEpochMs, retryWhileBusy } from "./driver.ts";
import { splitList } from "./lists.ts";

export interface UserQueries {
  /** login: the user by (normalised) email */
  findUserByEmail(email: string): Promise<UserRecord | null>;
}

interface UserRow {
  id: string;
  email: string;
  passwordHash: string;
  roles: string;
  createdAt: string | number;
  disabledAt: string | number | null;
}

const userSql = (ts: (col: string) => string, param: string) =>
  `SELECT "id", "email", "passwordHash", "roles", ${ts('"createdAt"')} AS "createdAt", ${ts('"disabledAt"')} AS "disabledAt" FROM "User" WHERE "email" = ${param}`;

const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  email: r.email,
  passwordHash: r.passwordHash,
  roles: splitList(r.roles),
  createdAt: date(r.createdAt),
  disabledAt: r.disabledAt === null ? null : date(r.disabledAt),
});

function sqliteUserQueries(sqlite: Database.Database): UserQueries {
  let user: Database.Statement | undefined;
  return {
    async findUserByEmail(email) {
      user ??= sqlite.prepare(userSql((c) => c, "?"));
      const row = await retryWhileBusy(() => user!.get(email) as UserRow | undefined);
      return row ? toUser(row) : null;
    },
  };
}

function postgresUserQueries(pool: pg.Pool): UserQueries {
  return {
    async findUserByEmail(email) {
      const { rows } = await pool.query<UserRow>({ name: "tessera_find_user", text: userSql(pgEpochMs, "$1"), values: [email] });
      return rows[0] ? toUser(rows[0]) : null;
    },
  };
}

export function userQueries(direct: DirectHandle): UserQueries {
  return direct.flavor === "sqlite" ? sqliteUserQueries(direct.sqlite) : postgresUserQueries(direct.pool);
}
