// The audit event INSERT on the driver itself: every login, registration and refusal records
// one, and it was the last statement of a login still going through the ORM, whose CPU per
// statement dwarfs the driver's (bench/count-queries.ts lists a login's statements; the README's
// "password grant" bullet has the before/after). Same row as Prisma's create: `at` in Prisma's
// DateTime format, `details` as JSON text.
import type Database from "better-sqlite3";
import type pg from "pg";
import type { AuditEventRecord } from "../../domain/audit-store.ts";
import type { DirectHandle } from "./client.ts";
import { pgTimestamp, retryWhileBusy, sqliteTimestamp } from "./driver.ts";

export interface AuditQueries {
  insertEvent(e: AuditEventRecord): Promise<void>;
}

/** The row of an event, as both the driver's INSERT and Prisma's create (audit.ts) write it. */
export const auditRow = (e: AuditEventRecord) => ({
  id: e.id,
  type: e.type,
  at: e.at,
  userId: e.userId ?? null,
  clientId: e.clientId ?? null,
  sessionId: e.sessionId ?? null,
  details: JSON.stringify(e.details ?? {}),
});

const COLUMNS = `"id", "type", "at", "userId", "clientId", "sessionId", "details"`;
/** The row's values in COLUMNS order, `at` as the database stores Prisma's DateTime. */
const values = (e: AuditEventRecord, at: (d: Date) => string) => {
  const r = auditRow(e);
  return [r.id, r.type, at(r.at), r.userId, r.clientId, r.sessionId, r.details];
};

function sqliteAuditQueries(sqlite: Database.Database): AuditQueries {
  let insert: Database.Statement | undefined;
  return {
    async insertEvent(e) {
      insert ??= sqlite.prepare(`INSERT INTO "AuditEvent" (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      await retryWhileBusy(() => insert!.run(...values(e, sqliteTimestamp)));
    },
  };
}

function postgresAuditQueries(pool: pg.Pool): AuditQueries {
  const text = `INSERT INTO "AuditEvent" (${COLUMNS}) VALUES ($1, $2, $3::timestamp, $4, $5, $6, $7)`;
  return {
    async insertEvent(e) {
      await pool.query({ name: "tessera_insert_audit_event", text, values: values(e, pgTimestamp) });
    },
  };
}

export function auditQueries(direct: DirectHandle): AuditQueries {
  return direct.flavor === "sqlite" ? sqliteAuditQueries(direct.sqlite) : postgresAuditQueries(direct.pool);
}
