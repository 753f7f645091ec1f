// One audit function for security-relevant events, so the log line, the stored event and the
// counters always agree. Details never carry a secret (no tokens, passwords, cookies).
import { AsyncLocalStorage } from "node:async_hooks";
import type { AuditStore } from "./audit-store.ts";
import type { Clock } from "./clock.ts";
import { newId } from "./ids.ts";

export type AuditEventType =
  | "user.registered"
  | "login.succeeded"
  | "login.failed"
  | "login.locked"
  | "password.rehashed"
  | "password.changed"
  | "refresh.reuse_detected"
  | "refresh.grace_retry"
  | "session.revoked"
  | "sessions.revoked"
  | "sessions.pruned"
  | "records.pruned"
  | "key.created"
  | "key.activated"
  | "key.retired"
  | "key.removed"
  | "key.revoked"
  | "keys.sealed"
  | "keys.reloaded"
  | "access_token.revoked"
  | "user.disabled"
  | "client.created"
  | "client.disabled"
  | "client.secret_rotated"
  | "client.updated"
  | "client.enabled"
  | "user.enabled"
  | "user.roles_changed"
  | "password.reset";

/**
 * Who made an operator's change: the admin CLI on the issuer's host, or a client holding an
 * admin:write token on the admin API. Every event recorded while the change runs names it.
 */
export type Actor = { via: "cli" } | { via: "admin_api"; clientId: string };

const currentActor = new AsyncLocalStorage<Actor>();

/** Runs `fn` as `actor`: every audit event it records (at any depth) carries `actor`. */
export function asActor<T>(actor: Actor, fn: () => Promise<T>): Promise<T> {
  return currentActor.run(actor, fn);
}

/** The logging surface the domain needs; pino's logger satisfies it. */
export interface AuditLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface AuditFields {
  userId?: string | null;
  clientId?: string | null;
  sessionId?: string | null;
  details?: Record<string, unknown>;
}

// Warn level: what an operator alerts on. A grace retry is usually two tabs or a lost response,
// but it is also what a thief replaying a just-used refresh token looks like inside the window
// (RFC 9700 §4.14.2: rotation relies on noticing the second use), so it is never buried at info.
const WARN: ReadonlySet<AuditEventType> = new Set(["refresh.reuse_detected", "refresh.grace_retry", "login.failed", "login.locked", "key.revoked"]);

export class Audit {
  /** events by type since start; what a metrics endpoint reads */
  readonly counts = new Map<AuditEventType, number>();

  constructor(
    private readonly store: AuditStore,
    private readonly logger: AuditLogger,
    private readonly clock: Clock,
  ) {}

  readonly #listeners: Array<(type: AuditEventType) => void> = [];

  /** Called for every event (metrics counters hang off this). */
  onRecord(listener: (type: AuditEventType) => void): void {
    this.#listeners.push(listener);
  }

  async record(type: AuditEventType, fields: AuditFields = {}): Promise<void> {
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    for (const l of this.#listeners) l(type);
    const actor = currentActor.getStore();
    if (actor) fields = { ...fields, details: { ...fields.details, actor } };
    const event = { id: newId(), type, at: this.clock.now(), ...fields };
    const line = { audit: type, userId: fields.userId, clientId: fields.clientId, sessionId: fields.sessionId, ...fields.details };
    if (WARN.has(type)) this.logger.warn(line, `audit: ${type}`);
    else this.logger.info(line, `audit: ${type}`);
    try {
      await this.store.record(event);
    } catch (err) {
      // The event is already in the log; a failed insert must not turn a security decision
      // (already committed) into a different response.
      this.logger.error({ audit: type, err: (err as Error).message }, "audit event could not be stored");
    }
  }
}
