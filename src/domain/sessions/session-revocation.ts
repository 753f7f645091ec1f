// Ending sessions, the one rule every caller shares (logout, the user's /account, the operator's
// CLI and admin API): the store revokes (exactly one caller wins), the event is recorded, and
// the status lists are told, so the session's access tokens are refused as soon as they are
// rebuilt. Needs no refresh-token secret, so the operator commands build it too.
import type { Audit } from "../audit.ts";
import type { Clock } from "../clock.ts";
import { NotFound } from "../errors.ts";
import type { RevocationListener } from "../tokens/status-publisher.ts";
import type { LiveSession, SessionRecord, SessionStore } from "./session-store.ts";

/** At most this many sessions are listed (to their user, or to an operator). */
export const LISTED_SESSIONS_MAX = 1000;

export class SessionRevocation {
  constructor(
    private readonly store: SessionStore,
    private readonly clock: Clock,
    private readonly audit: Audit,
    /** told of every revocation made here (a server rebuilds its status lists at once) */
    private readonly revocations: RevocationListener,
  ) {}

  findById(id: string): Promise<SessionRecord | null> {
    return this.store.findSession(id);
  }

  /** The user's live sessions, newest first, at most LISTED_SESSIONS_MAX. */
  listLive(userId: string): Promise<LiveSession[]> {
    return this.store.listLive(userId, this.clock.now(), LISTED_SESSIONS_MAX);
  }

  /**
   * Revoke a whole session: every refresh token of it stops working, and the status list bit
   * its access tokens share is set. True when this call revoked it (false: it already was).
   */
  async revokeSession(session: SessionRecord, reason: string): Promise<boolean> {
    if (!(await this.store.revoke(session.id, reason, this.clock.now()))) return false;
    await this.audit.record("session.revoked", {
      userId: session.userId,
      clientId: session.clientId,
      sessionId: session.id,
      details: { reason },
    });
    await this.revocations.revoked();
    return true;
  }

  /**
   * A user ends one of their own sessions. Another user's session, an unknown id and one already
   * revoked all answer the same NotFound: nothing to learn about other users' sessions.
   */
  async endOwn(userId: string, sessionId: string, reason: string): Promise<void> {
    const session = await this.store.findSession(sessionId);
    if (!session || session.userId !== userId || session.revokedAt !== null) throw new NotFound("No such session.");
    await this.revokeSession(session, reason);
  }

  /**
   * Revoke every session of a user but `exceptSessionId` (when given): refresh tokens stop at
   * once, and the status list bit of each session's access tokens is set. Returns how many.
   */
  async revokeAllOfUser(userId: string, reason: string, exceptSessionId?: string): Promise<number> {
    const count = await this.store.revokeAllForUser(userId, reason, this.clock.now(), exceptSessionId);
    if (count > 0) {
      await this.audit.record("sessions.revoked", {
        userId,
        details: { reason, sessions: count, ...(exceptSessionId ? { kept: exceptSessionId } : {}) },
      });
      await this.revocations.revoked();
    }
    return count;
  }
}
