// Sessions (a session is one refresh-token family): start, rotate (with reuse detection and a grace window),
// revoke. RFC 9700 §4.14.2 (refresh token rotation) and RFC 6749 §6 (refreshing).
import type { LiveSession, RefreshTokenLookup, RefreshTokenRecord, SessionRecord, SessionStore } from "./session-store.ts";
import type { Audit } from "../audit.ts";
import { addSeconds, type Clock } from "../clock.ts";
import { InvalidGrant } from "../errors.ts";
import { SessionRevocation } from "./session-revocation.ts";
import { newId } from "../ids.ts";
import type { StatusIndexAllocator } from "../tokens/status-index.ts";
import type { RevocationListener } from "../tokens/status-publisher.ts";
import {
  deriveChildToken,
  hashRefreshToken,
  looksLikeRefreshToken,
  newRefreshToken,
  sameHash,
} from "../tokens/refresh-token.ts";

export interface SessionPolicy {
  /** absolute session lifetime, seconds */
  refreshTokenTtl: number;
  /** idle timeout, seconds */
  refreshIdleTtl: number;
  /** seconds a consumed token may be retried and get the same successor */
  refreshReuseGrace: number;
  /** keep the User-Agent and address seen at login on the session (SESSION_METADATA) */
  sessionMetadata?: boolean;
}

/** What a login came from, as the HTTP layer saw it. */
export interface LoginMetadata {
  userAgent?: string | null;
  address?: string | null;
}

/** Longest User-Agent kept on a session, in characters. */
export const USER_AGENT_MAX = 256;

const truncate = (value: string | null | undefined, max: number): string | null => {
  if (typeof value !== "string" || value === "") return null;
  const chars = [...value];
  return chars.length > max ? chars.slice(0, max).join("") : value;
};

export interface IssuedRefreshToken {
  session: SessionRecord;
  /** the plain token: goes to the client, never to storage or logs */
  refreshToken: string;
  /** when this refresh token stops working unless rotated (idle or absolute, whichever first) */
  expiresAt: Date;
  outcome: "started" | "rotated" | "grace_retry";
  /** the user's roles as of this refresh (access tokens carry them) */
  roles?: string[];
}

export class Sessions {
  constructor(
    private readonly store: SessionStore,
    private readonly clock: Clock,
    private readonly secret: Buffer,
    private readonly audit: Audit,
    private readonly policy: SessionPolicy,
    /** token status list indices: one per session, shared by all its access tokens */
    private readonly statusIndices: Pick<StatusIndexAllocator, "allocate">,
    /** told of every revocation this instance makes (the status lists are rebuilt at once, not awaited) */
    private readonly revocations: RevocationListener,
  ) {
    this.revocation = new SessionRevocation(store, clock, audit, revocations);
  }

  /** ending sessions (shared with the operator commands) */
  readonly revocation: SessionRevocation;

  /** A login starts a new session with its first refresh token. */
  /**
   * A new session for a user whose password was just checked against `passwordHash`; null when,
   * by the time it is written, the user is disabled or has another password (SessionStore.start):
   * the login must then be refused.
   */
  async start(input: {
    userId: string;
    clientId: string;
    scope: string;
    passwordHash: string;
    refreshTokenTtl?: number | null;
    metadata?: LoginMetadata;
  }): Promise<IssuedRefreshToken | null> {
    const statusIdx = await this.statusIndices.allocate();
    const now = this.clock.now();
    const session: SessionRecord = {
      id: newId(),
      userId: input.userId,
      clientId: input.clientId,
      scope: input.scope,
      createdAt: now,
      expiresAt: addSeconds(now, input.refreshTokenTtl ?? this.policy.refreshTokenTtl),
      revokedAt: null,
      revokedReason: null,
      statusIdx,
    };
    if (this.policy.sessionMetadata === true && input.metadata) {
      const userAgent = truncate(input.metadata.userAgent, USER_AGENT_MAX);
      const address = truncate(input.metadata.address, 64);
      if (userAgent !== null) session.userAgent = userAgent;
      if (address !== null) session.address = address;
    }
    const refreshToken = newRefreshToken();
    const first = this.tokenRecord(session, refreshToken, null, now);
    if (!(await this.store.start(session, first, { passwordHash: input.passwordHash }))) return null;
    return { session, refreshToken, expiresAt: first.expiresAt, outcome: "started" };
  }

  /**
   * Consume `presented` and return its successor. The order of the checks is the point:
   *
   * 1. A token of a revoked or ended session is refused (nothing left to protect).
   * 2. Reuse first (RFC 9700 §4.14.2): a consumed token that is not a grace retry by the client
   *    it was issued to revokes the whole session, whatever else the request says (another
   *    client_id, a bad scope): request checks must not let a thief probe a session for free.
   * 3. Then the request checks (client binding, disabled user, `check`, e.g. the scope), which
   *    refuse without consuming anything.
   * 4. The consume itself is one INSERT that succeeds only while the session is still live
   *    (store.insertChild): a logout or reuse revocation committed after step 1 wins over it.
   *
   * Exactly one concurrent caller consumes a token (the store's unique parentId decides); the
   * others get the same successor inside the grace window, or revoke the session outside it.
   */
  async rotate(presented: string, clientId: string, check?: (session: SessionRecord, user: { roles: string[] }) => void): Promise<IssuedRefreshToken> {
    const lookup = await this.find(presented);
    const { token, session } = lookup;
    const now = this.clock.now();
    this.assertUsable(session, now);
    if (lookup.child !== null && !this.isGraceRetry(presented, lookup, lookup.child, clientId, now)) {
      await this.revokeForReuse(lookup, lookup.child, now);
    }
    // RFC 6749 §6: the refresh token is bound to the client it was issued to.
    if (session.clientId !== clientId) throw new InvalidGrant("The refresh token was not issued to this client.");
    // A disabled user's sessions are revoked when it is disabled; this also covers the race.
    if (lookup.user.disabledAt !== null) throw new InvalidGrant("The user account is disabled.");
    // Request checks that depend on the session (e.g. the scope) run before the token is
    // consumed: a refused request must leave the refresh token usable.
    check?.(session, lookup.user);
    const roles = lookup.user.roles;

    let child = lookup.child;
    if (child === null) {
      if (token.expiresAt <= now) throw new InvalidGrant("The refresh token has expired.");
      const successor = deriveChildToken(this.secret, presented);
      const record = this.tokenRecord(session, successor, token.id, now);
      const outcome = await this.store.insertChild(record, now);
      if (outcome === "inserted") {
        return { session, refreshToken: successor, expiresAt: record.expiresAt, outcome: "rotated", roles };
      }
      // Revoked (logout, reuse, disabled user) or ended between the read and the consume.
      if (outcome === "session_ended") throw new InvalidGrant("The refresh token has been revoked.");
      // Lost the race to a concurrent refresh with the same token: judge it like a retry.
      child = await this.store.findChildOf(token.id);
      if (child === null) throw new Error("refresh token consumed but its successor is missing");
      if (!this.isGraceRetry(presented, lookup, child, clientId, now)) await this.revokeForReuse(lookup, child, now);
    }
    // A grace retry writes nothing, so nothing atomic orders it after a revocation: look again,
    // so that a logout committed since the lookup is not followed by a new access token.
    const current = await this.store.findSession(session.id);
    if (!current || current.revokedAt !== null) throw new InvalidGrant("The refresh token has been revoked.");
    await this.audit.record("refresh.grace_retry", {
      userId: session.userId,
      clientId: session.clientId,
      sessionId: session.id,
      details: { tokenId: token.id, secondsSinceRotation: (now.getTime() - child.token.createdAt.getTime()) / 1000 },
    });
    return { session, refreshToken: deriveChildToken(this.secret, presented), expiresAt: child.token.expiresAt, outcome: "grace_retry", roles };
  }

  /**
   * The reuse verdict for a request whose client failed authentication: a consumed refresh token
   * outside its grace window is reuse whoever presents it; revokes the session and throws. A token
   * that could be a grace retry by the client it names (e.g. a legitimate client whose secret was
   * just rotated) is left alone: the request fails anyway and nothing was consumed.
   */
  async rejectIfReused(presented: string, claimedClientId: string | undefined): Promise<void> {
    const lookup = await this.lookup(presented);
    if (!lookup || lookup.child === null) return;
    const now = this.clock.now();
    if (lookup.session.revokedAt !== null || lookup.session.expiresAt <= now) return;
    if (claimedClientId !== undefined && this.isGraceRetry(presented, lookup, lookup.child, claimedClientId, now)) return;
    await this.revokeForReuse(lookup, lookup.child, now);
  }

  /** The presented refresh token as stored, or null (unknown, or not shaped like one). */
  async lookup(presented: string): Promise<RefreshTokenLookup | null> {
    return looksLikeRefreshToken(presented) ? this.store.findToken(hashRefreshToken(presented)) : null;
  }

  /**
   * Whether a refresh token would be accepted now (RFC 7662 "active"): its session is live, it
   * is not idle-expired, and it has not been consumed (a grace retry is a retry, not a use).
   */
  isActive(lookup: RefreshTokenLookup): boolean {
    const now = this.clock.now();
    const { session, token, child, user } = lookup;
    return session.revokedAt === null && session.expiresAt > now && token.expiresAt > now && child === null && user.disabledAt === null;
  }

  /** The session by id, as stored now (revoked or not), or null. */
  findById(id: string): Promise<SessionRecord | null> {
    return this.revocation.findById(id);
  }

  /** See SessionRevocation.revokeSession. */
  revokeSession(session: SessionRecord, reason: string): Promise<boolean> {
    return this.revocation.revokeSession(session, reason);
  }

  /** The user's live sessions, newest first (GET /account/sessions). */
  listLive(userId: string): Promise<LiveSession[]> {
    return this.revocation.listLive(userId);
  }

  /** See SessionRevocation.endOwn. */
  endOwn(userId: string, sessionId: string, reason: string): Promise<void> {
    return this.revocation.endOwn(userId, sessionId, reason);
  }

  /** See SessionRevocation.revokeAllOfUser. */
  revokeAllOfUser(userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    return this.revocation.revokeAllOfUser(userId, reason, exceptSessionId);
  }

  /** Revoke the session a refresh token belongs to (logout). Unknown tokens are a no-op. */
  async revokeByToken(presented: string, reason: string): Promise<SessionRecord | null> {
    const lookup = await this.lookup(presented);
    if (!lookup) return null;
    await this.revokeSession(lookup.session, reason);
    return lookup.session;
  }

  /**
   * Prunes dead sessions (pruneDeadSessions) kept `revokedRetentionSeconds` after their revocation
   * and `endedRetentionSeconds` after their end. The server's schedule goes through retention.ts,
   * which derives both from the longest access-token lifetime (sessionRetention()).
   */
  pruneDead(revokedRetentionSeconds: number, endedRetentionSeconds = 0): Promise<number> {
    return pruneDeadSessions(this.store, this.clock, this.audit, { revoked: revokedRetentionSeconds, ended: endedRetentionSeconds });
  }

  private async find(presented: string): Promise<RefreshTokenLookup> {
    const lookup = await this.lookup(presented);
    if (!lookup) throw new InvalidGrant("The refresh token is invalid.");
    return lookup;
  }

  private assertUsable(session: SessionRecord, now: Date): void {
    if (session.revokedAt !== null) throw new InvalidGrant("The refresh token has been revoked.");
    if (session.expiresAt <= now) throw new InvalidGrant("The session has expired.");
  }

  /**
   * Grace: the presented token is the direct parent of the session's current token (its child
   * is unconsumed), was consumed moments ago, and comes back from the client it was issued to,
   * e.g. a lost response or two tabs. Anything else with a consumed token is reuse.
   */
  private isGraceRetry(
    presented: string,
    { session }: RefreshTokenLookup,
    child: { token: RefreshTokenRecord; consumed: boolean },
    clientId: string,
    now: Date,
  ): boolean {
    const ageMs = now.getTime() - child.token.createdAt.getTime();
    if (child.consumed || ageMs >= this.policy.refreshReuseGrace * 1000 || child.token.expiresAt <= now) return false;
    if (session.clientId !== clientId) return false;
    // If the derivation secret changed since, the recomputed token would not be the stored one.
    return sameHash(hashRefreshToken(deriveChildToken(this.secret, presented)), child.token.hash);
  }

  /**
   * Reuse: RFC 9700 §4.14.2, the authorization server cannot tell the legitimate client from
   * an attacker, so the whole session is revoked. Committed before the request fails.
   */
  private async revokeForReuse(
    { token, session }: RefreshTokenLookup,
    child: { token: RefreshTokenRecord; consumed: boolean },
    now: Date,
  ): Promise<never> {
    const ageMs = now.getTime() - child.token.createdAt.getTime();
    const revokedNow = await this.store.revoke(session.id, "refresh_token_reuse", now);
    await this.audit.record("refresh.reuse_detected", {
      userId: session.userId,
      clientId: session.clientId,
      sessionId: session.id,
      details: { tokenId: token.id, familyRevoked: revokedNow, secondsSinceRotation: Math.floor(ageMs / 1000) },
    });
    if (revokedNow) await this.revocations.revoked();
    throw new InvalidGrant("The refresh token was already used; the session has been revoked.");
  }

  private tokenRecord(session: SessionRecord, token: string, parentId: string | null, now: Date): RefreshTokenRecord {
    const idle = addSeconds(now, this.policy.refreshIdleTtl);
    return {
      id: newId(),
      sessionId: session.id,
      hash: hashRefreshToken(token),
      parentId,
      createdAt: now,
      // Rotation never extends the absolute lifetime.
      expiresAt: idle < session.expiresAt ? idle : session.expiresAt,
    };
  }
}

/** Revoked sessions are kept at least a day. */
export const REVOKED_SESSION_RETENTION = 86400;

/**
 * How long an access token of a session may still be presented after the session stopped issuing
 * them (its absolute end, its idle end, or its revocation), as verifiers judge expiry: the longest
 * access-token lifetime (any client's accessTokenTtl included) plus the clock skew they tolerate.
 * A session's row sets its token status list bit (revoked) and is what a later revocation (a
 * disabled user, RFC 7009) sets it through, so no session row goes before this has passed.
 */
export const sessionTokensOutlive = (longestAccessTokenTtl: number, clockSkew: number): number => longestAccessTokenTtl + clockSkew;

/** How long a revoked session is kept: sessionTokensOutlive(), and a day at least. */
export const revokedSessionRetention = (longestAccessTokenTtl: number, clockSkew: number): number =>
  Math.max(REVOKED_SESSION_RETENTION, sessionTokensOutlive(longestAccessTokenTtl, clockSkew));

/** How long pruning keeps sessions that can no longer be used, in seconds (see retention.ts). */
export interface SessionRetention {
  /** after the revocation; revokedSessionRetention() */
  revoked: number;
  /** after the absolute or idle end of an unrevoked session; sessionTokensOutlive() */
  ended: number;
}

/** The retention of both kinds of dead session, from the longest access-token lifetime and CLOCK_SKEW. */
export const sessionRetention = (longestAccessTokenTtl: number, clockSkew: number): SessionRetention => ({
  revoked: revokedSessionRetention(longestAccessTokenTtl, clockSkew),
  ended: sessionTokensOutlive(longestAccessTokenTtl, clockSkew),
});

/**
 * Deletes sessions that can never be used again, once no access token of theirs can be presented
 * any more: unrevoked ones `retention.ended` seconds after their absolute end or their newest
 * refresh token's (idle) deadline, revoked ones `retention.revoked` seconds after the revocation.
 * Used by the server's schedule and by the rotation script (retention.ts).
 */
export async function pruneDeadSessions(store: SessionStore, clock: Clock, audit: Audit, retention: SessionRetention): Promise<number> {
  const now = clock.now();
  const { sessions } = await store.pruneDead(addSeconds(now, -retention.ended), addSeconds(now, -retention.revoked));
  if (sessions > 0) await audit.record("sessions.pruned", { details: { sessions } });
  return sessions;
}
