// The issuer's key set: fetched from jwks_uri and kept no longer than the issuer's response allows.
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
import { createLocalJWKSet, errors, type CryptoKey, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type RemoteJWKSet } from "jose";
import { deltaSeconds, discard, isTimeout, MAX_DELTA_SECONDS, parseCacheControl, type FetchLike } from "./http.ts";

/** Header parameters that carry or point to a key: a verifier must never take a key from a JWS. */
export const EMBEDDED_KEY_PARAMS = ["jwk", "jku", "x5u", "x5c"] as const;

/** Used when the JWKS response carries no freshness information at all (see above). */
const DEFAULT_JWKS_LIFETIME_SECONDS = 60;
/** RFC 5861 §4: the "errors" a stale response may stand in for. */
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);

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

export interface KeySetCacheOptions {
  url: string;
  fetch: FetchLike;
  cacheMaxAge: number;
  cooldownDuration: number;
  timeoutDuration: number;
}


export function createKeySetCache(o: KeySetCacheOptions): RemoteJWKSet {
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
      await discard(res);
      const fresh = cacheHeaders(res.headers);
      const merged: CacheHeaders = { ...previous.headers };
      for (const name of Object.keys(fresh) as (keyof CacheHeaders)[]) if (fresh[name] !== null) merged[name] = fresh[name];
      return entry(previous.keys, merged, sentAt);
    }
    if (res.status !== 200) {
      await discard(res);
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

