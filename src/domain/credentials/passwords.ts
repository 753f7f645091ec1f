// Password hashing: argon2id at or above OWASP's minimum (m=19 MiB, t=2, p=1), with rehash of
// hashes made under weaker parameters, and NIST SP 800-63B §5.1.1.2 rules (length only,
// Unicode NFKC normalisation).
import argon2 from "argon2";
import { InvalidRequest } from "../errors.ts";
import { Bulkhead } from "./bulkhead.ts";

/** argon2id cost (ARGON2_* in config.ts). */
export interface Argon2Params {
  /** memory cost in KiB */
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export function normalizePassword(password: string): string {
  return password.normalize("NFKC");
}

/**
 * NIST 800-63B: 8..1024 characters (code points), no composition rules. NUL and unpaired
 * surrogates are not characters a password can hold here: the OAuth endpoints refuse any
 * parameter with them (http/params.ts), so such a password could never be used at the token
 * endpoint, and UTF-8 encodes every unpaired surrogate as the same U+FFFD before hashing.
 */
export function checkPasswordPolicy(password: string): void {
  if (/\0|\p{Cs}/u.test(password)) throw new InvalidRequest("The password contains characters that cannot be used (NUL, or an unpaired UTF-16 surrogate).");
  const length = [...password].length;
  if (length < PASSWORD_MIN) throw new InvalidRequest(`The password must be at least ${PASSWORD_MIN} characters long.`);
  if (length > PASSWORD_MAX) throw new InvalidRequest(`The password must be at most ${PASSWORD_MAX} characters long.`);
}

export interface VerifyResult {
  ok: boolean;
  needsRehash: boolean;
}

export class PasswordHasher {
  readonly #options: { type: typeof argon2.argon2id; memoryCost: number; timeCost: number; parallelism: number };
  readonly #bulkhead: Bulkhead;
  #dummyHash: Promise<string> | undefined;

  constructor(params: Argon2Params, limits: { concurrency: number; queue: number }) {
    this.#options = {
      type: argon2.argon2id,
      memoryCost: params.memoryCost,
      timeCost: params.timeCost,
      parallelism: params.parallelism,
    };
    this.#bulkhead = new Bulkhead(limits.concurrency, limits.queue);
  }

  /** password hashes running / waiting right now (for metrics) */
  get load(): { running: number; waiting: number } {
    return { running: this.#bulkhead.running, waiting: this.#bulkhead.waiting };
  }

  hash(password: string): Promise<string> {
    return this.#bulkhead.run(() => argon2.hash(normalizePassword(password), this.#options));
  }

  async verify(hash: string, password: string): Promise<VerifyResult> {
    const ok = await this.#bulkhead.run(async () => {
      try {
        return await argon2.verify(hash, normalizePassword(password));
      } catch {
        return false; // a malformed stored hash never authenticates
      }
    });
    return { ok, needsRehash: ok && this.#weakerThanConfigured(hash) };
  }

  /**
   * Rehash only upwards. argon2.needsRehash is true whenever parameters differ, so during a
   * rolling upgrade an instance still on lower parameters would downgrade fresh hashes.
   */
  #weakerThanConfigured(hash: string): boolean {
    const m = /^\$argon2id\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(hash);
    if (!m) return true; // another variant, or unparseable: replace it
    const [v, mem, t, p] = m.slice(1).map(Number) as [number, number, number, number];
    const configured = this.#options;
    return v < 0x13 || mem < configured.memoryCost || t < configured.timeCost || p < configured.parallelism;
  }

  /**
   * Same cost as a real verification, for unknown users: "no such user" and "wrong password"
   * must take the same time (the hash is made once, with the configured parameters).
   */
  async verifyDummy(password: string): Promise<void> {
    this.#dummyHash ??= argon2.hash("tessera dummy password", this.#options);
    const dummy = await this.#dummyHash;
    await this.verify(dummy, password);
  }
}
