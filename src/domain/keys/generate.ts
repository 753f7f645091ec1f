// New signing keys. The kid is the RFC 7638 thumbprint of the public key.
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import { publicPart, type KeyState, type SigningAlg, type StoredKey } from "./signing-key.ts";

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
