// RFC 7009 token revocation of the tokens this issuer hands out: a refresh token (looked up by
// hash) ends its whole session; a JWT access token (verified with our own keys) is kept in the
// revocation store until it expires, which introspection checks.
import type { Audit } from "../audit.ts";
import type { ClientRecord } from "../clients/client-store.ts";
import type { Clock } from "../clock.ts";
import { OAuthError } from "../errors.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { Sessions } from "../sessions/sessions.ts";
import { inspectAccessToken } from "./access-token.ts";
import { looksLikeRefreshToken } from "./refresh-token.ts";
import type { RevocationStore } from "./revocation-store.ts";
import { lookupOrder, type TokenTypeHint } from "./token-type-hint.ts";

export interface TokenRevocationDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  sessions: Sessions;
  revocations: RevocationStore;
  audit: Audit;
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
   * expires. Unknown, malformed or expired tokens are a successful no-op (§2.2).
   */
  async revoke(client: ClientRecord, token: string, hint: TokenTypeHint): Promise<void> {
    const { sessions, keys, clock, issuer, revocations, audit } = this.deps;
    for (const kind of lookupOrder(hint, "refresh")) {
      if (kind === "refresh" && looksLikeRefreshToken(token)) {
        const lookup = await sessions.lookup(token);
        if (!lookup) continue;
        if (lookup.session.clientId !== client.id) throw new NotYourToken();
        await sessions.revokeSession(lookup.session, "revoked_by_client");
        return;
      }
      if (kind === "access") {
        const claims = await inspectAccessToken(keys, clock, issuer, token);
        if (!claims?.jti || typeof claims.exp !== "number") continue;
        if (claims.client_id !== client.id) throw new NotYourToken();
        await revocations.add({
          jti: claims.jti,
          clientId: client.id,
          expiresAt: new Date(claims.exp * 1000),
          revokedAt: clock.now(),
        });
        await audit.record("access_token.revoked", {
          clientId: client.id,
          sessionId: typeof claims.sid === "string" ? claims.sid : null,
          userId: claims.sid ? claims.sub : null,
          details: { jti: claims.jti },
        });
        return;
      }
    }
  }

  /** Forgets revoked access tokens that have expired anyway; returns how many. */
  pruneExpired(): Promise<number> {
    return this.deps.revocations.prune(this.deps.clock.now());
  }
}
