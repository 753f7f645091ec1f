// A signing key: its algorithm, its lifecycle state, and its two forms (as stored, with the
// private JWK; in memory, imported once as a CryptoKey). Defined once, used by the lifecycle
// rules, the key ring, both key stores and the config.
import { importJWK, type CryptoKey, type JWK, type KeyObject } from "jose";

/** The algorithms Tessera signs with (RFC 7518 §3.1, RFC 8037 §3.1); never `none`, never HMAC. */
export const SIGNING_ALGS = ["ES256", "RS256", "PS256", "EdDSA"] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export const KEY_STATES = ["next", "active", "retired"] as const;
export type KeyState = (typeof KEY_STATES)[number];

/** A signing key as stored: lifecycle metadata plus the private JWK (already unsealed). */
export interface StoredKey {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  privateJwk: JWK;
}

/** What the lifecycle rules and the operator see of a key: everything but the key material. */
export type KeyMeta = Omit<StoredKey, "privateJwk">;

export function keyMeta(k: KeyMeta): KeyMeta {
  return { kid: k.kid, alg: k.alg, state: k.state, createdAt: k.createdAt, activatedAt: k.activatedAt, retiredAt: k.retiredAt };
}

/** A key's metadata as JSON (ISO 8601 times): the key file's fields and the operator's view. */
export function keyMetaJson(k: KeyMeta) {
  return {
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    createdAt: k.createdAt.toISOString(),
    activatedAt: k.activatedAt?.toISOString() ?? null,
    retiredAt: k.retiredAt?.toISOString() ?? null,
  };
}

/** A signing key in memory: the private key imported once. */
export interface SigningKey extends KeyMeta {
  privateKey: CryptoKey | KeyObject;
  /** public JWK as exported; filtered again when published */
  publicJwk: JWK;
}

/** The allow-list of public JWK members (RFC 7517 §4, RFC 7518 §6): nothing private can pass. */
const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "n", "e"] as const;

export function publicPart(jwk: JWK): JWK {
  const out: JWK = {};
  for (const m of PUBLIC_MEMBERS) if (typeof jwk[m] === "string") out[m] = jwk[m];
  return out;
}

/** Stored key -> in-memory signing key (imports the private key once). */
export async function toSigningKey(k: StoredKey): Promise<SigningKey> {
  const privateKey = await importJWK(k.privateJwk, k.alg);
  if (privateKey instanceof Uint8Array) throw new Error(`key ${k.kid} is not an asymmetric key`);
  return { ...keyMeta(k), privateKey, publicJwk: publicPart(k.privateJwk) };
}
