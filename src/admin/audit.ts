// The audit trail for operators: `npm run cli -- audit list` and GET /admin/v1/audit-events.
import type { AuditEventRecord } from "../domain/audit-store.ts";
import { InvalidField } from "../domain/errors.ts";
import { filterText, instant } from "./validate.ts";
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

/** Newest first. */
export async function listAuditEvents(ctx: AdminContext, filter: AuditFilter = {}): Promise<CommandResult> {
  const limit = pageLimit(filter.limit);
  const from = filter.from === undefined ? undefined : instant("from", filter.from);
  const to = filter.to === undefined ? undefined : instant("to", filter.to);
  const query = {
    type: filterText("type", filter.type),
    userId: filterText("user_id", filter.userId),
    clientId: filterText("client_id", filter.clientId),
    from,
    to,
  };
  const cursor = decodeCursor("audit", filter.cursor, ["at", "id"]);
  let before: { at: Date; id: string } | undefined;
  if (cursor) {
    try {
      before = { at: instant("cursor", cursor.at), id: cursor.id };
    } catch {
      throw new InvalidField("cursor", "The cursor is not valid for this list; start again without it.");
    }
  }
  const page = await paged(
    limit,
    (take) => ctx.storage.audit.page({ ...query, before, limit: take }),
    (e) => encodeCursor("audit", { at: e.at.toISOString(), id: e.id }),
  );
  const rows = page.items.map((e) => [e.at.toISOString(), e.type, e.userId ?? "-", e.clientId ?? "-", JSON.stringify(e.details ?? {})].join("  "));
  const text = rows.length ? ["AT  TYPE  USER  CLIENT  DETAILS", ...rows, ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : [])].join("\n") : "no events";
  return { text, json: { events: page.items.map(auditEventJson), next_cursor: page.nextCursor } };
}
