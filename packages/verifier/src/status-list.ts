// Token Status List (draft-ietf-oauth-status-list-20, "TSL"): a revoked access token is refused
// within seconds by a service that verifies locally, without a call to the issuer per request.
//
// A Tessera access token carries `status: { status_list: { idx, uri } }` (§6.2). The issuer
// serves `uri` as a Status List Token (§5.1): a JWS with `typ: statuslist+jwt`, `sub` = uri,
// `iat`, `exp`, `ttl` and `status_list: { bits, lst }`, lst the ZLIB-compressed byte array of
// §4.1. The token's status is the `bits`-wide entry at `idx`; 0 is VALID (§7.1), anything else
// (1 INVALID, 2 SUSPENDED, ...) refuses the token with code `revoked`.
//
// What this module does, per §8.3 ("Validation Rules"), after the token itself was verified:
// 1. the `status` claim is checked (§6.2: `idx` a non-negative integer, `uri` a URI), and the uri
//    must be http(s) on the expected issuer's origin: a token cannot send the service to another
//    host (no SSRF), whatever it says. Otherwise: `status_invalid`.
// 2. the list is fetched with `Accept: application/statuslist+jwt` (§8.1), no redirects followed
//    (§11.4: a 3xx could point anywhere; Tessera does not redirect), bounded in time and size.
// 3. it is verified like an access token: the verifier's JWKS and pinned algorithms, no key taken
//    from the header; `typ` statuslist+jwt, `iss` the expected issuer, `sub` equal to the uri
//    (§8.3 4a), `iat` present and not in the future, `exp` present and not passed (§8.3 4c; the
//    draft only RECOMMENDS exp, Tessera always sends it and a list without one could be replayed
//    forever), both with the verifier's clock tolerance; `ttl`, if present, a positive number.
//    A list that fails any of this is never used: it counts as a failed fetch.
// 4. decompressed with node:zlib (ZLIB, §4.1), the output bounded (`maxListBytes`), so a small
//    "list bomb" cannot exhaust memory; an `idx` past the end refuses the token (§8.3 step 6).
//
// Caching (§8.2, §8.3 4d, §13.7): a list is used for min(its `ttl`, `maxAge`) counted from when
// it was requested, never less than MIN_REFRESH_MS. §8.2: the ttl claim takes precedence over
// HTTP caching, so the response's Cache-Control (a CDN's no-cache or no-store included) counts
// only for a list without a ttl: then its max-age stands in for the ttl (no-cache / no-store: 0,
// so the floor). Then the list is revalidated with If-None-Match (a 304 keeps it). An unknown list
// is fetched at once; concurrent verifications share one fetch (single flight).
//
// No rollback: a held list is never replaced by one with an older `iat`. Behind a load balancer
// an instance that lags, or a cache or a replay, can serve an older list, valid and unexpired,
// in which a revoked token is not revoked yet. Such a response still shows the issuer answering,
// and instances re-sign unchanged lists at different times (an older iat with the same bits is
// normal): it counts as a revalidation of the held list, which is kept with its refresh timer
// reset, as after a 304 (and, like after a 304, never past its own `exp`).
//
// If a refresh fails, the last valid list is still used for `maxStale` past its refresh time and
// never past its `exp`; after that, tokens of that list are refused with `status_unavailable` (a
// 503 in the guards), or, with `failOpen: true`, accepted with a warning. A failed list is
// retried once per refresh interval (1 s for a list never fetched), not on every request.
//
// Cost, per service instance (one verifier): one conditional GET per status list in use every
// min(ttl, maxAge) — with the issuer's default STATUS_LIST_TTL=10 s, 6 requests per minute per
// list, mostly 304s without a body — and never more than 60 per minute per list, whatever the
// issuer or a cache in front of it sends, however many tokens are verified. Never one request
// per verified token.
import { inflateSync } from "node:zlib";
import { decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { fail } from "./errors.ts";
import { deltaSeconds, discard, duration, parseCacheControl, readLimited, type FetchLike } from "./http.ts";
import { EMBEDDED_KEY_PARAMS } from "./key-set.ts";

export interface StatusListOptions {
  /** fetch implementation for the lists (proxies, tests), default the verifier's `fetch` */
  fetch?: FetchLike;
  /** milliseconds: the longest a list is used before it is revalidated, whatever its ttl says; default 300000 */
  maxAge?: number;
  /**
   * milliseconds: how long past its refresh time the last valid list still stands in while the
   * issuer cannot be reached or serves nothing valid (never past the list's `exp`); default 300000
   */
  maxStale?: number;
  /** accept tokens whose status cannot be determined (with a warning) instead of refusing them; default false */
  failOpen?: boolean;
  /** called when a list could not be refreshed; default: process.emitWarning */
  onWarning?: (warning: StatusListWarning) => void;
  /** milliseconds a list fetch may take, default 5000 */
  timeoutDuration?: number;
  /**
   * largest decompressed list accepted, in bytes, default 4 MiB (32 Mi 1-bit or 4 Mi 8-bit
   * entries; Tessera's lists are 128 KiB)
   */
  maxListBytes?: number;
  /** largest list response accepted, in bytes, default 4 MiB */
  maxResponseBytes?: number;
  /** lists kept at most (least recently used dropped first), default 1000 */
  maxLists?: number;
}

export interface StatusListWarning {
  /**
   * "stale": a refresh failed and the last valid list is used (`maxStale`); "fail_open": no
   * usable list and tokens are accepted unchecked (`failOpen`); "unavailable": no usable list,
   * tokens of this list are refused with status_unavailable.
   */
  kind: "stale" | "fail_open" | "unavailable";
  uri: string;
  message: string;
  cause?: unknown;
}

/** §6.2: where a token's status is. */
export interface StatusListReference {
  idx: number;
  uri: string;
}

/** What the verifier shares with the status check: the same keys, algorithms, issuer and clock. */
export interface StatusCheckContext {
  issuer: string;
  algorithms: string[];
  clockTolerance: number;
  getKey: JWTVerifyGetKey;
  clock: { now(): Date } | undefined;
  fetch: FetchLike;
}

/** Checks a verified token's `status` claim; resolves if VALID, rejects with a TokenVerificationError. */
export type StatusCheck = (status: unknown) => Promise<void>;

/** No list is fetched more often than this, whatever its ttl or Cache-Control say (§11.5). */
const MIN_REFRESH_MS = 1000;
/** How long a request waits for a list refresh when a valid copy is already held (ms). */
const STALE_WAIT_MS = 250;
const MEDIA_TYPE = "application/statuslist+jwt";
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BITS = new Set([1, 2, 4, 8]);

/** A list that could not be fetched, or was fetched but is not to be trusted. */
class ListUnavailable extends Error {
  override readonly name = "ListUnavailable";
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

interface HeldList {
  bits: number;
  bytes: Uint8Array;
  /** seconds since the epoch (the list's iat claim): no list issued before it replaces this one */
  iat: number;
  /** seconds since the epoch (the list's exp claim) */
  exp: number;
  /** milliseconds, from the list's ttl claim */
  ttl: number | undefined;
  etag: string | null;
  /** milliseconds from the last response's Cache-Control (max-age; 0 for no-cache / no-store) */
  headerMaxAge: number | undefined;
  /** monotonic milliseconds: revalidate after this */
  freshUntil: number;
  /** the refresh interval this list got: min(ttl, or else max-age, maxAge), at least MIN_REFRESH_MS */
  interval: number;
}

interface Entry {
  held?: HeldList;
  inflight?: Promise<HeldList>;
  /** monotonic milliseconds: after a failed fetch, no new attempt before this */
  retryAt: number;
  failure?: unknown;
}

/** The claim, checked per §6.2; `status_invalid` otherwise. */
function referenceOf(status: unknown, issuerOrigin: string): StatusListReference {
  const invalid = (why: string) => fail("status_invalid", `the token's status claim ${why}`);
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(status) || !isObject(status.status_list)) throw invalid("has no status_list object");
  const { idx, uri } = status.status_list;
  if (typeof idx !== "number" || !Number.isSafeInteger(idx) || idx < 0) throw invalid("has no valid idx");
  if (typeof uri !== "string" || !URL.canParse(uri)) throw invalid("has no valid uri");
  const url = new URL(uri);
  // Only the issuer's own origin: a signed token still must not make the service fetch elsewhere.
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.origin !== issuerOrigin || url.username || url.password) {
    throw invalid("points to a list that is not on the issuer's origin");
  }
  return { idx, uri };
}

/** §4.1: entry `idx` is bits [idx*bits, (idx+1)*bits) counted from the least significant bit of byte 0. */
export function statusAt(bytes: Uint8Array, bits: number, idx: number): number | undefined {
  const perByte = 8 / bits;
  const byte = Math.floor(idx / perByte);
  if (byte >= bytes.length) return undefined;
  return (bytes[byte]! >> ((idx % perByte) * bits)) & ((1 << bits) - 1);
}

const STATUS_NAMES: Record<number, string> = { 1: "revoked", 2: "suspended" };

export function createStatusCheck(options: StatusListOptions, ctx: StatusCheckContext): StatusCheck {
  const who = "createVerifier: statusList";
  const maxAge = Math.max(duration(who, "maxAge", options.maxAge, 300_000), MIN_REFRESH_MS);
  const maxStale = duration(who, "maxStale", options.maxStale, 300_000);
  const timeout = duration(who, "timeoutDuration", options.timeoutDuration, 5000, true);
  const maxListBytes = options.maxListBytes ?? 4 * 1024 * 1024;
  const maxResponseBytes = options.maxResponseBytes ?? 4 * 1024 * 1024;
  const maxLists = options.maxLists ?? 1000;
  for (const [name, v] of [["maxListBytes", maxListBytes], ["maxResponseBytes", maxResponseBytes], ["maxLists", maxLists]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`${who}.${name} must be a positive integer`);
  }
  const failOpen = options.failOpen === true;
  const doFetch = options.fetch ?? ctx.fetch;
  const warn =
    options.onWarning ?? ((w: StatusListWarning) => process.emitWarning(`${w.message} (${w.uri})`, { type: "TesseraStatusListWarning" }));
  const issuerOrigin = URL.canParse(ctx.issuer) ? new URL(ctx.issuer).origin : "null";
  // Monotonic: a wall-clock step must not stretch how long a list is used.
  const monotonic = () => performance.now();
  const nowSeconds = () => (ctx.clock?.now() ?? new Date()).getTime() / 1000;
  const expired = (list: HeldList) => nowSeconds() >= list.exp + ctx.clockTolerance;
  const entries = new Map<string, Entry>();

  /** §8.3 step 3-5: the Status List Token, verified as strictly as an access token. */
  async function validate(jws: string, uri: string): Promise<Omit<HeldList, "etag" | "headerMaxAge" | "freshUntil" | "interval">> {
    if (!COMPACT_JWS.test(jws)) throw new ListUnavailable("the status list is not a compact JWS");
    let payload: JWTPayload;
    try {
      const header = decodeProtectedHeader(jws);
      for (const param of EMBEDDED_KEY_PARAMS) {
        if (Object.hasOwn(header, param)) throw new Error(`the status list header carries ${param}`);
      }
      if (typeof header.kid !== "string" || header.kid === "") throw new Error("the status list header has no kid");
      const now = ctx.clock?.now();
      ({ payload } = await jwtVerify(jws, ctx.getKey, {
        algorithms: ctx.algorithms,
        issuer: ctx.issuer,
        subject: uri,
        typ: "statuslist+jwt",
        clockTolerance: ctx.clockTolerance,
        requiredClaims: ["iss", "sub", "iat", "exp"],
        ...(now && { currentDate: now }),
      }));
    } catch (err) {
      throw new ListUnavailable("the status list is not a valid status list token of the issuer", err);
    }
    const { iat, exp, ttl, status_list: sl } = payload as JWTPayload & { ttl?: unknown; status_list?: unknown };
    if (typeof iat !== "number" || iat > nowSeconds() + ctx.clockTolerance) throw new ListUnavailable("the status list was issued in the future");
    if (typeof exp !== "number") throw new ListUnavailable("the status list has no exp");
    if (ttl !== undefined && (typeof ttl !== "number" || !(ttl > 0) || !Number.isFinite(ttl))) {
      throw new ListUnavailable("the status list's ttl is not a positive number");
    }
    if (typeof sl !== "object" || sl === null) throw new ListUnavailable("the status list token has no status_list");
    const { bits, lst } = sl as { bits?: unknown; lst?: unknown };
    if (typeof bits !== "number" || !BITS.has(bits)) throw new ListUnavailable("the status list's bits is not 1, 2, 4 or 8");
    if (typeof lst !== "string" || !BASE64URL.test(lst)) throw new ListUnavailable("the status list's lst is not base64url");
    let bytes: Uint8Array;
    try {
      // ZLIB (RFC 1950), and no more than maxListBytes of output: zlib stops there.
      bytes = inflateSync(Buffer.from(lst, "base64url"), { maxOutputLength: maxListBytes });
    } catch (err) {
      throw new ListUnavailable("the status list cannot be decompressed or is too large", err);
    }
    return { bits, bytes, iat, exp, ttl: ttl === undefined ? undefined : ttl * 1000 };
  }

  const headerMaxAgeOf = (res: Response): number | undefined => {
    const cc = parseCacheControl(res.headers.get("cache-control"));
    if (cc.has("no-store") || cc.has("no-cache")) return 0;
    const seconds = deltaSeconds(cc.get("max-age"));
    return seconds === undefined ? undefined : seconds * 1000;
  };

  const withFreshness = (list: Omit<HeldList, "freshUntil" | "interval">, sentAt: number): HeldList => {
    // §8.2: the ttl claim takes precedence over HTTP caching; max-age only for a list without one.
    const lifetime = list.ttl ?? list.headerMaxAge ?? Number.POSITIVE_INFINITY;
    const interval = Math.max(MIN_REFRESH_MS, Math.min(lifetime, maxAge));
    return { ...list, interval, freshUntil: sentAt + interval };
  };

  /** The issuer answered, and the held list still stands (a 304, or a list older than it). */
  const revalidated = (previous: HeldList, res: Response, sentAt: number, why: string): HeldList => {
    // A revalidation cannot extend the signed exp: the issuer should have signed a new list.
    if (expired(previous)) throw new ListUnavailable(`the status list has expired and the issuer answered ${why}`);
    // RFC 9111 §4.3.4: the new Cache-Control replaces the stored one; the list stays as signed.
    return withFreshness({ ...previous, headerMaxAge: headerMaxAgeOf(res) ?? previous.headerMaxAge }, sentAt);
  };

  async function fetchList(uri: string, previous: HeldList | undefined): Promise<HeldList> {
    const sentAt = monotonic();
    const headers = new Headers({ accept: MEDIA_TYPE });
    if (previous?.etag) headers.set("if-none-match", previous.etag);
    let res: Response;
    try {
      res = await doFetch(uri, { method: "GET", headers, redirect: "manual", signal: AbortSignal.timeout(timeout) });
    } catch (err) {
      throw new ListUnavailable("the status list could not be reached", err);
    }
    if (res.status === 304 && previous?.etag) {
      await discard(res);
      return { ...revalidated(previous, res, sentAt, "304"), etag: res.headers.get("etag") ?? previous.etag };
    }
    if (res.status !== 200) {
      await discard(res);
      throw new ListUnavailable(`the status list answered ${res.status}`);
    }
    let body: string;
    try {
      body = await readLimited(res, maxResponseBytes);
    } catch (err) {
      throw new ListUnavailable("the status list response could not be read or is too large", err);
    }
    const list = await validate(body.trim(), uri);
    // No rollback: an older list (a lagging instance, a cache, a replay) never replaces the held
    // one, whose ETag is kept so the next request still asks for anything newer than it.
    if (previous && list.iat < previous.iat) return revalidated(previous, res, sentAt, "with an older list");
    return withFreshness({ ...list, etag: res.headers.get("etag"), headerMaxAge: headerMaxAgeOf(res) }, sentAt);
  }

  function entryFor(uri: string): Entry {
    let entry = entries.get(uri);
    if (entry) entries.delete(uri); // re-inserted below: most recently used last
    else entry = { retryAt: Number.NEGATIVE_INFINITY };
    entries.set(uri, entry);
    if (entries.size > maxLists) entries.delete(entries.keys().next().value!);
    return entry;
  }

  /** One fetch per list at a time; on failure, the next attempt waits a refresh interval. */
  function refresh(uri: string, entry: Entry): Promise<HeldList> {
    entry.inflight ??= fetchList(uri, entry.held)
      .then(
        (list) => {
          entry.held = list;
          entry.failure = undefined;
          return list;
        },
        (err: unknown) => {
          entry.failure = err;
          entry.retryAt = monotonic() + (entry.held?.interval ?? MIN_REFRESH_MS);
          const stale = standIn(entry);
          const kind = stale ? "stale" : failOpen ? "fail_open" : "unavailable";
          const message =
            kind === "stale"
              ? "the token status list could not be refreshed; the last valid copy is used"
              : kind === "fail_open"
                ? "the token status list is unavailable; tokens that reference it are accepted unchecked (failOpen)"
                : "the token status list is unavailable; tokens that reference it are refused";
          try {
            warn({ kind, uri, message, cause: err });
          } catch {
            /* a throwing hook must not change the outcome */
          }
          throw err;
        },
      )
      .finally(() => {
        entry.inflight = undefined;
      });
    return entry.inflight;
  }

  /** The last valid list, while within maxStale past its refresh time and not expired. */
  const standIn = (entry: Entry): HeldList | undefined => {
    const held = entry.held;
    return held && monotonic() < held.freshUntil + maxStale && !expired(held) ? held : undefined;
  };

  async function usableList(uri: string): Promise<HeldList | undefined> {
    const entry = entryFor(uri);
    const held = entry.held;
    if (held && monotonic() < held.freshUntil && !expired(held)) return held;
    if (!entry.inflight && monotonic() < entry.retryAt) return standIn(entry);
    const pending = refresh(uri, entry).then(
      (list) => list,
      () => standIn(entry),
    );
    const stale = standIn(entry);
    if (!stale) return pending;
    // A valid copy is in hand: a slow issuer does not hold requests for long. They are answered
    // from that copy after STALE_WAIT_MS while the refresh goes on (staleness still bounded by
    // maxStale and the list's exp); a refresh that answers in time is used at once.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, STALE_WAIT_MS, undefined);
      timer.unref?.();
    });
    const first = await Promise.race([pending, waited]);
    clearTimeout(timer);
    return first ?? standIn(entry);
  }

  return async function checkStatus(status: unknown): Promise<void> {
    const { idx, uri } = referenceOf(status, issuerOrigin);
    const list = await usableList(uri);
    if (!list) {
      if (failOpen) return;
      throw fail("status_unavailable", "the token's status list could not be fetched or verified", entries.get(uri)?.failure);
    }
    const value = statusAt(list.bytes, list.bits, idx);
    // §8.3 step 6: out of bounds, no statement can be made: refuse.
    if (value === undefined) throw fail("status_invalid", "the token's status list index is out of range");
    if (value !== 0) {
      const name = STATUS_NAMES[value];
      throw fail("revoked", name ? `the access token has been ${name}` : `the access token's status is ${value}, not valid`);
    }
  };
}
