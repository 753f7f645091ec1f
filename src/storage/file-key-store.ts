// File key store (KEY_STORE=file, the default): one JSON file per key in KEYS_DIR, mode 0600,
// written atomically (temp file, fsync, then link for new files / rename for updates, then an
// fsync of the directory so the new name survives a power cut). With KEYS_ENCRYPTION_KEY set,
// private keys and the server secret are sealed (AES-256-GCM, kid as AAD).
//
// Whoever can write KEYS_DIR or a key file can make the issuer sign with a key they know, so the
// store refuses to work (and the server to start) with a message saying what to fix when:
// - KEYS_DIR is writable by group or others, or owned by someone else than this user or root;
// - a key, secret or lock file is a symlink, not a regular file, not owned by this user, or
//   readable/writable by group or others;
// - KEYS_ENCRYPTION_KEY is set and a private key or the secret is in plaintext (`keys seal`
//   seals them; see sealAll).
// Error messages name files, modes and owners, never anything read from a file: a key file may
// hold a private key, and these messages end up in logs.
import fs from "node:fs/promises";
import type { JWK } from "jose";
import type { KeyStatePatch, KeyStore, KeyStoreTx } from "../domain/keys/key-store.ts";
import { seal, unseal, type SealedKey } from "../domain/keys/sealing.ts";
import { KEY_STATES, keyMetaJson, SIGNING_ALGS, type KeyState, type SigningAlg, type StoredKey } from "../domain/keys/signing-key.ts";
import { replaceFileAtomic, syncDir, writeNewFileAtomic } from "./files/atomic-write.ts";
import { withDirLock } from "./files/dir-lock.ts";
import { errCode } from "./files/errno.ts";
import { inDir, openKeysDir, parseJson, readPrivateFile, SEAL_HINT, type Where } from "./files/private-files.ts";
import { KeyStoreError } from "./key-store-error.ts";
import { loadOrCreateSecret, readSecretFile, sealedSecretContent } from "./secret-file.ts";

interface KeyFile {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  activatedAt?: string | null;
  retiredAt?: string | null;
  privateJwk?: JWK;
  sealed?: SealedKey;
}

const KID_RE = /^[A-Za-z0-9_-]{1,128}$/;

const dateOrNull = (s: string | null | undefined): Date | null => (s ? new Date(s) : null);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A private JWK as far as the store can tell without importing it. */
const isPrivateJwk = (v: unknown): v is JWK => isObject(v) && typeof v.kty === "string" && typeof v.d === "string";

interface ReadKey {
  key: StoredKey;
  /** the private key is (also) in the clear on disk */
  plaintext: boolean;
}

interface SealReport {
  /** kids whose files were rewritten sealed */
  sealedKeys: string[];
  alreadySealedKeys: string[];
  /** secret names (`<name>.secret`) rewritten sealed */
  sealedSecrets: string[];
  alreadySealedSecrets: string[];
}

export class FileKeyStore implements KeyStore {
  readonly kind = "file" as const;

  constructor(
    readonly dir: string,
    private readonly encryptionKey: Buffer | null = null,
  ) {}

  private fileOf(dir: Where, kid: string): Where {
    // The kid is not echoed: it may come from a file, and messages never carry file contents.
    if (!KID_RE.test(kid)) throw new KeyStoreError("invalid kid: expected 1 to 128 characters from A-Z a-z 0-9 _ -");
    return inDir(dir, `${kid}.json`);
  }

  private where(real: string): Where {
    return { real, shown: this.dir };
  }

  private async readKey(file: Where, allowPlaintext: boolean): Promise<ReadKey> {
    const parsed = parseJson(await readPrivateFile(file, "key file"), file.shown, "key file");
    const f = (isObject(parsed) ? parsed : {}) as Partial<KeyFile>;
    const { kid, alg, state, createdAt } = f;
    if (
      typeof kid !== "string" ||
      !KID_RE.test(kid) ||
      !SIGNING_ALGS.includes(alg as SigningAlg) ||
      !KEY_STATES.includes(state as KeyState) ||
      typeof createdAt !== "string" ||
      Number.isNaN(Date.parse(createdAt))
    ) {
      throw new KeyStoreError(`${file.shown} is not a valid key file (missing or bad kid, alg, state or createdAt); restore it from backup or remove it`);
    }
    const plaintext = f.privateJwk !== undefined && f.privateJwk !== null;
    if (plaintext && this.encryptionKey && !allowPlaintext) {
      throw new KeyStoreError(`${file.shown} holds its private key in plaintext although KEYS_ENCRYPTION_KEY is set; ${SEAL_HINT}`);
    }
    let privateJwk: JWK;
    if (f.sealed !== undefined && f.sealed !== null) {
      if (!this.encryptionKey) throw new KeyStoreError(`${file.shown} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
      privateJwk = this.unsealJwk(f.sealed, kid, file.shown);
    } else if (isPrivateJwk(f.privateJwk)) {
      privateJwk = f.privateJwk;
    } else {
      throw new KeyStoreError(`${file.shown} is not a valid key file (no private key); restore it from backup or remove it`);
    }
    return {
      plaintext,
      key: {
        kid,
        alg: alg as SigningAlg,
        state: state as KeyState,
        createdAt: new Date(createdAt),
        // Files written before lifecycle timestamps existed: an active key became active when created.
        activatedAt: dateOrNull(f.activatedAt) ?? (state === "active" ? new Date(createdAt) : null),
        retiredAt: dateOrNull(f.retiredAt),
        privateJwk,
      },
    };
  }

  /** Own messages rather than the unseal/JSON errors: those may carry the kid or the plaintext. */
  private unsealJwk(sealed: unknown, kid: string, file: string): JWK {
    let text: string;
    try {
      text = unseal(sealed as SealedKey, kid, this.encryptionKey!);
    } catch {
      throw new KeyStoreError(
        `${file}: KEYS_ENCRYPTION_KEY cannot decrypt key in this file: wrong encryption key, the file was altered, or the sealed key is in an unknown format`,
      );
    }
    let jwk: unknown;
    try {
      jwk = JSON.parse(text) as unknown;
    } catch {
      jwk = null;
    }
    if (!isPrivateJwk(jwk)) throw new KeyStoreError(`${file} is not a valid key file (the sealed private key is not a JWK); restore it from backup or remove it`);
    return jwk;
  }

  private serialize(k: StoredKey): string {
    const file: KeyFile = {
      ...keyMetaJson(k),
      ...(this.encryptionKey
        ? { sealed: seal(JSON.stringify(k.privateJwk), k.kid, this.encryptionKey) }
        : { privateJwk: k.privateJwk }),
    };
    return JSON.stringify(file, null, 2) + "\n";
  }

  private async keyNames(dir: Where): Promise<string[]> {
    return (await fs.readdir(dir.real)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
  }

  private async listIn(dir: Where, allowPlaintext = false): Promise<ReadKey[]> {
    const names = await this.keyNames(dir);
    return Promise.all(names.map((n) => this.readKey(inDir(dir, n), allowPlaintext)));
  }

  async list(): Promise<StoredKey[]> {
    const dir = await openKeysDir(this.dir);
    return (await this.listIn(dir)).map((r) => r.key);
  }

  async transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return withDirLock(this.dir, (real) => {
      const dir = this.where(real);
      return fn({
        list: async () => (await this.listIn(dir)).map((r) => r.key),
        insert: async (k) => writeNewFileAtomic(this.fileOf(dir, k.kid).real, this.serialize(k)),
        update: async (kid, patch: KeyStatePatch) => {
          const file = this.fileOf(dir, kid);
          const { key: current } = await this.readKey(file, false);
          await replaceFileAtomic(file.real, this.serialize({ ...current, ...patch }));
        },
        remove: async (kid) => {
          const file = this.fileOf(dir, kid);
          try {
            await fs.unlink(file.real);
          } catch (err) {
            if (errCode(err) === "ENOENT") return;
            throw err;
          }
          await syncDir(dir.real);
        },
      });
    });
  }

  secret(name: string): Promise<Buffer> {
    return loadOrCreateSecret(this.dir, name, undefined, this.encryptionKey);
  }

  /**
   * `keys seal`: under the lock, rewrites every key file and secret that is in plaintext sealed
   * with KEYS_ENCRYPTION_KEY (each atomically). Everything is read and checked first, so a file
   * that cannot be read (or a sealed one this key cannot open) stops it before anything changes.
   * Idempotent: sealed files are left as they are.
   */
  async sealAll(): Promise<SealReport> {
    const key = this.encryptionKey;
    if (!key) throw new KeyStoreError("keys seal needs KEYS_ENCRYPTION_KEY: set it to the key the server will run with (32 bytes, base64: openssl rand -base64 32)");
    return withDirLock(this.dir, async (real) => {
      const dir = this.where(real);
      const keys = await this.listIn(dir, true);
      const secretNames = (await fs.readdir(dir.real))
        .filter((n) => n.endsWith(".secret") && !n.startsWith("."))
        .map((n) => n.slice(0, -".secret".length))
        .sort();
      const secrets = await Promise.all(
        secretNames.map(async (name) => ({ name, ...(await readSecretFile(inDir(dir, `${name}.secret`), name, key, true)) })),
      );
      const report: SealReport = { sealedKeys: [], alreadySealedKeys: [], sealedSecrets: [], alreadySealedSecrets: [] };
      for (const { key: k, plaintext } of keys) {
        if (!plaintext) {
          report.alreadySealedKeys.push(k.kid);
          continue;
        }
        const file = this.fileOf(dir, k.kid);
        await replaceFileAtomic(file.real, this.serialize(k));
        // What is on disk now opens with this key to the same private key, or we say so.
        const back = await this.readKey(file, false);
        if (JSON.stringify(back.key.privateJwk) !== JSON.stringify(k.privateJwk)) throw new KeyStoreError(`${file.shown}: sealing did not round-trip; restore it from backup`);
        report.sealedKeys.push(k.kid);
      }
      for (const s of secrets) {
        if (!s.plaintext) {
          report.alreadySealedSecrets.push(s.name);
          continue;
        }
        await replaceFileAtomic(inDir(dir, `${s.name}.secret`).real, sealedSecretContent(s.secret, s.name, key));
        report.sealedSecrets.push(s.name);
      }
      return report;
    });
  }
}
