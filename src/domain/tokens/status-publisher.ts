// The token status lists an instance serves (draft-ietf-oauth-status-list-20), prepared ahead of
// any request: every bit comes from the database, so every instance on one database serves the
// same bits.
//
// - A rebuild reads the revoked indices (revoked sessions, revoked client_credentials access
//   tokens) and the shared index counter, and groups the indices by list. It runs at start, every
//   ttl/2 (start()), and at once on the instance that performs a revocation (revoked(): started,
//   not awaited, so the revoking request does not wait for it). Bits set on another instance, or
//   by the operator's CLI, show here within ttl/2.
// - A list is re-signed only when its bits changed, the signing key changed, or half its validity
//   (exp - iat) has passed (so exp stays at least that far ahead); never on the request path.
//   Unchanged lists keep their bytes and ETag, so a verifier refetching every ttl with
//   If-None-Match mostly gets a 304 from the instance it asked before.
// - Lists 0 .. (the list of the highest reserved index) + 1 are served: the next list is published
//   before any index of it is handed out, so a token never names a list that an instance does not
//   serve yet (reaching the list after it takes another 2^20 issuances, minutes at any load,
//   against a rebuild every ttl/2).
// - A failed rebuild (database down) keeps the lists already built and reports once; they are
//   never served past their exp (§13.7: a list MUST NOT be relied upon after it): 503 then.
import { createHash } from "node:crypto";
import { SignJWT } from "jose";
import { epochSeconds, type Clock } from "../clock.ts";
import type { KeyRing } from "../keys/key-ring.ts";
import { publish, type PublishedDocument } from "../published.ts";
import type { StatusIndexStore } from "./status-index.ts";
import {
  compressStatusBits,
  encodeStatusBits,
  listOf,
  listValiditySeconds,
  positionOf,
  statusListAggregation,
  statusListTokenClaims,
} from "./status-list.ts";

/** Where the bits come from (implemented in storage/prisma). */
export interface RevokedIndexStore {
  /**
   * The indices whose tokens are revoked now: of sessions that are revoked (their bit stays set
   * until pruning deletes the session, after every access token of it has expired), and of
   * revoked client_credentials access tokens (until they expire).
   */
  revokedIndices(): Promise<number[]>;
}

/**
 * Told of every revocation this instance commits (once: not of a repeat that changed nothing), so
 * that it serves it at once. Resolves as soon as the work is started, so the request that revoked
 * is not held for it; never rejects.
 */
export interface RevocationListener {
  revoked(): Promise<void>;
}

export interface PublishedStatusList extends PublishedDocument {
  /** seconds since the epoch */
  iat: number;
  exp: number;
}

export type StatusListLookup = { found: "ok"; list: PublishedStatusList } | { found: "unknown" } | { found: "expired" };

interface PreparedList extends PublishedStatusList {
  /** of the list's revoked positions: unchanged bits, unchanged digest */
  digest: string;
  lst: string;
  kid: string;
}

export interface StatusListPublisherDeps {
  revoked: RevokedIndexStore;
  indices: Pick<StatusIndexStore, "reserved">;
  keys: KeyRing;
  clock: Clock;
  issuer: string;
  /** STATUS_LIST_TTL, seconds */
  ttl: number;
  /** the first failed rebuild after a success (later failures of the same outage are not reported) */
  onError?: (err: Error) => void;
  /** the first successful rebuild after a failure */
  onRecovered?: () => void;
}

const digestOf = (positions: number[]): string =>
  createHash("sha256").update(new Uint32Array(positions.sort((a, b) => a - b))).digest("base64url");

let emptyList: { digest: string; lst: string } | undefined;
/** A list with no bit set: the same bytes for every such list, compressed once. */
const empty = () => (emptyList ??= { digest: digestOf([]), lst: compressStatusBits(encodeStatusBits([])) });

export class StatusListPublisher implements RevocationListener {
  #lists: ReadonlyMap<number, PreparedList> = new Map();
  #aggregation: PublishedDocument;
  #running: Promise<void> | null = null;
  #queued: Promise<void> | null = null;
  #failing = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: StatusListPublisherDeps) {
    this.#aggregation = this.#aggregate(0);
  }

  /** List `n` as last built: unknown if this instance does not serve it, expired past its exp. */
  lookup(n: number): StatusListLookup {
    const list = this.#lists.get(n);
    if (!list) return { found: "unknown" };
    if (list.exp <= epochSeconds(this.deps.clock.now())) return { found: "expired" };
    return { found: "ok", list };
  }

  /** §9.3: the URIs of every list served, prepared. */
  get aggregation(): PublishedDocument {
    return this.#aggregation;
  }

  /**
   * Reads the bits from the database and prepares every list; rejects when that fails (the lists
   * already built stay). Calls made while a rebuild runs share one more rebuild after it, which
   * reads everything committed before they were made.
   */
  rebuild(): Promise<void> {
    if (this.#running) {
      this.#queued ??= this.#running
        .catch(() => undefined)
        .then(() => {
          this.#queued = null;
          return this.rebuild();
        });
      return this.#queued;
    }
    this.#running = this.#build().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /**
   * A revocation was committed: rebuild now, and return without waiting for it (a failure is
   * reported through onError, once per outage, and the timer retries). settled() waits for it.
   */
  async revoked(): Promise<void> {
    void this.rebuild().catch(() => undefined);
  }

  /** Settles once no rebuild is running or queued (tests: what a revocation started has been served). */
  async settled(): Promise<void> {
    for (let pending = this.#queued ?? this.#running; pending; pending = this.#queued ?? this.#running) {
      await pending.catch(() => undefined);
    }
  }

  /** Rebuilds every ttl/2 (unref'd: never keeps the process alive). */
  start(): void {
    this.stop();
    this.#timer = setInterval(() => void this.rebuild().catch(() => undefined), this.deps.ttl * 500);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #build(): Promise<void> {
    const { revoked, indices, keys, clock, issuer, ttl } = this.deps;
    let lists: Map<number, PreparedList>;
    try {
      const revokedIndices = await revoked.revokedIndices();
      const reserved = await indices.reserved();
      const byList = new Map<number, number[]>();
      for (const idx of revokedIndices) {
        const n = listOf(idx);
        let positions = byList.get(n);
        if (!positions) byList.set(n, (positions = []));
        positions.push(positionOf(idx));
      }
      // Every list holding a reserved index, plus the next one (see the top of this file).
      const count = Math.max(listOf(reserved - 1) + 2, ...[...byList.keys()].map((n) => n + 1), 1);
      const signer = keys.signer();
      const iat = epochSeconds(clock.now());
      lists = new Map();
      for (let n = 0; n < count; n++) {
        const positions = byList.get(n) ?? [];
        const digest = positions.length === 0 ? empty().digest : digestOf(positions);
        const previous = this.#lists.get(n);
        if (previous && previous.digest === digest && previous.kid === signer.kid && iat - previous.iat < listValiditySeconds(ttl) / 2) {
          lists.set(n, previous);
          continue;
        }
        const lst =
          previous?.digest === digest ? previous.lst : positions.length === 0 ? empty().lst : compressStatusBits(encodeStatusBits(positions));
        const claims = statusListTokenClaims({ issuer, list: n, iat, ttl, lst });
        // §5.1: typ statuslist+jwt, signed with the key that signs access tokens (the JWKS verifies both).
        const jws = await new SignJWT({ ...claims }).setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: "statuslist+jwt" }).sign(signer.privateKey);
        lists.set(n, { ...publish(Buffer.from(jws), { gzip: true }), iat, exp: claims.exp, digest, lst, kid: signer.kid });
      }
    } catch (err) {
      if (!this.#failing) this.deps.onError?.(err as Error);
      this.#failing = true;
      throw err;
    }
    if (lists.size !== this.#lists.size) this.#aggregation = this.#aggregate(lists.size);
    this.#lists = lists;
    if (this.#failing) this.deps.onRecovered?.();
    this.#failing = false;
  }

  #aggregate(count: number): PublishedDocument {
    return publish(Buffer.from(JSON.stringify(statusListAggregation(this.deps.issuer, count))));
  }
}
