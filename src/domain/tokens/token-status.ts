// Revocation (RFC 7009) and introspection (RFC 7662) of the tokens this issuer hands out:
// opaque refresh tokens (looked up by hash) and JWT access tokens (verified with our own keys,
// then checked against the deny-list and their session).
import type { AccessTokenDenyList, ClientRecord } from "../../storage/ports.ts";
import type { Audit } from "../audit.ts";
import type { Clock } from "../clock.ts";
import { epochSeconds } from "../clock.ts";
import { OAuthError } from "../errors.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { RefreshFamilies } from "../sessions/refresh-families.ts";
import { looksLikeRefreshToken } from "./refresh-token.ts";
import { inspectAccessToken } from "./access-token.ts";

export interface TokenStatusDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  families: RefreshFamilies;
  denied: AccessTokenDenyList;
  sessions: { findSession(id: string): Promise<{ revokedAt: Date | null; expiresAt: Date } | null> };
  /** the token's client as of now (a disabled client's tokens are inactive) */
  clients: { find(id: string): Promise<ClientRecord | null> };
  /** the token's user as of now (a disabled user's tokens are inactive) */
  users: { findById(id: string): Promise<{ disabledAt: Date | null } | null> };
  audit: Audit;
}

/**
 * RFC 7662 §2.2 and §4: who may learn about an access token. The client it was issued to, or a
 * resource server it is meant for: its `aud` names one of the resources the caller *is*
 * (`resources`, not `audiences`: a client allowed to call an API is not that API, and two
 * callers of one API must not read each other's tokens). Anyone else gets `{"active": false}`,
 * exactly as for an unknown token.
 */
function mayIntrospect(caller: ClientRecord, claims: { client_id?: unknown; aud?: unknown }): boolean {
  if (claims.client_id === caller.id) return true;
  const aud = typeof claims.aud === "string" ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  return aud.some((a) => typeof a === "string" && caller.resources.includes(a));
}

/** RFC 7009 §2.1: a client may revoke only tokens issued to it. */
class NotYourToken extends OAuthError {
  constructor() {
    super("unauthorized_client", 400, "The token was not issued to this client.");
  }
}

export type TokenTypeHint = "access_token" | "refresh_token" | undefined;

export class TokenStatus {
  constructor(private readonly d: TokenStatusDeps) {}

  /**
   * RFC 7009: a refresh token revokes its whole session; an access token goes on the deny-list
   * until it expires. Unknown, malformed or expired tokens are a successful no-op (§2.2).
   */
  async revoke(client: ClientRecord, token: string, hint: TokenTypeHint): Promise<void> {
    // The hint only orders the lookups (§2.1); both types are always tried.
    const order: Array<"refresh" | "access"> = hint === "access_token" ? ["access", "refresh"] : ["refresh", "access"];
    for (const kind of order) {
      if (kind === "refresh" && looksLikeRefreshToken(token)) {
        const lookup = await this.d.families.lookup(token);
        if (!lookup) continue;
        if (lookup.session.clientId !== client.id) throw new NotYourToken();
        await this.d.families.revokeSession(lookup.session, "revoked_by_client");
        return;
      }
      if (kind === "access") {
        const claims = await inspectAccessToken(this.d.keys, this.d.clock, this.d.issuer, token);
        if (!claims?.jti || typeof claims.exp !== "number") continue;
        if (claims.client_id !== client.id) throw new NotYourToken();
        await this.d.denied.add({
          jti: claims.jti,
          clientId: client.id,
          expiresAt: new Date(claims.exp * 1000),
          revokedAt: this.d.clock.now(),
        });
        await this.d.audit.record("access_token.revoked", {
          clientId: client.id,
          sessionId: typeof claims.sid === "string" ? claims.sid : null,
          userId: claims.sid ? claims.sub : null,
          details: { jti: claims.jti },
        });
        return;
      }
    }
  }

  /** RFC 7662 §2.2: `active` plus the token's members; `{active:false}` tells nothing else. */
  async introspect(client: ClientRecord, token: string, hint: TokenTypeHint): Promise<Record<string, unknown>> {
    const inactive = { active: false };
    const order: Array<"refresh" | "access"> = hint === "refresh_token" ? ["refresh", "access"] : ["access", "refresh"];
    for (const kind of order) {
      if (kind === "refresh" && looksLikeRefreshToken(token)) {
        const lookup = await this.d.families.lookup(token);
        if (!lookup) continue;
        // Refresh tokens are the client's own business: other clients learn nothing (§2.2).
        if (lookup.session.clientId !== client.id || !this.d.families.isActive(lookup)) return inactive;
        return {
          active: true,
          scope: lookup.session.scope,
          client_id: lookup.session.clientId,
          sub: lookup.session.userId,
          iat: epochSeconds(lookup.token.createdAt),
          exp: epochSeconds(lookup.token.expiresAt),
          iss: this.d.issuer,
          sid: lookup.session.id,
        };
      }
      if (kind === "access") {
        const claims = await inspectAccessToken(this.d.keys, this.d.clock, this.d.issuer, token);
        if (!claims) continue;
        if (!mayIntrospect(client, claims)) return inactive;
        if (claims.jti && (await this.d.denied.has(claims.jti))) return inactive;
        // The client the token was issued to, disabled since: its tokens are no longer good.
        const issuedTo = typeof claims.client_id === "string" ? await this.d.clients.find(claims.client_id) : null;
        if (!issuedTo || issuedTo.disabledAt !== null) return inactive;
        if (typeof claims.sid === "string") {
          const session = await this.d.sessions.findSession(claims.sid);
          if (!session || session.revokedAt !== null) return inactive;
          // A user disabled since (disabling revokes the sessions too; this also covers the race).
          const user = typeof claims.sub === "string" ? await this.d.users.findById(claims.sub) : null;
          if (!user || user.disabledAt !== null) return inactive;
        }
        const { client_id, scope, sub, aud, iss, exp, iat, jti, sid } = claims;
        const roles = (claims as { roles?: unknown }).roles;
        return {
          active: true,
          token_type: "Bearer",
          scope,
          client_id,
          sub,
          aud,
          iss,
          exp,
          iat,
          jti,
          ...(sid ? { sid } : {}),
          ...(Array.isArray(roles) ? { roles } : {}),
        };
      }
    }
    return inactive;
  }

  async pruneDenyList(): Promise<number> {
    return this.d.denied.prune(this.d.clock.now());
  }
}
