// Private keys at rest: AES-256-GCM under KEYS_ENCRYPTION_KEY, with the kid bound as
// associated data, so a sealed key cannot be swapped onto another kid and a wrong key or a
// flipped bit is detected (the tag fails) instead of yielding garbage.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export interface SealedKey {
  v: 1;
  alg: "A256GCM";
  iv: string;
  ct: string;
  tag: string;
}

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealError";
  }
}

/** KEYS_ENCRYPTION_KEY: exactly 32 bytes, base64 (standard or url-safe). */
export function parseEncryptionKey(raw: string): Buffer {
  const key = Buffer.from(raw.trim(), /[-_]/.test(raw) ? "base64url" : "base64");
  if (key.length !== 32) throw new SealError(`KEYS_ENCRYPTION_KEY must be 32 bytes, base64-encoded (got ${key.length} bytes)`);
  return key;
}

export function seal(plaintext: string, kid: string, key: Buffer): SealedKey {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(`tessera key ${kid}`, "utf8"));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return { v: 1, alg: "A256GCM", iv: iv.toString("base64url"), ct: ct.toString("base64url"), tag: cipher.getAuthTag().toString("base64url") };
}

export function unseal(sealed: SealedKey, kid: string, key: Buffer): string {
  if (sealed?.v !== 1 || sealed.alg !== "A256GCM") throw new SealError(`key ${kid}: unknown sealing format`);
  try {
    // A full 16-byte tag only: GCM would otherwise accept a truncated (forgeable) one.
    const tag = Buffer.from(sealed.tag, "base64url");
    if (tag.length !== 16) throw new Error("bad tag length");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(sealed.iv, "base64url"), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(`tessera key ${kid}`, "utf8"));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(sealed.ct, "base64url")), decipher.final()]).toString("utf8");
  } catch {
    throw new SealError(`KEYS_ENCRYPTION_KEY cannot decrypt key ${kid}: wrong encryption key, or the sealed key was altered`);
  }
}
