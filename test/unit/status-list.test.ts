// Token Status List (draft-ietf-oauth-status-list-20) without a database: the bit encoding
// against the draft's own examples (§4.1, Appendix C), a third-party reader
// (@sd-jwt/jwt-status-list) decoding our lists to the same bits, the index allocator's rules
// (disjoint blocks, no waiting on the hot path), the publisher's rebuild rules (when a list is
// re-signed, failures, expiry), and the size of one list at a million sessions.
import { randomInt } from "node:crypto";
import { getListFromStatusListJWT, StatusList } from "@sd-jwt/jwt-status-list";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateKey } from "../../src/domain/keys/generate.ts";
import { KeyRing } from "../../src/domain/keys/key-ring.ts";
import { toSigningKey } from "../../src/domain/keys/signing-key.ts";
import { BLOCK_SIZE, StatusIndexAllocator, type StatusIndexStore } from "../../src/domain/tokens/status-index.ts";
import {
  compressStatusBits,
  decompressStatusBits,
  encodeStatusBits,
  LIST_SIZE,
  listValiditySeconds,
  parseListNumber,
  statusAt,
  statusClaim,
  statusIndexOf,
  statusListUri,
} from "../../src/domain/tokens/status-list.ts";
import { StatusListPublisher, type PublishedStatusList } from "../../src/domain/tokens/status-publisher.ts";
import { MemoryStatusIndexStore } from "../../src/storage/memory/status-index-store.ts";
import { FakeClock } from "../helpers/fake-clock.ts";

const ISSUER = "https://issuer.test";
const T0 = new Date("2030-01-01T00:00:00.000Z");

/** The set bits of a decoded list. */
function setBits(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length * 8; i++) if (statusAt(bytes, i) === 1) out.push(i);
  return out;
}

/** `count` distinct random positions in [0, range). */
function randomPositions(count: number, range: number): number[] {
  const set = new Set<number>();
  while (set.size < count) set.add(randomInt(range));
  return [...set];
}

describe("status list encoding (§4.1)", () => {
  it("bit order: the draft's 16-entry example is 0xB9 0xA3, and compresses to the draft's lst", () => {
    // §4.1: status[0..15] = 1 0 0 1 1 1 0 1 1 1 0 0 0 1 0 1, least significant bit first.
    const statuses = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
    const bytes = encodeStatusBits(
      statuses.flatMap((s, i) => (s ? [i] : [])),
      16,
    );
    expect([...bytes]).toEqual([0xb9, 0xa3]);
    // §4.2's JSON example of the same list; its compressed array is 78dadbb918000217015d.
    expect(compressStatusBits(bytes)).toBe("eNrbuRgAAhcBXQ");
    expect(Buffer.from(compressStatusBits(bytes), "base64url").toString("hex")).toBe("78dadbb918000217015d");
    expect(statuses.map((_, i) => statusAt(bytes, i))).toEqual(statuses);
  });

  it("Appendix C's 1-bit test vector (2^20 entries, our LIST_SIZE) decodes to exactly our bytes for the same entries", () => {
    const positions = [0, 1993, 25460, 159495, 495669, 554353, 645645, 723232, 854545, 934534, 1000345];
    const lst =
      "eNrt3AENwCAMAEGogklACtKQPg9LugC9k_ACvreiogEAAKkeCQAAAAAAAAAAAAAAAAAAAIBylgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAXG9IAAAAAAAAAPwsJAAAAAAAAAAAAAAAvhsSAAAAAAAAAAAA7KpLAAAAAAAAAAAAAAAAAAAAAJsLCQAAAAAAAAAAADjelAAAAAAAAAAAKjDMAQAAAACAZC8L2AEb";
    expect(LIST_SIZE).toBe(2 ** 20);
    const ours = encodeStatusBits(positions);
    expect(ours.length).toBe(LIST_SIZE / 8);
    expect(Buffer.from(decompressStatusBits(lst)).equals(Buffer.from(ours))).toBe(true);
    expect(setBits(decompressStatusBits(compressStatusBits(ours)))).toEqual(positions);
  });

  it("round trip: random entries set, everything else valid; out-of-range positions are refused", () => {
    const positions = randomPositions(500, LIST_SIZE).sort((a, b) => a - b);
    const decoded = decompressStatusBits(compressStatusBits(encodeStatusBits(positions)));
    expect(decoded.length).toBe(LIST_SIZE / 8);
    expect(setBits(decoded)).toEqual(positions);
    expect(() => encodeStatusBits([LIST_SIZE])).toThrow(RangeError);
    expect(() => encodeStatusBits([-1])).toThrow(RangeError);
    expect(() => encodeStatusBits([1.5])).toThrow(RangeError);
  });

  it("a third-party reader (@sd-jwt/jwt-status-list) decodes our lst to the same bits", () => {
    const positions = [0, 7, 8, 9, 4095, 65536, ...randomPositions(300, LIST_SIZE)];
    const theirs = StatusList.decompressStatusList(compressStatusBits(encodeStatusBits(positions)), 1);
    const revoked = new Set(positions);
    for (const p of revoked) expect(theirs.getStatus(p)).toBe(1);
    for (const p of [1, 2, 6, 10, 4094, 4096, 65535, 65537, LIST_SIZE - 1]) if (!revoked.has(p)) expect(theirs.getStatus(p)).toBe(0);
    expect(theirs.statusList.length).toBe(LIST_SIZE);
    expect(theirs.statusList.reduce((a, b) => a + b, 0)).toBe(revoked.size);
  });
});

describe("status claims and list numbers", () => {
  it("an index names its list (n = floor(index / LIST_SIZE)) and its position in that list (§6.2 idx)", () => {
    expect(statusClaim(ISSUER, 0)).toEqual({ status_list: { idx: 0, uri: `${ISSUER}/statuslists/0` } });
    expect(statusClaim(ISSUER, LIST_SIZE - 1).status_list).toEqual({ idx: LIST_SIZE - 1, uri: `${ISSUER}/statuslists/0` });
    expect(statusClaim(ISSUER, LIST_SIZE).status_list).toEqual({ idx: 0, uri: `${ISSUER}/statuslists/1` });
    expect(statusClaim(ISSUER, 5 * LIST_SIZE + 3).status_list).toEqual({ idx: 3, uri: statusListUri(ISSUER, 5) });
  });

  it("statusIndexOf reads back only a well-formed claim of this issuer", () => {
    expect(statusIndexOf({ status: statusClaim(ISSUER, 42) }, ISSUER)).toBe(42);
    expect(statusIndexOf({ status: statusClaim(ISSUER, LIST_SIZE + 1) }, ISSUER)).toBe(LIST_SIZE + 1);
    expect(statusIndexOf({}, ISSUER)).toBeNull();
    expect(statusIndexOf({ status: statusClaim("https://other.test", 42) }, ISSUER)).toBeNull();
    expect(statusIndexOf({ status: { status_list: { idx: 42, uri: `${ISSUER}/statuslists/1` } } }, ISSUER)).toBe(LIST_SIZE + 42);
    for (const idx of [-1, 1.5, "42", null, 2 ** 53, LIST_SIZE]) expect(statusIndexOf({ status: { status_list: { idx, uri: `${ISSUER}/statuslists/0` } } }, ISSUER)).toBeNull();
    for (const uri of [`${ISSUER}/statuslists/-1`, `${ISSUER}/statuslists/01`, `${ISSUER}/statuslists/`, `${ISSUER}/statuslist/0`, 7]) {
      expect(statusIndexOf({ status: { status_list: { idx: 1, uri } } }, ISSUER)).toBeNull();
    }
  });

  it("parseListNumber takes plain decimal safe integers only", () => {
    for (const [raw, n] of [["0", 0], ["1", 1], ["42", 42], ["9007199254740991", 2 ** 53 - 1]] as const) expect(parseListNumber(raw)).toBe(n);
    for (const raw of ["", "-1", "+1", "01", "1e3", "1.0", "0x1", " 1", "1 ", "\u0000", "9007199254740992", "99999999999999999999", "Infinity", "NaN", "١"]) {
      expect(parseListNumber(raw), JSON.stringify(raw)).toBeNull();
    }
  });

  it("exp: a list is valid for max(10 × ttl, 300 s)", () => {
    expect(listValiditySeconds(10)).toBe(300);
    expect(listValiditySeconds(1)).toBe(300);
    expect(listValiditySeconds(60)).toBe(600);
  });
});

describe("status index allocation", () => {
  it("two instances on one counter get disjoint blocks; no index is handed out twice", async () => {
    const store = new MemoryStatusIndexStore();
    const [a, b] = [new StatusIndexAllocator(store), new StatusIndexAllocator(store)];
    const got = await Promise.all(Array.from({ length: 3 * BLOCK_SIZE }, (_, i) => (i % 3 === 0 ? a : b).allocate()));
    expect(new Set(got).size).toBe(got.length);
    expect(Math.min(...got)).toBeGreaterThanOrEqual(0);
    expect(await store.reserved()).toBeGreaterThan(Math.max(...got));
  });

  it("one reservation per block, fetched ahead: after the first, no allocation waits for the store", async () => {
    const inner = new MemoryStatusIndexStore();
    let calls = 0;
    let release: (() => void) | null = null;
    const store: StatusIndexStore = {
      reserved: () => inner.reserved(),
      // The second and later reservations hang until released: an allocation that waited would hang too.
      reserve: async (count) => {
        if (++calls > 1) await new Promise<void>((r) => (release = r));
        return inner.reserve(count);
      },
    };
    const allocator = new StatusIndexAllocator(store, 16);
    const first = [];
    for (let i = 0; i < 12; i++) first.push(await allocator.allocate());
    expect(first).toEqual([...Array(12).keys()]);
    expect(calls).toBe(2); // the next block was asked for when a quarter of this one was left
    release!();
    for (let i = 12; i < 32; i++) expect(await allocator.allocate()).toBe(i);
    expect(calls).toBe(3);
  });

  it("a failed reservation fails the allocation that needed it; the next one tries again", async () => {
    const inner = new MemoryStatusIndexStore();
    let down = true;
    const allocator = new StatusIndexAllocator({
      reserved: () => inner.reserved(),
      reserve: async (count) => {
        if (down) throw new Error("database down");
        return inner.reserve(count);
      },
    });
    await expect(allocator.allocate()).rejects.toThrow("database down");
    down = false;
    expect(await allocator.allocate()).toBe(0);
  });
});

// ---- the publisher ----

async function keyRing(): Promise<KeyRing> {
  return new KeyRing([await toSigningKey(await generateKey("ES256", "active", T0))], "ES256");
}

function publisherOn(o: { keys: KeyRing; ttl?: number; revoked?: number[]; reserved?: number }) {
  const clock = new FakeClock(T0);
  const state = { revoked: o.revoked ?? [], reserved: o.reserved ?? 0, down: false, reads: 0 };
  const errors: Error[] = [];
  let recovered = 0;
  const publisher = new StatusListPublisher({
    revoked: {
      revokedIndices: async () => {
        state.reads++;
        if (state.down) throw new Error("database down");
        return [...state.revoked];
      },
    },
    indices: { reserved: async () => state.reserved },
    keys: o.keys,
    clock,
    issuer: ISSUER,
    ttl: o.ttl ?? 10,
    onError: (err) => errors.push(err),
    onRecovered: () => void recovered++,
  });
  return { publisher, clock, state, errors, recovered: () => recovered };
}

function served(p: StatusListPublisher, n: number): PublishedStatusList {
  const r = p.lookup(n);
  if (r.found !== "ok") throw new Error(`list ${n}: ${r.found}`);
  return r.list;
}

async function verifyList(keys: KeyRing, jws: Buffer) {
  const { payload, protectedHeader } = await jwtVerify(jws.toString(), createLocalJWKSet(JSON.parse(keys.jwks.body.toString()) as JSONWebKeySet), {
    algorithms: ["ES256"],
    typ: "statuslist+jwt",
    issuer: ISSUER,
    currentDate: T0,
  });
  return { payload, protectedHeader };
}

describe("status list publisher", () => {
  afterEach(() => vi.useRealTimers());

  it("serves lists 0..(list of the highest reserved index) + 1, each with its bits, signed (typ statuslist+jwt)", async () => {
    const keys = await keyRing();
    const revoked = [3, LIST_SIZE + 5, 2 * LIST_SIZE + LIST_SIZE - 1];
    const { publisher } = publisherOn({ keys, revoked, reserved: 2 * LIST_SIZE + 10 });
    await publisher.rebuild();
    expect(publisher.lookup(3)).toEqual({ found: "ok", list: expect.anything() as unknown });
    expect(publisher.lookup(4)).toEqual({ found: "unknown" });
    expect(JSON.parse(publisher.aggregation.body.toString())).toEqual({ status_lists: [0, 1, 2, 3].map((n) => statusListUri(ISSUER, n)) });
    for (const n of [0, 1, 2, 3]) {
      const { payload, protectedHeader } = await verifyList(keys, served(publisher, n).body);
      expect(protectedHeader).toEqual({ alg: "ES256", kid: keys.signer().kid, typ: "statuslist+jwt" });
      expect(payload).toMatchObject({ iss: ISSUER, sub: statusListUri(ISSUER, n), iat: T0.getTime() / 1000, exp: T0.getTime() / 1000 + 300, ttl: 10 });
      const list = getListFromStatusListJWT(served(publisher, n).body.toString());
      const expected = revoked.filter((i) => Math.floor(i / LIST_SIZE) === n).map((i) => i % LIST_SIZE);
      expect(setBits(new Uint8Array(list.encodeStatusList())), `list ${n}`).toEqual(expected);
    }
  });

  it("with nothing reserved yet, list 0 is served (empty)", async () => {
    const { publisher } = publisherOn({ keys: await keyRing() });
    await publisher.rebuild();
    expect(setBits(new Uint8Array(getListFromStatusListJWT(served(publisher, 0).body.toString()).encodeStatusList()))).toEqual([]);
    expect(publisher.lookup(1)).toEqual({ found: "unknown" });
  });

  it("re-signs a list only when its bits change or half its validity has passed; otherwise the same bytes and ETag", async () => {
    const keys = await keyRing();
    const { publisher, clock, state } = publisherOn({ keys, ttl: 10, reserved: LIST_SIZE + 1 });
    await publisher.rebuild();
    const [l0, l1] = [served(publisher, 0), served(publisher, 1)];
    clock.advance(4);
    await publisher.rebuild();
    expect(served(publisher, 0)).toBe(l0);
    expect(served(publisher, 1)).toBe(l1);
    // A revocation in list 1: list 1 is re-signed at once, list 0 untouched.
    state.revoked = [LIST_SIZE + 7];
    await publisher.rebuild();
    expect(served(publisher, 0)).toBe(l0);
    expect(served(publisher, 1).etag).not.toBe(l1.etag);
    expect(served(publisher, 1).iat).toBe(l1.iat + 4);
    // Until half its validity (exp - iat = 300 s at ttl 10) has passed, list 0 keeps its bytes;
    // then it is re-signed (exp moves) with the same bits.
    clock.advance(145);
    await publisher.rebuild();
    expect(served(publisher, 0)).toBe(l0);
    clock.advance(1);
    await publisher.rebuild();
    expect(served(publisher, 0).iat).toBe(l0.iat + 150);
    expect(served(publisher, 0).exp).toBe(l0.exp + 150);
    const claims = await verifyList(keys, served(publisher, 0).body);
    expect(claims.payload.status_list).toEqual((await verifyList(keys, l0.body)).payload.status_list);
  });

  it("a new signing key re-signs every list at the next rebuild", async () => {
    const keys = await keyRing();
    const { publisher } = publisherOn({ keys });
    await publisher.rebuild();
    const before = served(publisher, 0);
    const next = await toSigningKey(await generateKey("ES256", "active", new Date(T0.getTime() + 1000)));
    keys.replace([...keys.keys, next]);
    await publisher.rebuild();
    expect(decodeProtectedHeader(served(publisher, 0).body.toString()).kid).toBe(next.kid);
    expect(served(publisher, 0).etag).not.toBe(before.etag);
  });

  it("a failed rebuild keeps the last lists, is reported once per outage; past exp the lists are not served", async () => {
    const keys = await keyRing();
    const { publisher, clock, state, errors, recovered } = publisherOn({ keys, ttl: 10, revoked: [1] });
    await publisher.rebuild();
    const last = served(publisher, 0);
    state.down = true;
    clock.advance(100);
    await expect(publisher.rebuild()).rejects.toThrow("database down");
    await publisher.revoked(); // never throws, nor does the rebuild it started
    await publisher.settled();
    expect(errors).toHaveLength(1);
    expect(served(publisher, 0)).toBe(last);
    clock.set(new Date(last.exp * 1000 - 1));
    expect(publisher.lookup(0).found).toBe("ok");
    clock.set(new Date(last.exp * 1000));
    expect(publisher.lookup(0)).toEqual({ found: "expired" });
    state.down = false;
    await publisher.rebuild();
    expect(recovered()).toBe(1);
    expect(served(publisher, 0).exp).toBe(last.exp + listValiditySeconds(10));
    state.down = true;
    await publisher.revoked();
    await publisher.settled();
    expect(errors).toHaveLength(2); // a new outage is reported again
  });

  it("revoked() starts a rebuild and returns without waiting for it; settled() waits for it", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // A store whose read hangs until released.
    const publisher = new StatusListPublisher({
      revoked: { revokedIndices: async () => (await gate, [5]) },
      indices: { reserved: async () => 0 },
      keys: await keyRing(),
      clock: new FakeClock(T0),
      issuer: ISSUER,
      ttl: 10,
    });
    await publisher.revoked(); // returns while the read hangs
    expect(publisher.lookup(0)).toEqual({ found: "unknown" });
    let settled = false;
    const waiting = publisher.settled().then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    release();
    await waiting;
    expect(setBits(new Uint8Array(getListFromStatusListJWT(served(publisher, 0).body.toString()).encodeStatusList()))).toEqual([5]);
  });

  it("concurrent rebuilds share the work: one running, one more after it that sees everything committed before", async () => {
    const { publisher, state } = publisherOn({ keys: await keyRing() });
    await Promise.all(Array.from({ length: 10 }, () => publisher.rebuild()));
    expect(state.reads).toBe(2);
    state.revoked = [9];
    const first = publisher.rebuild();
    const later = publisher.revoked();
    await Promise.all([first, later]);
    expect(setBits(new Uint8Array(getListFromStatusListJWT(served(publisher, 0).body.toString()).encodeStatusList()))).toEqual([9]);
  });

  it("start() rebuilds every ttl/2 on an unref'd timer; stop() ends it", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const { publisher } = publisherOn({ keys: await keyRing(), ttl: 4 });
    const rebuilds = vi.spyOn(publisher, "rebuild").mockResolvedValue(undefined);
    publisher.start();
    await vi.advanceTimersByTimeAsync(1999);
    expect(rebuilds).toHaveBeenCalledTimes(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(rebuilds).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(4000);
    expect(rebuilds).toHaveBeenCalledTimes(3);
    publisher.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(rebuilds).toHaveBeenCalledTimes(3);
  });

  it("start()'s timer does not keep the process alive", () => {
    const { publisher } = publisherOn({ keys: new KeyRing([], "ES256") });
    const setIntervalSpy = vi.spyOn(globalThis, "setInterval");
    publisher.start();
    const timer = setIntervalSpy.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    publisher.stop();
    setIntervalSpy.mockRestore();
  });
});

describe("size", () => {
  it("one list at 1,000,000 sessions with 1% revoked at random: within 1.4 × the entropy bound", async () => {
    const sessions = 1_000_000;
    const revoked = randomPositions(sessions / 100, sessions);
    const lst = compressStatusBits(encodeStatusBits(revoked));
    const compressed = Buffer.from(lst, "base64url").length;
    // No lossless encoding of 10,000 random positions out of 1,000,000 can be shorter than
    // log2(C(1e6, 1e4)) ≈ 1e6 · H(0.01) bits (≈ 10.1 KB); DEFLATE, a byte-oriented LZ77 + Huffman
    // coder, spends at least a bit on every byte of zeros between two set bits' bytes, so it
    // lands above that, the draft's Appendix B says near 13.7 KB: allow 1.4 ×.
    const h = (p: number) => -p * Math.log2(p) - (1 - p) * Math.log2(1 - p);
    const entropyBytes = (sessions * h(0.01)) / 8;
    expect(compressed).toBeGreaterThan(entropyBytes);
    expect(compressed).toBeLessThan(1.4 * entropyBytes);

    // What a service downloads: the list token. lst is base64url inside JSON that the JWS encodes
    // in base64url again: 16/9 of the compressed bytes, plus claims, header and signature.
    const { publisher } = publisherOn({ keys: await keyRing(), revoked, reserved: sessions });
    await publisher.rebuild();
    const list = served(publisher, 0);
    const token = list.body.length;
    expect(token).toBeLessThan(Math.ceil((compressed * 16) / 9) + 512);
    // With Content-Encoding: gzip (§8.2), most of that base64 overhead is gone again.
    const gzipped = list.gzip!.body.length;
    expect(gzipped).toBeLessThan(Math.ceil((compressed * 4) / 3) + 512);
    const empty = served(publisher, 1);
    console.log(
      `status list of ${LIST_SIZE} entries, ${sessions} sessions, ${revoked.length} revoked at random: ` +
        `compressed ${compressed} B (entropy bound ${Math.round(entropyBytes)} B); list token ${token} B, ${gzipped} B with gzip; ` +
        `an empty list's token ${empty.body.length} B (${empty.gzip!.body.length} B gzip)`,
    );
  });
});
