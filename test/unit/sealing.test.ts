// Private keys at rest: AES-256-GCM with the kid as associated data. A wrong key, a flipped bit
// or a sealed key moved onto another kid must fail loudly (SealError), never yield garbage.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseEncryptionKey, seal, SealError, unseal, type SealedKey } from "../../src/domain/keys/sealing.ts";

const KEY = randomBytes(32);
const KID = "kid-1";
const PLAINTEXT = JSON.stringify({ kty: "EC", crv: "P-256", x: "xx", y: "yy", d: "the-private-scalar-d" });

/** Flip one bit of a base64url field (the byte in the middle). */
function flipBit(b64url: string, bit = 0): string {
  const buf = Buffer.from(b64url, "base64url");
  const i = Math.floor(buf.length / 2);
  buf[i] = buf[i]! ^ (1 << bit);
  return buf.toString("base64url");
}

/** What unseal threw (it must throw). */
function unsealError(sealed: SealedKey, kid: string, key: Buffer): Error {
  try {
    unseal(sealed, kid, key);
  } catch (err) {
    return err as Error;
  }
  throw new Error("unseal did not throw");
}

describe("sealing", () => {
  it("seal then unseal gives the plaintext back; the sealed form does not contain it", () => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    expect(sealed).toMatchObject({ v: 1, alg: "A256GCM" });
    expect(Buffer.from(sealed.iv, "base64url")).toHaveLength(12);
    expect(Buffer.from(sealed.tag, "base64url")).toHaveLength(16);
    expect(JSON.stringify(sealed)).not.toContain("the-private-scalar-d");
    expect(unseal(sealed, KID, KEY)).toBe(PLAINTEXT);
    // Survives the JSON round trip both stores do.
    expect(unseal(JSON.parse(JSON.stringify(sealed)) as SealedKey, KID, KEY)).toBe(PLAINTEXT);
  });

  it("uses a fresh IV per seal: the same plaintext seals differently each time, both open", () => {
    const a = seal(PLAINTEXT, KID, KEY);
    const b = seal(PLAINTEXT, KID, KEY);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ct).not.toBe(b.ct);
    expect(unseal(a, KID, KEY)).toBe(PLAINTEXT);
    expect(unseal(b, KID, KEY)).toBe(PLAINTEXT);
  });

  it("round-trips empty and non-ASCII plaintexts", () => {
    for (const text of ["", "ü€😀", "x".repeat(10_000)]) expect(unseal(seal(text, KID, KEY), KID, KEY)).toBe(text);
  });

  it("a wrong encryption key -> SealError that names KEYS_ENCRYPTION_KEY and the kid", () => {
    const err = unsealError(seal(PLAINTEXT, KID, KEY), KID, randomBytes(32));
    expect(err).toBeInstanceOf(SealError);
    expect(err.name).toBe("SealError");
    expect(err.message).toMatch(/KEYS_ENCRYPTION_KEY/);
    expect(err.message).toContain(KID);
    expect(err.message).toMatch(/wrong encryption key/);
    // The message never echoes key material or plaintext.
    expect(err.message).not.toContain("the-private-scalar-d");
    expect(err.message).not.toContain(KEY.toString("base64"));
  });

  it("a key that differs in a single bit is still refused", () => {
    const almost = Buffer.from(KEY);
    almost[31] = almost[31]! ^ 1;
    expect(() => unseal(seal(PLAINTEXT, KID, KEY), KID, almost)).toThrow(SealError);
  });

  it.each(["ct", "tag", "iv"] as const)("a flipped bit in %s -> SealError", (field) => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    for (const bit of [0, 7]) {
      const tampered: SealedKey = { ...sealed, [field]: flipBit(sealed[field], bit) };
      const err = unsealError(tampered, KID, KEY);
      expect(err).toBeInstanceOf(SealError);
      expect(err.message).toMatch(/altered/);
    }
  });

  it("a truncated tag or ciphertext -> SealError", () => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    expect(() => unseal({ ...sealed, tag: sealed.tag.slice(0, 10) }, KID, KEY)).toThrow(SealError);
    expect(() => unseal({ ...sealed, ct: sealed.ct.slice(0, -4) }, KID, KEY)).toThrow(SealError);
    expect(() => unseal({ ...sealed, tag: "" }, KID, KEY)).toThrow(SealError);
  });

  // GCM accepts tags of 4..16 bytes unless the length is pinned: a prefix of the real tag would
  // authenticate with as little as 32 bits, which an attacker can brute-force.
  it.each([4, 8, 12, 15])("a tag truncated to a %i-byte prefix of the real tag -> SealError", (n) => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    const prefix = Buffer.from(sealed.tag, "base64url").subarray(0, n).toString("base64url");
    expect(() => unseal({ ...sealed, tag: prefix }, KID, KEY)).toThrow(SealError);
  });

  it("a sealed key moved onto another kid (associated data) -> SealError", () => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    const err = unsealError(sealed, "kid-2", KEY);
    expect(err).toBeInstanceOf(SealError);
    expect(err.message).toContain("kid-2");
    // Not even a prefix/suffix of the kid opens it.
    expect(() => unseal(sealed, "kid-", KEY)).toThrow(SealError);
    expect(() => unseal(sealed, `${KID} `, KEY)).toThrow(SealError);
    expect(unseal(sealed, KID, KEY)).toBe(PLAINTEXT);
  });

  it("an unknown sealing format -> SealError, not a decryption attempt", () => {
    const sealed = seal(PLAINTEXT, KID, KEY);
    expect(() => unseal({ ...sealed, v: 2 } as unknown as SealedKey, KID, KEY)).toThrow(/unknown sealing format/);
    expect(() => unseal({ ...sealed, alg: "A128GCM" } as unknown as SealedKey, KID, KEY)).toThrow(SealError);
    expect(() => unseal(null as unknown as SealedKey, KID, KEY)).toThrow(SealError);
  });
});

describe("parseEncryptionKey", () => {
  // Bytes whose base64 has both '+' and '/', and whose base64url has both '-' and '_'.
  const bytes = Buffer.alloc(32, 0xfb);
  bytes[1] = 0xff;
  bytes[2] = 0xbf;
  const standard = bytes.toString("base64");
  const urlSafe = bytes.toString("base64url");

  it("the fixture really exercises both alphabets", () => {
    expect(standard).toMatch(/\+/);
    expect(standard).toMatch(/\//);
    expect(standard).toMatch(/=$/);
    expect(urlSafe).toMatch(/-/);
    expect(urlSafe).toMatch(/_/);
  });

  it("accepts 32 bytes in base64", () => {
    expect(parseEncryptionKey(standard).equals(bytes)).toBe(true);
  });

  it("accepts 32 bytes in base64url (with or without padding)", () => {
    expect(parseEncryptionKey(urlSafe).equals(bytes)).toBe(true);
    expect(parseEncryptionKey(`${urlSafe}=`).equals(bytes)).toBe(true);
  });

  it("ignores surrounding whitespace (a trailing newline from a secret file)", () => {
    expect(parseEncryptionKey(` ${standard}\n`).equals(bytes)).toBe(true);
  });

  it("the parsed key seals and unseals", () => {
    const key = parseEncryptionKey(randomBytes(32).toString("base64"));
    expect(unseal(seal(PLAINTEXT, KID, key), KID, key)).toBe(PLAINTEXT);
  });

  it.each([
    [16, "base64", randomBytes(16).toString("base64")],
    [33, "base64", randomBytes(33).toString("base64")],
    [16, "base64url", randomBytes(16).toString("base64url")],
    [33, "base64url", randomBytes(33).toString("base64url")],
    [31, "base64", randomBytes(31).toString("base64")],
    [0, "empty", ""],
  ])("rejects %i bytes (%s) with a SealError that says 32 bytes", (n, _encoding, raw) => {
    let err: unknown;
    try {
      parseEncryptionKey(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SealError);
    expect((err as Error).message).toMatch(/KEYS_ENCRYPTION_KEY must be 32 bytes/);
    expect((err as Error).message).toContain(`got ${n} bytes`);
  });
});
