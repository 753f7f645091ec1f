// Signing keys in memory: which key signs, and the JWKS bytes verifiers fetch.
// The JWKS is built once per key set from an explicit allow-list of public members
// (RFC 7517 §4, RFC 7518 §6), so a private member can never leak into it.
import type { JWK } from "jose";
import { publish, type PublishedDocument } from "../published.ts";
import { publicPart, type SigningAlg, type SigningKey } from "./signing-key.ts";

export function publicJwkOf(key: Pick<SigningKey, "kid" | "alg" | "publicJwk">): JWK {
  return { ...publicPart(key.publicJwk), kid: key.kid, use: "sig", alg: key.alg };
}

export type PublishedJwks = PublishedDocument;

export function publishJwks(keys: readonly SigningKey[]): PublishedJwks {
  return publish(Buffer.from(JSON.stringify({ keys: keys.map(publicJwkOf) })));
}

export class NoSigningKeyError extends Error {
  constructor(alg: string) {
    super(`no active signing key for ${alg}`);
    this.name = "NoSigningKeyError";
  }
}

export class KeyRing {
  #keys: readonly SigningKey[] = [];
  #jwks: PublishedJwks = publishJwks([]);

  constructor(
    keys: readonly SigningKey[],
    readonly preferredAlg: SigningAlg,
  ) {
    this.replace(keys);
  }

  /** Swap in a new key set (after a reload); readers see either the old or the new set. */
  replace(keys: readonly SigningKey[]): void {
    this.#keys = [...keys];
    // Every known key is published: next (so caches hold it before it signs), active, retired.
    this.#jwks = publishJwks(this.#keys);
  }

  get keys(): readonly SigningKey[] {
    return this.#keys;
  }

  get jwks(): PublishedJwks {
    return this.#jwks;
  }

  /**
   * The key that signs new tokens: the newest active key of the preferred algorithm, or, while
   * a deployment moves to that algorithm and its key is not yet active, the newest active key of
   * another. Never a next or retired key.
   */
  signer(alg: SigningAlg = this.preferredAlg): SigningKey {
    const actives = this.#keys.filter((k) => k.state === "active").sort(newestFirst);
    const key = actives.find((k) => k.alg === alg) ?? actives[0];
    if (!key) throw new NoSigningKeyError(alg);
    return key;
  }

  hasSigner(): boolean {
    return this.#keys.some((k) => k.state === "active");
  }
}

const newestFirst = (a: SigningKey, b: SigningKey) =>
  (b.activatedAt ?? b.createdAt).getTime() - (a.activatedAt ?? a.createdAt).getTime() || a.kid.localeCompare(b.kid);
