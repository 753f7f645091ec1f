// The user's own account (/account): change the password, list and end one's sessions. The
// caller is the user of a Bearer access token this issuer signed (RFC 6750), judged as the
// issuer judges its own tokens in introspection: signature with its key ring, iss/typ/exp,
// not revoked (RFC 7009), its client not disabled, its session not revoked, its user not disabled.
import type { Audit } from "./audit.ts";
import type { ClientRecord } from "./clients/client-store.ts";
import type { Clock } from "./clock.ts";
import type { Users } from "./credentials/users.ts";
import type { KeyRing } from "./keys/key-ring.ts";
import type { LiveSession } from "./sessions/session-store.ts";
import type { Sessions } from "./sessions/sessions.ts";
import { authenticateBearer, InvalidToken } from "./tokens/bearer-access.ts";
import type { RevocationStore } from "./tokens/revocation-store.ts";

/** Who is calling: the user, the session and the client of the presented access token. */
export interface AccountCaller {
  userId: string;
  sessionId: string;
  clientId: string;
}

export interface AccountDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  /** the audience of user access tokens (ACCESS_TOKEN_AUDIENCE): /account accepts only those (RFC 9068 §4) */
  audience: string;
  users: Users;
  sessions: Sessions;
  audit: Audit;
  revocations: Pick<RevocationStore, "has">;
  clients: { find(id: string): Promise<ClientRecord | null> };
  userStore: { findById(id: string): Promise<{ disabledAt: Date | null } | null> };
}

/** Why a session ended, as stored on it. */
export const ENDED_BY_USER = "ended_by_user";
export const PASSWORD_CHANGED = "password_changed";

export class Account {
  constructor(private readonly deps: AccountDeps) {}

  /** The caller behind a Bearer access token, or InvalidToken (401). */
  async authenticate(token: string | null): Promise<AccountCaller> {
    const { keys, clock, issuer, revocations, clients, sessions, userStore, audience } = this.deps;
    const claims = await authenticateBearer({ keys, clock, issuer, liveness: { revocations, clients, sessions, users: userStore } }, token, audience);
    // A client_credentials token names no user: it has no account to manage.
    if (typeof claims.sid !== "string" || typeof claims.client_id !== "string") throw new InvalidToken("The access token is not a user's.");
    return { userId: claims.sub, sessionId: claims.sid, clientId: claims.client_id };
  }

  /**
   * Change the password: the current one checked as a login (throttled, invalid_grant when
   * wrong), the new one under the registration policy. Every other session of the user is
   * revoked (refresh tokens dead, access tokens flipped in the status list); the caller's stays.
   */
  async changePassword(caller: AccountCaller, currentPassword: string, newPassword: string, address: string): Promise<void> {
    await this.deps.users.changePassword(caller.userId, currentPassword, newPassword, { clientId: caller.clientId, address });
    const revoked = await this.deps.sessions.revokeAllOfUser(caller.userId, PASSWORD_CHANGED, caller.sessionId);
    await this.deps.audit.record("password.changed", {
      userId: caller.userId,
      clientId: caller.clientId,
      sessionId: caller.sessionId,
      details: { sessionsRevoked: revoked, address },
    });
  }

  /** The caller's live sessions, newest first; `current` marks the caller's own. */
  async listSessions(caller: AccountCaller): Promise<Array<LiveSession & { current: boolean }>> {
    const live = await this.deps.sessions.listLive(caller.userId);
    return live.map((s) => ({ ...s, current: s.session.id === caller.sessionId }));
  }

  /** End one of the caller's sessions (NotFound for anyone else's or an unknown id). */
  endSession(caller: AccountCaller, sessionId: string): Promise<void> {
    return this.deps.sessions.endOwn(caller.userId, sessionId, ENDED_BY_USER);
  }

  /** Log out everywhere: every session of the caller, the current one included. */
  async endAllSessions(caller: AccountCaller): Promise<number> {
    return this.deps.sessions.revokeAllOfUser(caller.userId, ENDED_BY_USER);
  }
}
