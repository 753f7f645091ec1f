// What the session rules need from storage, in their own words (implemented in storage/prisma
// and, for fast tests of the rules, storage/memory). A session is one refresh-token family
// (RFC 9700 §4.14.2): the tokens rotated from one login, linked parent to child.

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
  /**
   * the session's token status list index (domain/tokens/status-index.ts): every access token of
   * the session carries it, and its bit is set while the session is revoked; null for sessions
   * started before the status list existed (their access tokens carry no status claim)
   */
  statusIdx: number | null;
  /** the User-Agent seen at login (at most 256 characters), kept only with SESSION_METADATA */
  userAgent?: string | null;
  /** the client's address seen at login, kept only with SESSION_METADATA */
  address?: string | null;
}

/** A live session as its user sees it (GET /account/sessions). */
export interface LiveSession {
  session: SessionRecord;
  /** when its newest refresh token was issued (the last login or refresh) */
  lastUsedAt: Date;
  /** its newest refresh token's deadline: the session ends then unless refreshed */
  idleExpiresAt: Date;
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

/** What consuming a refresh token (inserting its child) did. */
export type ConsumeOutcome = "inserted" | "consumed" | "session_ended";

export interface PruneResult {
  sessions: number;
}

/** The user as a login's password check found it. */
export interface LoginCheck {
  /** the stored hash the password was verified against */
  passwordHash: string;
}

export interface SessionStore {
  /**
   * One write: the session and its first refresh token, only if the session's user is still as
   * the login found it (not disabled, the same password hash); false, writing nothing, if not. A
   * password reset, a change or a disable that revokes the user's sessions while the login is in
   * flight must not be outlived by the session that login starts. The check is part of the write:
   * on Postgres a change in flight on the user's row is waited for and then seen; on SQLite the
   * write lock orders them.
   */
  start(session: SessionRecord, first: RefreshTokenRecord, check: LoginCheck): Promise<boolean>;
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
  /** revokes every unrevoked session of a user (but `exceptSessionId`, when given); returns how many */
  revokeAllForUser(userId: string, reason: string, at: Date, exceptSessionId?: string): Promise<number>;
  /**
   * The user's live sessions at `now` (not revoked, before their absolute end, their newest
   * refresh token not idle-expired), newest first, at most `limit`.
   */
  listLive(userId: string, now: Date, limit: number): Promise<LiveSession[]>;
  /**
   * Deletes sessions that can never be used again: unrevoked ones that ended (absolute end, or the
   * deadline of their newest token) before `endedBefore`, and revoked ones revoked before
   * `revokedBefore` (a revoked session is kept that long whatever its end). The caller sets both
   * cutoffs so that no access token of a deleted session can still be presented: the row is what
   * sets, or lets a later revocation set, its status list bit. Live ones are untouched.
   */
  pruneDead(endedBefore: Date, revokedBefore: Date): Promise<PruneResult>;
}
