// Access tokens: JWTs in the RFC 9068 profile (typ "at+jwt"), signed with the active key.
// Nothing secret goes in them: they are readable by anyone who holds one.
import { createLocalJWKSet, jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { Clock } from "../clock.ts";
import { epochSeconds } from "../clock.ts";
import { newId } from "../ids.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import { statusClaim } from "./status-list.ts";

export interface AccessTokenRequest {
  /** user id, or client id for client_credentials */
  subject: string;
  clientId: string;
  scope: string;
  /** session id; absent for client_credentials */
  sessionId?: string;
  audience?: string | string[];
  roles?: string[];
  /** seconds; defaults to the configured ACCESS_TOKEN_TTL */
  ttl?: number | null;
  /**
   * token status list index (status-list.ts): the session's for user tokens, a fresh one for
   * client_credentials; null or absent: no `status` claim (a session from before the status list)
   */
  statusIdx?: number | null;
}

export interface IssuedAccessToken {
  token: string;
  expiresIn: number;
  jti: string;
}

export class AccessTokenIssuer {
  constructor(
    private readonly keys: KeyRing,
    private readonly clock: Clock,
    private readonly settings: { issuer: string; audience: string; ttl: number },
  ) {}

  async issue(req: AccessTokenRequest): Promise<IssuedAccessToken> {
    const key = this.keys.signer();
    const iat = epochSeconds(this.clock.now());
    const expiresIn = req.ttl ?? this.settings.ttl;
    const jti = newId();
    const claims: Record<string, unknown> = { client_id: req.clientId, scope: req.scope };
    if (req.sessionId) claims.sid = req.sessionId;
    if (req.roles && req.roles.length > 0) claims.roles = req.roles;
    // draft-ietf-oauth-status-list-20 §6.2: where a service finds whether the token is revoked.
    if (typeof req.statusIdx === "number") claims.status = statusClaim(this.settings.issuer, req.statusIdx);
    const token = await new SignJWT(claims)
      // RFC 9068 §2.1: typ "at+jwt" so an access token cannot be confused with an ID token.
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
      .setIssuer(this.settings.issuer)
      .setSubject(req.subject)
      .setAudience(req.audience ?? this.settings.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + expiresIn)
      .setJti(jti)
      .sign(key.privateKey);
    return { token, expiresIn, jti };
  }
}

/**
 * Reads back an access token this issuer signed (for revocation and introspection): signature
 * against the published keys with each key's own algorithm (never the header's choice), iss and
 * typ pinned, exp checked against the issuer's clock. Returns null for anything else.
 */
export async function inspectAccessToken(
  keys: KeyRing,
  clock: Clock,
  issuer: string,
  token: string,
  /** allowExpired: any exp; clockTolerance: seconds past exp still accepted */
  options: { allowExpired?: boolean; clockTolerance?: number } = {},
): Promise<(JWTPayload & { client_id?: string; scope?: string; sid?: string; jti?: string }) | null> {
  if (token.length > 8192 || token.split(".").length !== 3) return null;
  const { keySet, algorithms } = localKeySet(keys);
  if (algorithms.length === 0) return null;
  try {
    const { payload } = await jwtVerify(token, keySet, {
      algorithms,
      issuer,
      typ: "at+jwt",
      currentDate: options.allowExpired ? new Date(0) : clock.now(),
      clockTolerance: options.clockTolerance ?? 0,
      requiredClaims: ["jti", "exp", "sub"],
    });
    return payload;
  } catch {
    return null;
  }
}

type LocalKeySet = { keySet: ReturnType<typeof createLocalJWKSet>; algorithms: string[] };
const keySets = new WeakMap<object, LocalKeySet>();

/** The published keys as a jose key set, built once per key set (the ring swaps the object on change). */
function localKeySet(keys: KeyRing): LocalKeySet {
  const published = keys.jwks;
  let cached = keySets.get(published);
  if (!cached) {
    const jwks = JSON.parse(published.body.toString("utf8")) as Parameters<typeof createLocalJWKSet>[0];
    const algorithms = [...new Set(jwks.keys.map((k) => k.alg).filter((a): a is string => typeof a === "string"))];
    cached = { keySet: createLocalJWKSet(jwks), algorithms };
    keySets.set(published, cached);
  }
  return cached;
}
