// The AuditStore on Prisma.
import type { AuditEventRecord, AuditStore } from "../../domain/audit-store.ts";
import { auditRow, type AuditQueries } from "./audit-queries.ts";
import { inPrismaTransaction, type Db } from "./client.ts";

const PRUNE_CHUNK = 2000;

export function prismaAuditStore(db: Db, queries: AuditQueries): AuditStore {
  return {
    // The INSERT runs on the driver (audit-queries.ts): one per login. Inside a Prisma
    // transaction (the key store's), through that transaction: on SQLite the driver's connection
    // could not get the write lock it holds.
    async record(e: AuditEventRecord) {
      const tx = inPrismaTransaction.getStore();
      if (!tx) return queries.insertEvent(e);
      await tx.auditEvent.create({ data: auditRow(e) });
    },
    async list(filter) {
      const rows = await db.auditEvent.findMany({
        where: { type: filter.type, sessionId: filter.sessionId },
        orderBy: { at: "asc" },
        take: filter.limit ?? 100,
      });
      return rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
    },
    async page(q) {
      const rows = await db.auditEvent.findMany({
        where: {
          type: q.type,
          userId: q.userId,
          clientId: q.clientId,
          AND: [
            ...(q.from ? [{ at: { gte: q.from } }] : []),
            ...(q.to ? [{ at: { lt: q.to } }] : []),
            ...(q.before ? [{ OR: [{ at: { lt: q.before.at } }, { at: q.before.at, id: { lt: q.before.id } }] }] : []),
          ],
        },
        orderBy: [{ at: "desc" }, { id: "desc" }],
        take: q.limit,
      });
      return rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
    },
    async prune(before) {
      // Chunks of PRUNE_CHUNK: one huge DELETE would hold SQLite's writer lock (and bloat a
      // Postgres transaction) long enough to stall logins behind it.
      let total = 0;
      for (;;) {
        const ids = (await db.auditEvent.findMany({ where: { at: { lt: before } }, select: { id: true }, take: PRUNE_CHUNK })).map((r) => r.id);
        if (ids.length === 0) return total;
        total += (await db.auditEvent.deleteMany({ where: { id: { in: ids } } })).count;
        if (ids.length < PRUNE_CHUNK) return total;
      }
    },
  };
}
