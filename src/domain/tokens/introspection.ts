// RFC 7662 token introspection: whether a token this issuer handed out is active now, told only
// to a client entitled to know (§2.2, §4).
import type { ClientRecord } from "../clients/client-store.ts";
import type { Clock } from "../clock.ts";
import { epochSeconds } from "../clock.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import type { Sessions } from "../sessions/sessions.ts";
import { inspectAccessToken } from "./access-token.ts";
import { looksLikeRefreshToken } from "./refresh-token.ts";
import type { RevocationStore } from "./revocation-store.ts";
import { isAccessTokenLive } from "./token-liveness.ts";
import { lookupOrder, type TokenTypeHint } from "./token-type-hint.ts";

export interface TokenIntrospectionDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  sessions: Sessions;
  revocations: Pick<RevocationStore, "has">;
  /** the token's client as of now (a disabled client's tokens are inactive) */
  clients: { find(id: string): Promise<ClientRecord | null> };
  /** the token's user as of now (a disabled user's tokens are inactive) */
  users: { findById(id: string): Promise<{ disabledAt: Date | null } | null> };
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

const INACTIVE = Object.freeze({ active: false });

export class TokenIntrospection {
  constructor(private readonly deps: TokenIntrospectionDeps) {}

  /** §2.2: `active` plus the token's members; `{active:false}` tells nothing else. */
  async introspect(client: ClientRecord, token: string, hint: TokenTypeHint): Promise<Record<string, unknown>> {
    const { sessions, keys, clock, issuer, revocations, clients, users } = this.deps;
    for (const kind of lookupOrder(hint, "access")) {
      if (kind === "refresh" && looksLikeRefreshToken(token)) {
        const lookup = await sessions.lookup(token);
        if (!lookup) continue;
        // Refresh tokens are the client's own business: other clients learn nothing (§2.2).
        if (lookup.session.clientId !== client.id || !sessions.isActive(lookup)) return { ...INACTIVE };
        return {
          active: true,
          scope: lookup.session.scope,
          client_id: lookup.session.clientId,
          sub: lookup.session.userId,
          iat: epochSeconds(lookup.token.createdAt),
          exp: epochSeconds(lookup.token.expiresAt),
          iss: issuer,
          sid: lookup.session.id,
        };
      }
      if (kind === "access") {
        const claims = await inspectAccessToken(keys, clock, issuer, token);
        if (!claims) continue;
        if (!mayIntrospect(client, claims)) return { ...INACTIVE };
        if (!(await isAccessTokenLive({ revocations, clients, sessions, users }, claims))) return { ...INACTIVE };
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
    return { ...INACTIVE };
  }
}
