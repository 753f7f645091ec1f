// RFC 7009 token revocation of the tokens this issuer hands out: a refresh token (looked up by
// hash) ends its whole session; a JWT access token (verified with our own keys) is kept in the
// revocation store until it expires, which introspection checks, and its token status list bit
// is set: a client_credentials token has an index of its own; a user's access token shares its
// session's index, so revoking it revokes the session (RFC 7009 §2.1 allows revoking the
// related tokens: "the server MAY revoke the respective refresh token as well"), and with it the
// refresh token and every other access token of that session. A user token whose session row is
// gone (pruned) has its index recorded with the entry, like a client_credentials token's.
// The status lists are told only of a revocation this call made (not of a repeat), and are
// rebuilt without holding the response (RevocationListener).
import type { Audit } from "../audit.ts";
import type { ClientRecord } from "../clients/client-store.ts";
import type { Clock } from "../clock.ts";
import { OAuthError } from "../errors.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { Sessions } from "../sessions/sessions.ts";
import { inspectAccessToken } from "./access-token.ts";
import { looksLikeRefreshToken } from "./refresh-token.ts";
import type { RevocationStore } from "./revocation-store.ts";
import { statusIndexOf } from "./status-list.ts";
import type { RevocationListener } from "./status-publisher.ts";
import { lookupOrder, type TokenTypeHint } from "./token-type-hint.ts";

export interface TokenRevocationDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  sessions: Sessions;
  revocations: RevocationStore;
  audit: Audit;
  /** told when an entry with an index is stored (session revocations tell it themselves) */
  statusLists: RevocationListener;
  /** CLOCK_SKEW: how long past its exp services still accept a token, so how long it can be revoked */
  clockSkew: number;
}

/** RFC 7009 §2.1: a client may revoke only tokens issued to it. */
class NotYourToken extends OAuthError {
  constructor() {
    super("unauthorized_client", 400, "The token was not issued to this client.");
  }
}

export class TokenRevocation {
  constructor(private readonly deps: TokenRevocationDeps) {}

  /**
   * A refresh token revokes its whole session; an access token is revoked by jti until it
   * expires, and a user's access token revokes its session too. An access token up to CLOCK_SKEW
   * past its exp is still revoked: services that verify locally still accept it. Unknown,
   * malformed or expired tokens are a successful no-op (§2.2).
   */
  async revoke(client: ClientRecord, token: string, hint: TokenTypeHint): Promise<void> {
    const { sessions, keys, clock, issuer, revocations, audit, statusLists } = this.deps;
    for (const kind of lookupOrder(hint, "refresh")) {
      if (kind === "refresh" && looksLikeRefreshToken(token)) {
        const lookup = await sessions.lookup(token);
        if (!lookup) continue;
        if (lookup.session.clientId !== client.id) throw new NotYourToken();
        await sessions.revokeSession(lookup.session, "revoked_by_client");
        return;
      }
      if (kind === "access") {
        const claims = await inspectAccessToken(keys, clock, issuer, token, { clockTolerance: this.deps.clockSkew });
        if (!claims?.jti || typeof claims.exp !== "number") continue;
        if (claims.client_id !== client.id) throw new NotYourToken();
        const sid = typeof claims.sid === "string" ? claims.sid : null;
        const session = sid === null ? null : await sessions.findById(sid);
        // An index no session row covers is kept with the entry, so its bit is set until the
        // token expires: a client_credentials token's own, or a user token's whose session row
        // has been pruned (pruning waits for the session's tokens to expire; this covers the rest).
        const statusIdx = session === null ? statusIndexOf(claims, issuer) : null;
        const inserted = await revocations.add({
          jti: claims.jti,
          clientId: client.id,
          expiresAt: new Date(claims.exp * 1000),
          revokedAt: clock.now(),
          statusIdx,
        });
        await audit.record("access_token.revoked", {
          clientId: client.id,
          sessionId: sid,
          userId: sid ? claims.sub : null,
          details: { jti: claims.jti },
        });
        if (session !== null) {
          // Sets the session's bit (and tells the lists) unless it was revoked already.
          if (session.clientId === client.id) await sessions.revokeSession(session, "access_token_revoked");
        } else if (inserted && statusIdx !== null) {
          await statusLists.revoked();
        }
        return;
      }
    }
  }

  /** Forgets revoked access tokens that have expired anyway; returns how many. */
  pruneExpired(): Promise<number> {
    return this.deps.revocations.prune(this.deps.clock.now());
  }
}
