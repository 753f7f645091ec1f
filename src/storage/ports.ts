// Storage ports: what the domain needs from a database, in the domain's own words.
// Implemented by storage/prisma/ (SQLite and Postgres).
// Interfaces the domain owns (arrows point inward), re-exported for the implementations here.
export type { UserRecord, UserStore } from "../domain/credentials/user-store.ts";
export { EmailTakenError } from "../domain/credentials/user-store.ts";
export type { LoginAttempt, LoginThrottleStore } from "../domain/credentials/throttle.ts";
import type { LoginThrottleStore } from "../domain/credentials/throttle.ts";
import type { UserStore } from "../domain/credentials/user-store.ts";

export interface ClientRecord {
  id: string;
  name: string;
  type: "public" | "confidential";
  secretHash: string | null;
  grantTypes: string[];
  scopes: string[];
  /** audiences this client may request tokens for (client_credentials, RFC 8707 `resource`) */
  audiences: string[];
  /**
   * resource identifiers this client *is*: as a resource server it may introspect tokens whose
   * `aud` is one of them (RFC 7662 §4). Being allowed to call an API is not being that API.
   */
  resources: string[];
  accessTokenTtl: number | null;
  refreshTokenTtl: number | null;
  createdAt: Date;
  disabledAt: Date | null;
}

/** A session is one refresh-token family. */
export interface SessionRecord {
  id: string;
  userId: string;
  clientId: string;
  scope: string;
  createdAt: Date;
  /** absolute end; rotation never moves it */
  expiresAt: Date;
  revokedAt: Date | null;
  revokedReason: string | null;
}

export interface RefreshTokenRecord {
  id: string;
  sessionId: string;
  /** SHA-256 of the token; the token itself is never stored */
  hash: string;
  parentId: string | null;
  createdAt: Date;
  /** idle deadline, capped at the session's expiresAt */
  expiresAt: Date;
}

/** A presented refresh token as the database sees it, read in one query. */
export interface RefreshTokenLookup {
  token: RefreshTokenRecord;
  session: SessionRecord;
  /** the session's user as of this read: roles go into access tokens, disabled users stop */
  user: { roles: string[]; disabledAt: Date | null };
  /** the token rotated from this one, if it was consumed */
  child: { token: RefreshTokenRecord; consumed: boolean } | null;
}

export interface AuditEventRecord {
  id: string;
  type: string;
  at: Date;
  userId?: string | null;
  clientId?: string | null;
  sessionId?: string | null;
  details?: Record<string, unknown>;
}

export class ClientExistsError extends Error {
  constructor() {
    super("client id already exists");
    this.name = "ClientExistsError";
  }
}

export interface ClientStore {
  findById(id: string): Promise<ClientRecord | null>;
  /** throws ClientExistsError when the id is taken */
  create(client: ClientRecord): Promise<void>;
  list(): Promise<ClientRecord[]>;
  /** false when there is no such client */
  disable(id: string, at: Date): Promise<boolean>;
  /** false when there is no such client */
  setSecretHash(id: string, secretHash: string): Promise<boolean>;
  /**
   * Creates the client, or brings an existing one's name, type, grant types, scopes and
   * audiences in line (config-owned clients such as the first-party web client).
   */
  upsert(client: ClientRecord): Promise<ClientRecord>;
}

/** What consuming a refresh token (inserting its child) did. */
export type ConsumeOutcome = "inserted" | "consumed" | "session_ended";

export interface PruneResult {
  sessions: number;
}

export interface SessionStore {
  /** one write: the session and its first refresh token */
  start(session: SessionRecord, first: RefreshTokenRecord): Promise<void>;
  findToken(hash: string): Promise<RefreshTokenLookup | null>;
  /**
   * Consume `child.parentId` by inserting its child, in one statement that also requires the
   * session to be live at `now` (not revoked, not ended, its user not disabled). Atomic: the
   * unique parentId lets exactly one concurrent caller win ("consumed" for the others), and a
   * revocation committed before the insert makes it insert nothing ("session_ended"); one that
   * is in flight is waited for, never overtaken.
   */
  insertChild(child: RefreshTokenRecord, now: Date): Promise<ConsumeOutcome>;
  findChildOf(parentId: string): Promise<{ token: RefreshTokenRecord; consumed: boolean } | null>;
  findSession(id: string): Promise<SessionRecord | null>;
  /** revokes unless already revoked; true when this call did it (exactly one caller wins) */
  revoke(sessionId: string, reason: string, at: Date): Promise<boolean>;
  /** revokes every live session of a user; returns how many */
  revokeAllForUser(userId: string, reason: string, at: Date): Promise<number>;
  /**
   * Deletes sessions that can never be used again: past their absolute end, idle past the
   * deadline of their newest token, or revoked before `revokedBefore`. Live ones are untouched.
   */
  pruneDead(now: Date, revokedBefore: Date): Promise<PruneResult>;
}

/** Access tokens revoked before they expire (RFC 7009), by jti. */
export interface AccessTokenDenyList {
  add(entry: { jti: string; clientId: string; expiresAt: Date; revokedAt: Date }): Promise<void>;
  has(jti: string): Promise<boolean>;
  /** deletes entries whose token has expired anyway */
  prune(now: Date): Promise<number>;
}

export interface AuditStore {
  record(event: AuditEventRecord): Promise<void>;
  list(filter: { type?: string; sessionId?: string; limit?: number }): Promise<AuditEventRecord[]>;
  /** Deletes events older than `before`, in bounded chunks; returns how many. */
  prune(before: Date): Promise<number>;
}

export interface Storage {
  users: UserStore;
  loginThrottle: LoginThrottleStore;
  clients: ClientStore;
  sessions: SessionStore;
  audit: AuditStore;
  deniedAccessTokens: AccessTokenDenyList;
  /** throws when the database cannot be reached */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** true when `err` means the database is unreachable (-> 503 + Retry-After, not 500) */
  isUnavailable(err: unknown): boolean;
  /** the database key store (KEY_STORE=database), sealing with `encryptionKey` */
  keyStore(encryptionKey: Buffer): KeyStore;
}

// ---- signing keys ----

/** A signing key as stored: lifecycle metadata plus the private JWK (already unsealed). */
export interface StoredKey {
  kid: string;
  alg: "ES256" | "RS256" | "PS256" | "EdDSA";
  state: "next" | "active" | "retired";
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  privateJwk: import("jose").JWK;
}

export type KeyStatePatch = Partial<Pick<StoredKey, "state" | "activatedAt" | "retiredAt">>;

/** Operations inside one exclusive key-store transaction. */
export interface KeyStoreTx {
  list(): Promise<StoredKey[]>;
  insert(key: StoredKey): Promise<void>;
  update(kid: string, patch: KeyStatePatch): Promise<void>;
  remove(kid: string): Promise<void>;
}

export interface KeyStore {
  readonly kind: "file" | "database";
  list(): Promise<StoredKey[]>;
  /**
   * Runs `fn` exclusively across processes (file lock, or a locked row in a database
   * transaction). The database store commits all of `fn` or nothing; the file store applies
   * each step atomically, and a crash between steps leaves a state the next run repairs.
   */
  transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T>;
  /** A named 32-byte server secret, created on first use, shared by every instance. */
  secret(name: string): Promise<Buffer>;
}
