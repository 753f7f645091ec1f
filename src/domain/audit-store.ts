// Where audit events are kept (implemented in storage/prisma).

export interface AuditEventRecord {
  id: string;
  type: string;
  at: Date;
  userId?: string | null;
  clientId?: string | null;
  sessionId?: string | null;
  details?: Record<string, unknown>;
}

/** Which events an operator asks for (GET /admin/v1/audit-events). */
export interface AuditQuery {
  type?: string;
  userId?: string;
  clientId?: string;
  /** at >= from */
  from?: Date;
  /** at < to */
  to?: Date;
  /** continue after this event (exclusive), in newest-first order */
  before?: { at: Date; id: string };
  limit: number;
}

export interface AuditStore {
  record(event: AuditEventRecord): Promise<void>;
  list(filter: { type?: string; sessionId?: string; limit?: number }): Promise<AuditEventRecord[]>;
  /** Events matching `query`, newest first (at, then id, descending). */
  page(query: AuditQuery): Promise<AuditEventRecord[]>;
  /** Deletes events older than `before`, in bounded chunks; returns how many. */
  prune(before: Date): Promise<number>;
}
