// The verifier kit: what a Node microservice imports to check Tessera access tokens locally.
//
//   import { createVerifier } from "tessera/verifier";
//   const verifier = createVerifier({ issuer: "https://auth.example.com", audience: "api" });
//   const claims = await verifier.verify(token); // throws TokenVerificationError with a stable code
//
// Everything that matters is pinned by the service, never read from the token: the algorithms
// (asymmetric only), the issuer, the audience, the token type (RFC 9068 "at+jwt"), and the key
// source (the issuer's JWKS; keys embedded in or pointed to by the token header are refused).
// Self-contained on purpose: it imports nothing from the issuer, only jose.
//
// The key set is kept exactly as long as the issuer's JWKS response allows (RFC 9111), because
// that is what `keys revoke` promises: a revoked key leaves every verifier that honours the
// JWKS Cache-Control within KEYS_RELOAD_INTERVAL + JWKS_MAX_AGE. jose's createRemoteJWKSet
// keeps it a fixed 10 minutes whatever the issuer says, so the kit fetches and caches the JWKS
// itself, on top of jose's createLocalJWKSet. See "The key set" below.
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
  type RemoteJWKSet,
} from "jose";

// ---------------------------------------------------------------------------------------------
// Errors

export type TokenErrorCode =
  | "malformed"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "wrong_issuer"
  | "wrong_audience"
  | "wrong_type"
  | "alg_not_allowed"
  | "unknown_key"
  | "embedded_key"
  | "missing_claim"
  | "jwks_unavailable";

/**
 * Why a token was refused. `code` is stable (switch on it); `message` is a short, fixed,
 * human-readable sentence that never contains the token, a stack trace, a double quote or a
 * backslash, so it is safe to send back as an `error_description` (RFC 6750 §3 charset). `cause` may hold the underlying error for server logs.
 */
export class TokenVerificationError extends Error {
  override readonly name = "TokenVerificationError";
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const fail = (code: TokenErrorCode, message: string, cause?: unknown): TokenVerificationError =>
  new TokenVerificationError(code, message, cause === undefined ? undefined : { cause });

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
}

export const hasScope = (claims: Pick<AccessTokenClaims, "scopes">, scope: string): boolean =>
  claims.scopes.includes(scope);

export const hasRole = (claims: Pick<AccessTokenClaims, "roles">, role: string): boolean => claims.roles.includes(role);

// ---------------------------------------------------------------------------------------------
// Verifier

/** A fetch-compatible function (the global `fetch` is one). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

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
  /** fetch implementation for the JWKS (proxies, tests), default the global fetch */
  fetch?: FetchLike;
  /**
   * time source for exp / nbf / iat checks (tests), default the system clock. The key set's
   * lifetime is measured on the monotonic clock, not this one.
   */
  clock?: { now(): Date };
  /** longest token accepted, in characters, default 16384 */
  maxTokenLength?: number;
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

/** Header parameters that carry or point to a key: a verifier must never take a key from the token. */
const EMBEDDED_KEY_PARAMS = ["jwk", "jku", "x5u", "x5c"] as const;

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

  const jwks = createKeySetCache({
    url: jwksUri.href,
    fetch: options.fetch ?? ((url, init) => fetch(url, init)),
    cacheMaxAge: duration("cacheMaxAge", options.cacheMaxAge, Number.POSITIVE_INFINITY),
    cooldownDuration: duration("cooldownDuration", options.cooldownDuration, 30_000),
    timeoutDuration: duration("timeoutDuration", options.timeoutDuration, 5000, true),
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
    return claims;
  }

  return { verify, jwks };
}

// ---------------------------------------------------------------------------------------------
// The key set: fetched from jwks_uri and kept no longer than the issuer's response allows.
//
// The verifier is a private cache of one resource (RFC 9111 §1):
// - `Cache-Control: max-age=N` (§5.2.2.1): the set is used for N seconds, minus the response's
//   `Age` (§4.2.3: a CDN in front of the issuer may already have held it), counted from when the
//   request was sent. `cacheMaxAge` may shorten that, never lengthen it.
// - `no-store` (§5.2.2.5): never kept; every verification fetches. `no-cache` (§5.2.2.4) and
//   `max-age=0`: kept, but revalidated (If-None-Match, a 304 keeps the keys) before every use.
// - no max-age: `Expires` minus `Date` (§4.2.1; an invalid Expires means already expired, §5.3);
//   neither: 60 s. §4.2.2 would allow a heuristic lifetime; a short one is the safe choice for
//   keys, since the issuer publishes new keys ahead of use (JWKS_MAX_AGE + margin) anyway.
// - a repeated or malformed max-age makes the response stale at once (§4.2.1, §1.2.2).
// - `s-maxage` and `proxy-revalidate` are for shared caches only and are ignored (§5.2.2.10, .8).
// Once the lifetime is over, the set is fetched again before any token is accepted. If that
// fetch fails, tokens are refused with jwks_unavailable (a 503 in the Fastify plugin), unless
// the issuer sent `stale-if-error=N` (RFC 5861 §4): then, for N seconds past the lifetime and
// only for a network error, a timeout or a 500/502/503/504, the last set is still used and the
// fetch is retried at most once per cooldown. `must-revalidate` and `no-cache` forbid that
// (RFC 9111 §4.2.4). A revoked key is thus never trusted longer than the issuer said it may be.
// An unknown kid causes a fetch too, at most once per cooldown after a successful fetch.

/** Used when the JWKS response carries no freshness information at all (see above). */
const DEFAULT_JWKS_LIFETIME_SECONDS = 60;
/** RFC 9111 §1.2.2: larger delta-seconds are taken as 2^31. */
const MAX_DELTA_SECONDS = 2_147_483_648;
/** RFC 5861 §4: the "errors" a stale response may stand in for. */
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);

function duration(option: string, value: number | undefined, fallback: number, finite = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (finite && !Number.isSafeInteger(value))) {
    throw new TypeError(`createVerifier: ${option} must be a non-negative ${finite ? "integer" : "number"} of milliseconds`);
  }
  return value;
}

/** RFC 9111 §5.2: directive names (lower-cased) -> their arguments, unquoted. */
function parseCacheControl(value: string | null): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  if (!value) return directives;
  const directive = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+.^_`|~0-9A-Za-z-]*)))?\s*(?:,|$)/y;
  let i = 0;
  while (i < value.length) {
    directive.lastIndex = i;
    const m = directive.exec(value);
    if (m) {
      const name = m[1]!.toLowerCase();
      const arg = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "");
      directives.set(name, [...(directives.get(name) ?? []), arg]);
      i = directive.lastIndex;
    } else {
      // An empty list element or something that is not a directive: skip to the next element.
      const comma = value.indexOf(",", i);
      i = comma === -1 ? value.length : comma + 1;
    }
  }
  return directives;
}

/** A delta-seconds argument; a repeated or malformed one counts as 0 (stale, RFC 9111 §4.2.1). */
function deltaSeconds(args: string[] | undefined): number | undefined {
  if (args === undefined) return undefined;
  if (new Set(args).size !== 1 || !/^\d+$/.test(args[0]!)) return 0;
  return Math.min(Number(args[0]), MAX_DELTA_SECONDS);
}

/** The response header fields the cache keeps (a 304 updates them: RFC 9111 §4.3.4). */
interface CacheHeaders {
  cacheControl: string | null;
  expires: string | null;
  date: string | null;
  age: string | null;
  etag: string | null;
}

const cacheHeaders = (h: Headers): CacheHeaders => ({
  cacheControl: h.get("cache-control"),
  expires: h.get("expires"),
  date: h.get("date"),
  age: h.get("age"),
  etag: h.get("etag"),
});

interface CachePolicy {
  store: boolean;
  /** milliseconds after the request was sent during which the set may be used */
  freshFor: number;
  /** milliseconds after the request was sent during which it may stand in for a failed fetch */
  usableOnErrorFor: number;
}

function cachePolicy(h: CacheHeaders, cacheMaxAge: number): CachePolicy {
  const cc = parseCacheControl(h.cacheControl);
  if (cc.has("no-store")) return { store: false, freshFor: 0, usableOnErrorFor: 0 };
  let lifetime: number;
  const maxAge = deltaSeconds(cc.get("max-age"));
  if (cc.has("no-cache")) lifetime = 0;
  else if (maxAge !== undefined) lifetime = maxAge;
  else if (h.expires !== null) {
    const expires = Date.parse(h.expires);
    const date = h.date === null ? Number.NaN : Date.parse(h.date);
    lifetime = Number.isNaN(expires) ? 0 : Math.max(0, (expires - (Number.isNaN(date) ? Date.now() : date)) / 1000);
  } else lifetime = DEFAULT_JWKS_LIFETIME_SECONDS;
  const age = h.age !== null && /^\d+$/.test(h.age.trim()) ? Math.min(Number(h.age.trim()), MAX_DELTA_SECONDS) : 0;
  const freshFor = Math.min((lifetime - age) * 1000, cacheMaxAge);
  const staleIfError = cc.has("no-cache") || cc.has("must-revalidate") ? 0 : (deltaSeconds(cc.get("stale-if-error")) ?? 0);
  return { store: true, freshFor, usableOnErrorFor: freshFor + staleIfError * 1000 };
}

/** The key set could not be fetched; `transient` errors are those stale-if-error covers. */
class KeySetUnavailable extends Error {
  override readonly name = "KeySetUnavailable";
  constructor(
    message: string,
    readonly transient: boolean,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

interface CachedKeySet {
  keys: LocalKeySet;
  headers: CacheHeaders;
  store: boolean;
  /** monotonic milliseconds */
  freshUntil: number;
  usableOnErrorUntil: number;
}

interface KeySetCacheOptions {
  url: string;
  fetch: FetchLike;
  cacheMaxAge: number;
  cooldownDuration: number;
  timeoutDuration: number;
}

const isTimeout = (err: unknown) => err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");

function createKeySetCache(o: KeySetCacheOptions): RemoteJWKSet {
  // Monotonic: a wall-clock step back must not stretch a key set's lifetime.
  const now = () => performance.now();
  let cached: CachedKeySet | undefined;
  let inflight: Promise<CachedKeySet> | undefined;
  let lastSuccess = Number.NEGATIVE_INFINITY;
  let lastTransientFailure = Number.NEGATIVE_INFINITY;

  const entry = (keys: LocalKeySet, headers: CacheHeaders, sentAt: number): CachedKeySet => {
    const policy = cachePolicy(headers, o.cacheMaxAge);
    return { keys, headers, store: policy.store, freshUntil: sentAt + policy.freshFor, usableOnErrorUntil: sentAt + policy.usableOnErrorFor };
  };

  async function fetchKeySet(previous: CachedKeySet | undefined): Promise<CachedKeySet> {
    const sentAt = now();
    const headers = new Headers({ accept: "application/jwk-set+json, application/json" });
    // RFC 9110 §13.1.2: revalidate what we hold; a 304 costs no key parsing.
    if (previous?.headers.etag) headers.set("if-none-match", previous.headers.etag);
    let res: Response;
    try {
      // No redirects: the keys come from jwks_uri, not from wherever it points.
      res = await o.fetch(o.url, { method: "GET", headers, redirect: "manual", signal: AbortSignal.timeout(o.timeoutDuration) });
    } catch (err) {
      throw new KeySetUnavailable("the issuer's key set could not be reached", true, err);
    }
    if (res.status === 304 && previous) {
      await res.body?.cancel().catch(() => undefined);
      const fresh = cacheHeaders(res.headers);
      const merged: CacheHeaders = { ...previous.headers };
      for (const name of Object.keys(fresh) as (keyof CacheHeaders)[]) if (fresh[name] !== null) merged[name] = fresh[name];
      return entry(previous.keys, merged, sentAt);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new KeySetUnavailable(`the issuer's key set answered ${res.status}`, TRANSIENT_STATUS.has(res.status));
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      throw new KeySetUnavailable("the issuer's key set is not JSON", isTimeout(err), err);
    }
    let keys: LocalKeySet;
    try {
      keys = createLocalJWKSet(json as JSONWebKeySet);
    } catch (err) {
      throw new KeySetUnavailable("the issuer's key set is not a JWK Set", false, err);
    }
    return entry(keys, cacheHeaders(res.headers), sentAt);
  }

  /** One fetch at a time: concurrent verifications wait for the same response. */
  function refresh(): Promise<CachedKeySet> {
    inflight ??= fetchKeySet(cached)
      .then(
        (got) => {
          lastSuccess = now();
          cached = got.store ? got : undefined;
          return got;
        },
        (err: unknown) => {
          if (err instanceof KeySetUnavailable && err.transient) lastTransientFailure = now();
          throw err;
        },
      )
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  }

  /** A key set that may be used right now: the cached one while fresh, else a fetched one. */
  async function usable(): Promise<CachedKeySet> {
    const held = cached;
    if (held && now() < held.freshUntil) return held;
    const standIn = () => (held && now() < held.usableOnErrorUntil ? held : undefined);
    // The issuer allowed stale-if-error and was just found down: retry once per cooldown, not
    // on every request (each would wait for the timeout).
    if (standIn() && now() - lastTransientFailure < o.cooldownDuration) return held!;
    try {
      return await refresh();
    } catch (err) {
      const stale = err instanceof KeySetUnavailable && err.transient ? standIn() : undefined;
      if (stale) return stale;
      throw err;
    }
  }

  const resolve = async (protectedHeader?: JWSHeaderParameters, token?: FlattenedJWSInput): Promise<CryptoKey> => {
    const set = await usable();
    try {
      return await set.keys(protectedHeader, token);
    } catch (err) {
      // A kid we do not know may be a key published after our fetch: fetch again, but at most
      // once per cooldown, so tokens with made-up kids cannot make us hammer the issuer.
      if (err instanceof errors.JWKSNoMatchingKey && now() - lastSuccess >= o.cooldownDuration) {
        return (await refresh()).keys(protectedHeader, token);
      }
      throw err;
    }
  };

  return Object.defineProperties(resolve, {
    coolingDown: { get: () => now() - lastSuccess < o.cooldownDuration, enumerable: true },
    fresh: { get: () => cached !== undefined && now() < cached.freshUntil, enumerable: true },
    reloading: { get: () => inflight !== undefined, enumerable: true },
    reload: {
      value: async () => {
        await refresh();
      },
      enumerable: true,
    },
    jwks: { value: () => cached?.keys.jwks(), enumerable: true },
  }) as RemoteJWKSet;
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
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
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
