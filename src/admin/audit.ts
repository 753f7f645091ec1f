// The audit trail for operators: `npm run cli -- audit list` and GET /admin/v1/audit-events.
import type { AuditEventRecord } from "../domain/audit-store.ts";
import { InvalidField } from "../domain/errors.ts";
import type { CommandResult } from "./command.ts";
import type { AdminContext } from "./context.ts";
import { decodeCursor, encodeCursor, pageLimit, paged, type PageRequest } from "./paging.ts";

export interface AuditFilter extends PageRequest {
  type?: string;
  userId?: string;
  clientId?: string;
  /** RFC 3339 date-time: events at or after */
  from?: string;
  /** RFC 3339 date-time: events before */
  to?: string;
}

export const auditEventJson = (e: AuditEventRecord) => ({
  id: e.id,
  type: e.type,
  at: e.at.toISOString(),
  user_id: e.userId ?? null,
  client_id: e.clientId ?? null,
  session_id: e.sessionId ?? null,
  details: e.details ?? {},
});

function time(field: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(value) ? new Date(value) : null;
  if (!at || Number.isNaN(at.getTime())) throw new InvalidField(field, `${field} is an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z.`);
  return at;
}

function short(field: string, value: string | undefined): string | undefined {
  if (value !== undefined && (value.length === 0 || value.length > 200)) throw new InvalidField(field, `${field} is 1 to 200 characters.`);
  return value;
}

/** Newest first. */
export async function listAuditEvents(ctx: AdminContext, filter: AuditFilter = {}): Promise<CommandResult> {
  const limit = pageLimit(filter.limit);
  const from = time("from", filter.from);
  const to = time("to", filter.to);
  const query = { type: short("type", filter.type), userId: short("user_id", filter.userId), clientId: short("client_id", filter.clientId), from, to };
  const cursor = decodeCursor("audit", filter.cursor, ["at", "id"]);
  const before = cursor ? { at: new Date(cursor.at), id: cursor.id } : undefined;
  if (before && Number.isNaN(before.at.getTime())) throw new InvalidField("cursor", "The cursor is not valid for this list; start again without it.");
  const page = await paged(
    limit,
    (take) => ctx.storage.audit.page({ ...query, before, limit: take }),
    (e) => encodeCursor("audit", { at: e.at.toISOString(), id: e.id }),
  );
  const rows = page.items.map((e) => [e.at.toISOString(), e.type, e.userId ?? "-", e.clientId ?? "-", JSON.stringify(e.details ?? {})].join("  "));
  const text = rows.length ? ["AT  TYPE  USER  CLIENT  DETAILS", ...rows, ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : [])].join("\n") : "no events";
  return { text, json: { events: page.items.map(auditEventJson), next_cursor: page.nextCursor } };
}
