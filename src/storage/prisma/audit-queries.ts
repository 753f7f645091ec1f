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

const COLUMNS = `"id", "type", "at", "userId", "clientId", "sessionId", "details"`;
const values = (e: AuditEventRecord, at: string) => [e.id, e.type, at, e.userId ?? null, e.clientId ?? null, e.sessionId ?? null, JSON.stringify(e.details ?? {})];

function sqliteAuditQueries(sqlite: Database.Database): AuditQueries {
  let insert: Database.Statement | undefined;
  return {
    async insertEvent(e) {
      insert ??= sqlite.prepare(`INSERT INTO "AuditEvent" (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      await retryWhileBusy(() => insert!.run(...values(e, sqliteTimestamp(e.at))));
    },
  };
}

function postgresAuditQueries(pool: pg.Pool): AuditQueries {
  const text = `INSERT INTO "AuditEvent" (${COLUMNS}) VALUES ($1, $2, $3::timestamp, $4, $5, $6, $7)`;
  return {
    async insertEvent(e) {
      await pool.query({ name: "tessera_insert_audit_event", text, values: values(e, pgTimestamp(e.at)) });
    },
  };
}

export function auditQueries(direct: DirectHandle): AuditQueries {
  return direct.flavor === "sqlite" ? sqliteAuditQueries(direct.sqlite) : postgresAuditQueries(direct.pool);
}
