// The verifier kit: what a Node microservice imports to check Tessera access tokens locally.
//
//   import { createVerifier } from "@tessera/verifier";
//   const verifier = createVerifier({ issuer: "https://auth.example.com", audience: "api" });
//   const claims = await verifier.verify(token); // throws TokenVerificationError with a stable code
//
// Everything that matters is pinned by the service, never read from the token: the algorithms
// (asymmetric only), the issuer, the audience, the token type (RFC 9068 "at+jwt"), and the key
// source (the issuer's JWKS; keys embedded in or pointed to by the token header are refused).
// Self-contained on purpose: it imports nothing from the issuer, only jose and node:zlib.
//
// The key set is kept exactly as long as the issuer's JWKS response allows (RFC 9111), because
// that is what `keys revoke` promises: a revoked key leaves every verifier that honours the
// JWKS Cache-Control within KEYS_RELOAD_INTERVAL + JWKS_MAX_AGE. jose's createRemoteJWKSet
// keeps it a fixed 10 minutes whatever the issuer says, so the kit fetches and caches the JWKS
// itself, on top of jose's createLocalJWKSet (key-set.ts).
//
// A token that carries a `status` claim (draft-ietf-oauth-status-list) is also checked against
// its issuer's status list, fetched once per ttl and verified with the same keys (status-list.ts):
// a revoked token is refused within the list's ttl, with no call to the issuer per request.
import {
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
  type RemoteJWKSet,
} from "jose";
import { fail, TokenVerificationError } from "./errors.ts";
import { duration, globalFetch, type FetchLike } from "./http.ts";
import { createKeySetCache, EMBEDDED_KEY_PARAMS } from "./key-set.ts";
import { createStatusCheck, type StatusCheck, type StatusListOptions, type StatusListReference } from "./status-list.ts";

export { TokenVerificationError, UNAVAILABLE_CODES, type TokenErrorCode } from "./errors.ts";
export type { FetchLike } from "./http.ts";
export type { StatusListOptions, StatusListReference, StatusListWarning } from "./status-list.ts";

// ---------------------------------------------------------------------------------------------
// Claims

/** The claims of a verified Tessera access token (RFC 9068 profile). */
export interface AccessTokenClaims {
  iss: string;
  /** the user id, or the client id for client_credentials tokens */
  sub: string;
  aud: string | string[];
  /** seconds since the epoch */
  exp: number;
  /** seconds since the epoch */
  iat: number;
  jti: string;
  client_id: string;
  /** space-separated, as in the token ("" when the token has none) */
  scope: string;
  /** `scope` split on spaces */
  scopes: string[];
  /** the session (refresh family) id; absent for client_credentials tokens */
  sid?: string;
  /** the user's roles ([] when the token carries none) */
  roles: string[];
  /** the `status` claim as the token carries it (Token Status List), checked unless `statusList: false` */
  status?: { status_list: StatusListReference };
}

export const hasScope = (claims: Pick<AccessTokenClaims, "scopes">, scope: string): boolean =>
  claims.scopes.includes(scope);

export const hasRole = (claims: Pick<AccessTokenClaims, "roles">, role: string): boolean => claims.roles.includes(role);

// ---------------------------------------------------------------------------------------------
// Verifier

export interface VerifierOptions {
  /** the issuer's identifier, compared exactly with `iss` (the issuer's ISSUER setting) */
  issuer: string;
  /** accepted audience(s): the token's `aud` must contain one of them (ACCESS_TOKEN_AUDIENCE) */
  audience: string | string[];
  /**
   * Accepted signature algorithms, default ["ES256"] (the issuer's SIGNING_ALG). Asymmetric
   * algorithms only: "none" and HS* are refused here, whatever is passed.
   */
  algorithms?: string[];
  /** default `${issuer}/.well-known/jwks.json` */
  jwksUri?: string | URL;
  /** seconds of clock difference tolerated on exp / nbf / iat, default 30 */
  clockTolerance?: number;
  /**
   * Milliseconds: an upper limit on how long a fetched key set is used. It can only shorten what
   * the JWKS response's `Cache-Control` allows (its max-age, or 60 s when the response carries no
   * freshness information), never lengthen it. Default: no further limit.
   */
  cacheMaxAge?: number;
  /**
   * Milliseconds after a successful fetch before an unknown kid may cause another fetch; also the
   * pause between retries while the issuer is down and its `stale-if-error` lets the last key set
   * stand in. Default 30000.
   */
  cooldownDuration?: number;
  /** milliseconds a JWKS fetch may take, default 5000 */
  timeoutDuration?: number;
  /** fetch implementation for the JWKS and the status lists (proxies, tests), default the global fetch */
  fetch?: FetchLike;
  /**
   * time source for exp / nbf / iat checks (tests), default the system clock. The key set's
   * lifetime is measured on the monotonic clock, not this one.
   */
  clock?: { now(): Date };
  /** longest token accepted, in characters, default 16384 */
  maxTokenLength?: number;
  /**
   * The Token Status List check, done for every token that carries a `status` claim: options,
   * or false to skip it (revoked tokens are then accepted until they expire). Default: on, with
   * the defaults of StatusListOptions.
   */
  statusList?: StatusListOptions | false;
}

export interface Verifier {
  /** Resolves to the token's claims, or rejects with a TokenVerificationError. */
  verify(token: string): Promise<AccessTokenClaims>;
  /**
   * The issuer's key set as this verifier caches it, in jose's RemoteJWKSet shape: `reload()`
   * forces a fetch, `fresh` says whether the cached set is within the lifetime its response
   * allowed, `jwks()` returns a copy of it.
   */
  readonly jwks: RemoteJWKSet;
}

const ASYMMETRIC_ALGS = new Set([
  "ES256",
  "ES384",
  "ES512",
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "EdDSA",
  "Ed25519",
]);


const B64URL_SEGMENT = /^[A-Za-z0-9_-]+$/;
const B64URL_OR_EMPTY = /^[A-Za-z0-9_-]*$/;

/** RFC 7515 §4.1.9 / RFC 9068 §4: "at+jwt" or "application/at+jwt", case-insensitively. */
const isAccessTokenTyp = (typ: unknown): boolean =>
  typeof typ === "string" && /^(application\/)?at\+jwt$/i.test(typ);

function checkAlgorithms(algorithms: readonly string[]): string[] {
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new TypeError("createVerifier: algorithms must be a non-empty array");
  }
  for (const alg of algorithms) {
    if (typeof alg !== "string" || alg.toLowerCase() === "none" || /^HS/i.test(alg)) {
      throw new TypeError(
        `createVerifier: algorithm ${JSON.stringify(alg)} is refused: access tokens are verified with the issuer's public keys only`,
      );
    }
    if (!ASYMMETRIC_ALGS.has(alg)) {
      throw new TypeError(`createVerifier: unsupported algorithm ${JSON.stringify(alg)}`);
    }
  }
  return [...new Set(algorithms)];
}

function checkAudience(audience: string | string[]): string | string[] {
  const list = Array.isArray(audience) ? audience : [audience];
  if (list.length === 0 || list.some((a) => typeof a !== "string" || a === "")) {
    throw new TypeError("createVerifier: audience must be a non-empty string or array of non-empty strings");
  }
  return Array.isArray(audience) ? [...audience] : audience;
}

export function createVerifier(options: VerifierOptions): Verifier {
  const { issuer } = options;
  if (typeof issuer !== "string" || issuer === "") throw new TypeError("createVerifier: issuer is required");
  const audience = checkAudience(options.audience);
  const algorithms = checkAlgorithms(options.algorithms ?? ["ES256"]);
  const allowed = new Set(algorithms);
  const clockTolerance = options.clockTolerance ?? 30;
  if (!Number.isFinite(clockTolerance) || clockTolerance < 0) {
    throw new TypeError("createVerifier: clockTolerance must be a non-negative number of seconds");
  }
  const maxTokenLength = options.maxTokenLength ?? 16_384;
  const jwksUri = new URL(options.jwksUri ?? `${issuer.replace(/\/+$/, "")}/.well-known/jwks.json`);
  const clock = options.clock;

  const doFetch = options.fetch ?? globalFetch;
  const jwks = createKeySetCache({
    url: jwksUri.href,
    fetch: doFetch,
    cacheMaxAge: duration("createVerifier", "cacheMaxAge", options.cacheMaxAge, Number.POSITIVE_INFINITY),
    cooldownDuration: duration("createVerifier", "cooldownDuration", options.cooldownDuration, 30_000),
    timeoutDuration: duration("createVerifier", "timeoutDuration", options.timeoutDuration, 5000, true),
  });

  // The key comes from the issuer's JWKS and nowhere else. Failures to get the key set are
  // told apart from "no such key" so a service can answer 503 rather than blame the token.
  const getKey: JWTVerifyGetKey = async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) {
        throw fail("unknown_key", "the token's signing key is not in the issuer's key set");
      }
      if (err instanceof errors.JWKSMultipleMatchingKeys) {
        throw fail("unknown_key", "the token's kid matches more than one key in the issuer's key set");
      }
      throw fail("jwks_unavailable", "the issuer's key set could not be fetched", err);
    }
  };

  // Status lists are signed with the same keys and verified with the same pins.
  const checkStatus: StatusCheck | undefined =
    options.statusList === false
      ? undefined
      : createStatusCheck(options.statusList ?? {}, { issuer, algorithms, clockTolerance, getKey, clock, fetch: doFetch });

  async function verify(token: string): Promise<AccessTokenClaims> {
    // 1. Shape, before any work: three base64url segments (the signature may be empty only so
    //    that an "alg": "none" token is reported as such below), bounded length.
    if (typeof token !== "string" || token.length === 0) throw fail("malformed", "no token");
    if (token.length > maxTokenLength) throw fail("malformed", "the token is too long");
    const parts = token.split(".");
    if (
      parts.length !== 3 ||
      !B64URL_SEGMENT.test(parts[0]!) ||
      !B64URL_SEGMENT.test(parts[1]!) ||
      !B64URL_OR_EMPTY.test(parts[2]!)
    ) {
      throw fail("malformed", "the token is not a compact JWS");
    }
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch (err) {
      throw fail("malformed", "the token header is not valid JSON", err);
    }

    // 2. The header may not choose the key, the algorithm or the type.
    for (const param of EMBEDDED_KEY_PARAMS) {
      if (Object.hasOwn(header, param)) {
        throw fail("embedded_key", `the token header carries ${param}; keys are only taken from the issuer's JWKS`);
      }
    }
    if (typeof header.alg !== "string" || !allowed.has(header.alg)) {
      throw fail("alg_not_allowed", "the token's algorithm is not allowed");
    }
    if (!isAccessTokenTyp(header.typ)) throw fail("wrong_type", "the token is not an access token (typ must be at+jwt)");
    if (typeof header.kid !== "string" || header.kid === "") throw fail("malformed", "the token header has no kid");

    // 3. Signature against the JWKS, then the claims, everything pinned.
    const now = clock?.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        issuer,
        audience,
        typ: "at+jwt",
        clockTolerance,
        requiredClaims: ["exp", "iat", "sub", "jti", "client_id"],
        ...(now && { currentDate: now }),
      }));
    } catch (err) {
      throw fromJose(err);
    }
    const claims = toClaims(payload);
    // jose checks iat only with maxTokenAge; a token issued in the future is not valid yet.
    const nowSeconds = Math.floor((now ?? new Date()).getTime() / 1000);
    if (claims.iat > nowSeconds + clockTolerance) throw fail("not_yet_valid", "the token was issued in the future");
    // draft-ietf-oauth-status-list §8.3: the status only once the token itself is valid.
    if (checkStatus && payload.status !== undefined) await checkStatus(payload.status);
    return claims;
  }

  return { verify, jwks };
}


/** jose's error classes -> stable codes, with our own fixed messages. */
function fromJose(err: unknown): TokenVerificationError {
  if (err instanceof TokenVerificationError) return err;
  if (err instanceof errors.JWTExpired) return fail("expired", "the token has expired", err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === "missing") return fail("missing_claim", `the token has no ${err.claim} claim`, err);
    switch (err.claim) {
      case "iss":
        return fail("wrong_issuer", "the token was not issued by the expected issuer", err);
      case "aud":
        return fail("wrong_audience", "the token is not meant for this audience", err);
      case "typ":
        return fail("wrong_type", "the token is not an access token (typ must be at+jwt)", err);
      case "nbf":
      case "iat":
        return fail("not_yet_valid", "the token is not valid yet", err);
      default:
        return fail("malformed", `the token's ${err.claim} claim is invalid`, err);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return fail("bad_signature", "the token signature is invalid", err);
  if (err instanceof errors.JOSEAlgNotAllowed) return fail("alg_not_allowed", "the token's algorithm is not allowed", err);
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return fail("unknown_key", "the token's signing key is not in the issuer's key set", err);
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) {
    return fail("jwks_unavailable", "the issuer's key set could not be fetched", err);
  }
  return fail("malformed", "the token is malformed", err);
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
const nonEmptyString = (v: unknown): v is string => typeof v === "string" && v !== "";

/** Type-check what jose left as unknown; anything off is "malformed" (the signature was good). */
function toClaims(p: JWTPayload): AccessTokenClaims {
  const bad = (claim: string) => fail("malformed", `the token's ${claim} claim has the wrong type`);
  if (!nonEmptyString(p.iss)) throw bad("iss");
  if (!nonEmptyString(p.sub)) throw bad("sub");
  if (!(typeof p.aud === "string" || isStringArray(p.aud))) throw bad("aud");
  if (typeof p.exp !== "number") throw bad("exp");
  if (typeof p.iat !== "number") throw bad("iat");
  if (!nonEmptyString(p.jti)) throw bad("jti");
  if (!nonEmptyString(p.client_id)) throw bad("client_id");
  if (p.scope !== undefined && typeof p.scope !== "string") throw bad("scope");
  if (p.sid !== undefined && !nonEmptyString(p.sid)) throw bad("sid");
  if (p.roles !== undefined && !isStringArray(p.roles)) throw bad("roles");
  const scope = (p.scope as string | undefined) ?? "";
  const claims: AccessTokenClaims = {
    iss: p.iss,
    sub: p.sub,
    aud: Array.isArray(p.aud) ? [...p.aud] : p.aud,
    exp: p.exp,
    iat: p.iat,
    jti: p.jti,
    client_id: p.client_id,
    scope,
    scopes: scope.split(" ").filter(Boolean),
    roles: p.roles === undefined ? [] : [...(p.roles as string[])],
  };
  if (p.sid !== undefined) claims.sid = p.sid as string;
  if (p.status !== undefined) claims.status = p.status as { status_list: StatusListReference };
  return claims;
}

// ---------------------------------------------------------------------------------------------
// Introspection (RFC 7662): for the few routes that must see a revocation at once.

export interface IntrospectorOptions {
  /** the issuer's introspection endpoint, e.g. https://auth.example.com/oauth/introspect */
  introspectionEndpoint: string | URL;
  /** this service's client credentials (a confidential client of the issuer) */
  clientId: string;
  clientSecret: string;
  fetch?: FetchLike;
  /** milliseconds, default 5000 */
  timeoutDuration?: number;
}

/** RFC 7662 §2.2. Only `active` is guaranteed; the rest is present for active tokens. */
export interface IntrospectionResponse {
  active: boolean;
  scope?: string;
  client_id?: string;
  username?: string;
  token_type?: string;
  exp?: number;
  iat?: number;
  nbf?: number;
  sub?: string;
  aud?: string | string[];
  iss?: string;
  jti?: string;
  sid?: string;
  [member: string]: unknown;
}

export interface Introspector {
  introspect(token: string, tokenTypeHint?: "access_token" | "refresh_token"): Promise<IntrospectionResponse>;
}

/** The introspection endpoint could not give an answer (network, status, body). */
export class IntrospectionError extends Error {
  override readonly name = "IntrospectionError";
  readonly code = "introspection_unavailable";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B). */
const formEncode = (value: string): string => new URLSearchParams([["v", value]]).toString().slice(2);

/** RFC 6749 §2.3.1: client_id and secret are form-encoded before they are joined and base64'd. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`, "utf8").toString("base64")}`;
}

export function createIntrospector(options: IntrospectorOptions): Introspector {
  const endpoint = new URL(options.introspectionEndpoint).href;
  if (!options.clientId || !options.clientSecret) throw new TypeError("createIntrospector: clientId and clientSecret are required");
  const authorization = basicAuthorization(options.clientId, options.clientSecret);
  const doFetch: FetchLike = options.fetch ?? globalFetch;
  const timeout = options.timeoutDuration ?? 5000;

  return {
    async introspect(token, tokenTypeHint) {
      const body = new URLSearchParams({ token });
      if (tokenTypeHint) body.set("token_type_hint", tokenTypeHint);
      let res: Response;
      try {
        res = await doFetch(endpoint, {
          method: "POST",
          headers: {
            authorization,
            "content-type": "application/x-www-form-urlencoded",
            accept: "application/json",
          },
          body: body.toString(),
          // Credentials go to this URL only, never to wherever a redirect points.
          redirect: "manual",
          signal: AbortSignal.timeout(timeout),
        });
      } catch (err) {
        throw new IntrospectionError("the introspection endpoint could not be reached", { cause: err });
      }
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new IntrospectionError(`the introspection endpoint answered ${res.status}`);
      }
      let json: unknown;
      try {
        json = await res.json();
      } catch (err) {
        throw new IntrospectionError("the introspection response is not JSON", { cause: err });
      }
      if (typeof json !== "object" || json === null || Array.isArray(json) || typeof (json as { active?: unknown }).active !== "boolean") {
        throw new IntrospectionError('the introspection response has no boolean "active" member');
      }
      return json as IntrospectionResponse;
    },
  };
}
