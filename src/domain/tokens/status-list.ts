// Token Status List (draft-ietf-oauth-status-list-20, the IESG-approved text): the pure part.
// Which list an index lives in, the `status` claim access tokens carry (§6.2), the bit array and
// its compression (§4.1), the `status_list` object (§4.2) and the claims of a status list token
// (§5.1). No I/O; the publisher (status-publisher.ts) signs and serves what these build.
import { deflateSync, inflateSync, constants } from "node:zlib";

/**
 * Entries per list: 2^20. Large lists give herd privacy (§12.1: the issuer cannot tell from a
 * fetch which token a service checks); a list is still small on the wire (the draft's Appendix B:
 * 13.7 KB at 1% revoked, ~150 B when nothing is); the draft's test vectors (Appendix C) use this
 * size; and at the bench's 20k client_credentials tokens/s a list lasts about
 * 50 s, far longer than the ttl/2 in which every instance learns that the next list is in use.
 * A power of two, so a list is a whole number of bytes (§13.4).
 */
export const LIST_SIZE = 2 ** 20;

/** §7.1: 1 bit per entry, 0x00 VALID, 0x01 INVALID (revoked). */
export const STATUS_BITS = 1;

/** Where the lists are served, below ISSUER; `${issuer}${STATUS_LISTS_PATH}` is the aggregation (§9). */
export const STATUS_LISTS_PATH = "/statuslists";

/** §6.2: the reference an access token carries. */
export interface StatusListReference {
  idx: number;
  uri: string;
}

/** §6.1: the `status` claim. */
export interface StatusClaim {
  status_list: StatusListReference;
}

/** §4.2: a status list in JSON. */
export interface StatusList {
  bits: typeof STATUS_BITS;
  lst: string;
}

/** §5.1: the claims of a status list token (JWT, typ statuslist+jwt). */
export interface StatusListTokenClaims {
  iss: string;
  sub: string;
  iat: number;
  exp: number;
  ttl: number;
  status_list: StatusList;
}

/** §9.3: the status list aggregation document. */
export interface StatusListAggregation {
  status_lists: string[];
}

/** The list that holds `idx`. */
export const listOf = (idx: number): number => Math.floor(idx / LIST_SIZE);

/** `idx`'s position inside its list. */
export const positionOf = (idx: number): number => idx % LIST_SIZE;

export const statusListUri = (issuer: string, list: number): string => `${issuer}${STATUS_LISTS_PATH}/${list}`;

/**
 * §6.2: the claim of a token whose status is entry `idx` of the issuer's index space: `uri` names
 * the list that holds it and `idx` is its position *in that list* (what a verifier reads, §8.3).
 */
export function statusClaim(issuer: string, idx: number): StatusClaim {
  return { status_list: { idx: positionOf(idx), uri: statusListUri(issuer, listOf(idx)) } };
}

/** The index (in the issuer's index space) of a token this issuer signed, read back from its claims; null when it has none (or not ours). */
export function statusIndexOf(claims: Readonly<Record<string, unknown>>, issuer: string): number | null {
  const ref = (claims.status as { status_list?: Partial<StatusListReference> } | undefined)?.status_list;
  const position = ref?.idx;
  if (typeof position !== "number" || !Number.isSafeInteger(position) || position < 0 || position >= LIST_SIZE) return null;
  const prefix = `${issuer}${STATUS_LISTS_PATH}/`;
  if (typeof ref?.uri !== "string" || !ref.uri.startsWith(prefix)) return null;
  const list = parseListNumber(ref.uri.slice(prefix.length));
  return list === null ? null : list * LIST_SIZE + position;
}

/**
 * A list number as it appears in a URL path: plain decimal, no sign, exponent, leading zero or
 * padding, and a safe integer; null for anything else ("-1", "1e3", "01", "0x1", a NUL byte).
 */
export function parseListNumber(raw: string): number | null {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * §4.1 steps 2-3: the byte array of a list of `size` entries with the entries at `positions` set
 * (1 = INVALID); entry i is bit i % 8 of byte floor(i / 8), least significant bit first.
 */
export function encodeStatusBits(positions: Iterable<number>, size = LIST_SIZE): Uint8Array {
  const bytes = new Uint8Array(Math.ceil((size * STATUS_BITS) / 8));
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= size) throw new RangeError(`status list position ${p} is outside 0..${size - 1}`);
    bytes[p >> 3]! |= 1 << (p & 7);
  }
  return bytes;
}

/** The status of entry `position` in a decoded byte array: 0 VALID, 1 INVALID. */
export const statusAt = (bytes: Uint8Array, position: number): number => ((bytes[position >> 3] ?? 0) >> (position & 7)) & 1;

/**
 * §4.1 step 4 and §4.2: DEFLATE in the ZLIB format (RFC 1950), highest compression level (the
 * draft RECOMMENDs it), base64url without padding.
 */
export function compressStatusBits(bytes: Uint8Array): string {
  return deflateSync(bytes, { level: constants.Z_BEST_COMPRESSION, memLevel: 9 }).toString("base64url");
}

/** The inverse of compressStatusBits (tests, and anyone reading a list back). */
export function decompressStatusBits(lst: string): Uint8Array {
  return new Uint8Array(inflateSync(Buffer.from(lst, "base64url")));
}

/**
 * How long after `iat` a list token expires (`exp`): max(10 × ttl, 300 s). `exp` bounds how long
 * a verifier may keep trusting the last list it got when it cannot fetch a new one (§13.7: "MUST
 * NOT be relied upon any longer"): long enough that an issuer restart or a brief outage does not
 * make every service refuse every token, short enough (5 minutes by default, under the 15-minute
 * access-token lifetime) that a revoked token outlives an outage, or an attacker blocking the
 * verifier's fetches, by minutes at most. The issuer re-signs every ttl/2, so a fetched list is
 * always valid for at least this long minus ttl/2.
 */
export const listValiditySeconds = (ttl: number): number => Math.max(10 * ttl, 300);

/** §5.1: the claims of list `list`'s token, issued at `iat` (seconds). */
export function statusListTokenClaims(p: { issuer: string; list: number; iat: number; ttl: number; lst: string }): StatusListTokenClaims {
  return {
    iss: p.issuer,
    // §5.1: sub MUST equal the uri in the referenced tokens' status_list claim.
    sub: statusListUri(p.issuer, p.list),
    iat: p.iat,
    exp: p.iat + listValiditySeconds(p.ttl),
    // §5.1: how long a verifier may cache the token before fetching a fresh one.
    ttl: p.ttl,
    status_list: { bits: STATUS_BITS, lst: p.lst },
  };
}

/** §9.3: the aggregation of lists 0..count-1. */
export function statusListAggregation(issuer: string, count: number): StatusListAggregation {
  return { status_lists: Array.from({ length: count }, (_, n) => statusListUri(issuer, n)) };
}
