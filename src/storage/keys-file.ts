// File key store (KEY_STORE=file, the default): one JSON file per key in KEYS_DIR, mode 0600,
// written atomically (temp file, fsync, then link for new files / rename for updates). A key
// file readable by group or others, or unreadable, stops the start with a message that says what
// to do. With KEYS_ENCRYPTION_KEY set, private keys are sealed (AES-256-GCM, kid as AAD).
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { JWK } from "jose";
import type { SigningAlg } from "../config.ts";
import { SIGNING_ALGS } from "../config.ts";
import { generateKey, toSigningKey } from "../domain/keys/generate.ts";
import type { SigningKey } from "../domain/keys/key-ring.ts";
import type { KeyState } from "../domain/keys/lifecycle.ts";
import { seal, unseal, type SealedKey } from "../domain/keys/sealing.ts";
import type { KeyStatePatch, KeyStore, KeyStoreTx, StoredKey } from "./ports.ts";

export class KeyStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyStoreError";
  }
}

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

const KEY_STATES: readonly KeyState[] = ["next", "active", "retired"];

async function checkOwnerOnly(file: string): Promise<void> {
  const st = await fs.stat(file);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8);
    throw new KeyStoreError(
      `${file} is readable by group or others (mode ${mode}); private keys must be owner-only. Fix with: chmod 600 ${file}`,
    );
  }
}

async function writeTemp(dir: string, data: string | Buffer): Promise<string> {
  const tmp = path.join(dir, `.tmp-${randomBytes(8).toString("hex")}`);
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Write `data` to `file` atomically with mode 0600; fails with EEXIST if the file exists. */
export async function writeNewFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = await writeTemp(path.dirname(file), data);
  try {
    await fs.link(tmp, file); // atomic, and refuses to replace an existing file
  } finally {
    await fs.unlink(tmp);
  }
}

/** Replace `file` atomically (readers see the old or the new content, never a mix). */
async function replaceFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = await writeTemp(path.dirname(file), data);
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

const LOCK_STALE_MS = 30_000;

/**
 * Runs `fn` holding KEYS_DIR's lock file (created with O_EXCL, so one holder across processes).
 * A lock older than 30 s is from a crashed holder and is broken.
 */
export async function withDirLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  await ensureDir(dir);
  const lock = path.join(dir, ".lock");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await fs.open(lock, "wx", 0o600);
      await fh.writeFile(`${process.pid} ${new Date().toISOString()}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const st = await fs.stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
        await fs.unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) throw new KeyStoreError(`${lock} is held by another process; remove it if no rotation is running`);
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.unlink(lock).catch(() => undefined);
  }
}

const dateOrNull = (s: string | null | undefined): Date | null => (s ? new Date(s) : null);

export class FileKeyStore implements KeyStore {
  readonly kind = "file" as const;

  constructor(
    readonly dir: string,
    private readonly encryptionKey: Buffer | null = null,
  ) {}

  private fileOf(kid: string): string {
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(kid)) throw new KeyStoreError(`invalid kid ${JSON.stringify(kid)}`);
    return path.join(this.dir, `${kid}.json`);
  }

  private async parse(file: string): Promise<StoredKey> {
    await checkOwnerOnly(file);
    let parsed: KeyFile;
    try {
      parsed = JSON.parse(await fs.readFile(file, "utf8")) as KeyFile;
    } catch (err) {
      throw new KeyStoreError(`${file} is not a valid key file (${(err as Error).message}); restore it from backup or remove it`);
    }
    const { kid, alg, state, createdAt } = parsed ?? ({} as KeyFile);
    if (typeof kid !== "string" || !SIGNING_ALGS.includes(alg) || !KEY_STATES.includes(state) || Number.isNaN(Date.parse(createdAt))) {
      throw new KeyStoreError(`${file} is not a valid key file (missing or bad kid, alg, state or createdAt)`);
    }
    let privateJwk: JWK;
    if (parsed.sealed) {
      if (!this.encryptionKey) throw new KeyStoreError(`${file} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
      try {
        privateJwk = JSON.parse(unseal(parsed.sealed, kid, this.encryptionKey)) as JWK;
      } catch (err) {
        throw new KeyStoreError(`${file}: ${(err as Error).message}`);
      }
    } else if (parsed.privateJwk && typeof parsed.privateJwk === "object") {
      privateJwk = parsed.privateJwk;
    } else {
      throw new KeyStoreError(`${file} is not a valid key file (no private key)`);
    }
    return {
      kid,
      alg,
      state,
      createdAt: new Date(createdAt),
      // Files written before lifecycle timestamps existed: an active key became active when created.
      activatedAt: dateOrNull(parsed.activatedAt) ?? (state === "active" ? new Date(createdAt) : null),
      retiredAt: dateOrNull(parsed.retiredAt),
      privateJwk,
    };
  }

  private serialize(k: StoredKey): string {
    const file: KeyFile = {
      kid: k.kid,
      alg: k.alg,
      state: k.state,
      createdAt: k.createdAt.toISOString(),
      activatedAt: k.activatedAt?.toISOString() ?? null,
      retiredAt: k.retiredAt?.toISOString() ?? null,
      ...(this.encryptionKey
        ? { sealed: seal(JSON.stringify(k.privateJwk), k.kid, this.encryptionKey) }
        : { privateJwk: k.privateJwk }),
    };
    return JSON.stringify(file, null, 2) + "\n";
  }

  async list(): Promise<StoredKey[]> {
    await ensureDir(this.dir);
    const names = (await fs.readdir(this.dir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
    return Promise.all(names.map((n) => this.parse(path.join(this.dir, n))));
  }

  async transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return withDirLock(this.dir, () =>
      fn({
        list: () => this.list(),
        insert: async (k) => writeNewFileAtomic(this.fileOf(k.kid), this.serialize(k)),
        update: async (kid, patch: KeyStatePatch) => {
          const current = await this.parse(this.fileOf(kid));
          await replaceFileAtomic(this.fileOf(kid), this.serialize({ ...current, ...patch }));
        },
        remove: async (kid) => {
          await fs.unlink(this.fileOf(kid)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== "ENOENT") throw err;
          });
        },
      }),
    );
  }

  secret(name: string): Promise<Buffer> {
    return loadOrCreateSecret(this.dir, name, undefined, this.encryptionKey);
  }
}

/**
 * A 32-byte server secret kept next to the keys (created on first start), unless given in the
 * environment. Used to derive successor refresh tokens.
 */
export async function loadOrCreateSecret(dir: string, name: string, fromEnv?: string, encryptionKey: Buffer | null = null): Promise<Buffer> {
  if (fromEnv) {
    const secret = Buffer.from(fromEnv, "base64");
    if (secret.length < 32) throw new KeyStoreError(`the ${name} secret from the environment must be at least 32 bytes, base64`);
    return secret;
  }
  await ensureDir(dir);
  const file = path.join(dir, `${name}.secret`);
  // With KEYS_ENCRYPTION_KEY the secret is sealed like the keys; a plain file from before
  // encryption was turned on is still read.
  const fresh = randomBytes(32).toString("base64");
  const content = encryptionKey ? JSON.stringify(seal(fresh, `secret:${name}`, encryptionKey)) : fresh;
  try {
    await writeNewFileAtomic(file, content + "\n");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  await checkOwnerOnly(file);
  const stored = (await fs.readFile(file, "utf8")).trim();
  let encoded = stored;
  if (stored.startsWith("{")) {
    if (!encryptionKey) throw new KeyStoreError(`${file} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
    try {
      encoded = unseal(JSON.parse(stored) as SealedKey, `secret:${name}`, encryptionKey);
    } catch (err) {
      throw new KeyStoreError(`${file}: ${(err as Error).message}`);
    }
  }
  const secret = Buffer.from(encoded, "base64");
  if (secret.length !== 32) throw new KeyStoreError(`${file} is not a valid secret (expected 32 bytes, base64)`);
  return secret;
}
