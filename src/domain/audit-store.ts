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

export interface AuditStore {
  record(event: AuditEventRecord): Promise<void>;
  list(filter: { type?: string; sessionId?: string; limit?: number }): Promise<AuditEventRecord[]>;
  /** Deletes events older than `before`, in bounded chunks; returns how many. */
  prune(before: Date): Promise<number>;
}
