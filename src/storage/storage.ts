// A database, as the composition root sees it: the domain's stores (each interface is owned by
// the domain that uses it) plus the infrastructure around them. Implemented by storage/prisma/
// (SQLite and Postgres).
import type { AuditStore } from "../domain/audit-store.ts";
import type { ClientStore } from "../domain/clients/client-store.ts";
import type { LoginThrottleStore } from "../domain/credentials/throttle.ts";
import type { UserStore } from "../domain/credentials/user-store.ts";
import type { KeyStore } from "../domain/keys/key-store.ts";
import type { SessionStore } from "../domain/sessions/session-store.ts";
import type { RevocationStore } from "../domain/tokens/revocation-store.ts";
import type { StatusIndexStore } from "../domain/tokens/status-index.ts";
import type { RevokedIndexStore } from "../domain/tokens/status-publisher.ts";

export interface Storage {
  users: UserStore;
  loginThrottle: LoginThrottleStore;
  clients: ClientStore;
  sessions: SessionStore;
  audit: AuditStore;
  revocations: RevocationStore;
  /** token status lists: the shared index counter, and the revoked indices the lists show */
  statusIndices: StatusIndexStore;
  revokedIndices: RevokedIndexStore;
  /** throws when the database cannot be reached */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** true when `err` means the database is unreachable (-> 503 + Retry-After, not 500) */
  isUnavailable(err: unknown): boolean;
  /** the database key store (KEY_STORE=database), sealing with `encryptionKey` */
  keyStore(encryptionKey: Buffer): KeyStore;
  /** SQLite: `listener` is told of every failure of the checkpoint worker and of every new one that runs after a failure */
  watchCheckpointer?(listener: (event: CheckpointerEvent) => void): void;
}

/**
 * SQLite's checkpoint worker (storage/prisma/checkpointer.ts): it failed (the connections
 * checkpoint inline until the next one starts, in `retryInMs`), or a new one runs after a failure.
 */
export type CheckpointerEvent = { type: "failed"; error: Error; retryInMs: number } | { type: "restarted" };
