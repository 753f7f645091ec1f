// Refresh tokens are opaque 256-bit values. Only SHA-256(token) is stored: a database leak
// yields no usable token, and a fast hash is right for high-entropy values (no brute force).
//
// A child token is derived from its parent with a server secret, HMAC(secret, parent). That
// lets a retry inside the grace window get back the *same* child without the plain child
// ever being stored: the server recomputes it from the token the client presents.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { randomToken } from "../ids.ts";

export const hashRefreshToken = (token: string): string =>
  createHash("sha256").update(token, "utf8").digest("base64url");

export const newRefreshToken = randomToken;

export function deriveChildToken(secret: Buffer, parent: string): string {
  return createHmac("sha256", secret).update("tessera refresh-token child\0").update(parent, "utf8").digest("base64url");
}

/** Shape check before any database work: 43 base64url characters (32 bytes). */
export const looksLikeRefreshToken = (s: string): boolean => /^[A-Za-z0-9_-]{43}$/.test(s);

export function sameHash(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
