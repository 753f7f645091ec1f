// New signing keys. The kid is the RFC 7638 thumbprint of the public key.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { SigningAlg } from "../../config.ts";
import type { StoredKey } from "../../storage/ports.ts";
import type { KeyState, SigningKey } from "./key-ring.ts";

/** The allow-list of public JWK members (RFC 7517 §4, RFC 7518 §6): nothing private can pass. */
const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "n", "e"] as const;

export function publicPart(jwk: JWK): JWK {
  const out: JWK = {};
  for (const m of PUBLIC_MEMBERS) if (typeof jwk[m] === "string") out[m] = jwk[m];
  return out;
}

export async function generateKey(alg: SigningAlg, state: KeyState, now: Date, rsaModulusLength = 2048): Promise<StoredKey> {
  const options = alg === "RS256" || alg === "PS256" ? { modulusLength: rsaModulusLength, extractable: true } : { extractable: true };
  const { privateKey } = await generateKeyPair(alg, options);
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(publicPart(privateJwk), "sha256");
  return {
    kid,
    alg,
    state,
    createdAt: now,
    activatedAt: state === "active" ? now : null,
    retiredAt: state === "retired" ? now : null,
    privateJwk: { ...privateJwk, kid, alg },
  };
}

/** Stored key -> in-memory signing key (imports the private key once). */
export async function toSigningKey(k: StoredKey): Promise<SigningKey> {
  const privateKey = await importJWK(k.privateJwk, k.alg);
  if (privateKey instanceof Uint8Array) throw new Error(`key ${k.kid} is not an asymmetric key`);
  return {
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    createdAt: k.createdAt,
    activatedAt: k.activatedAt,
    retiredAt: k.retiredAt,
    privateKey,
    publicJwk: publicPart(k.privateJwk),
  };
}
