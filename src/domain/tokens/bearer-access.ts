// The issuer's own Bearer-protected resources (/account, /admin/v1) judge a presented access
// token as any resource server must (RFC 6750, RFC 9068 §4) and as introspection judges it:
// signature with the key ring (each key's own algorithm), iss, typ, exp, the resource's own
// audience, and still live (token-liveness.ts). What the caller may then do is theirs to decide.
import type { Clock } from "../clock.ts";
import { OAuthError } from "../errors.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import { inspectAccessToken } from "./access-token.ts";
import { isAccessTokenLive, type TokenLivenessDeps } from "./token-liveness.ts";

/** RFC 6750 §3: 401 with a Bearer challenge; `invalid_token` once a token was presented. */
export class InvalidToken extends OAuthError {
  constructor(description: string, presented = true) {
    // §3.1: a request without authentication information gets a challenge with no error code.
    super("invalid_token", 401, description, {
      "www-authenticate": presented ? `Bearer error="invalid_token", error_description="${quoted(description)}"` : "Bearer",
    });
  }
}

/** RFC 6750 §3.1: the token is good but does not carry the scope this request needs -> 403. */
export class InsufficientScope extends OAuthError {
  constructor(scope: string, description: string) {
    super("insufficient_scope", 403, description, {
      "www-authenticate": `Bearer error="insufficient_scope", error_description="${quoted(description)}", scope="${quoted(scope)}"`,
    });
  }
}

const quoted = (s: string) => s.replace(/["\\]/g, "");

export interface BearerClaims {
  sub: string;
  client_id?: unknown;
  sid?: unknown;
  scope?: unknown;
  aud?: unknown;
  jti?: unknown;
  [claim: string]: unknown;
}

export interface BearerAccessDeps {
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  liveness: TokenLivenessDeps;
}

/** The claims of a live access token meant for `audience`, or InvalidToken (401). */
export async function authenticateBearer(deps: BearerAccessDeps, token: string | null, audience: string): Promise<BearerClaims> {
  if (token === null) throw new InvalidToken("An access token is required (Authorization: Bearer).", false);
  const claims = await inspectAccessToken(deps.keys, deps.clock, deps.issuer, token);
  if (!claims || typeof claims.sub !== "string") throw new InvalidToken("The access token is invalid or expired.");
  // RFC 9068 §4: a token meant for another resource is not for this one.
  const aud = typeof claims.aud === "string" ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  if (!aud.includes(audience)) throw new InvalidToken("The access token is not meant for this resource.");
  if (!(await isAccessTokenLive(deps.liveness, claims))) throw new InvalidToken("The access token has been revoked.");
  return claims as BearerClaims;
}

/** The scope tokens a token carries (RFC 9068 §2.2.3: space-separated `scope`). */
export const scopesOf = (claims: { scope?: unknown }): string[] => (typeof claims.scope === "string" ? claims.scope.split(" ").filter(Boolean) : []);
