// File key store: one JSON file per key in KEYS_DIR, mode 0600, written atomically (temp
// file, fsync, link into place), never overwritten. A key file that is readable by group or
// others, or unreadable, stops the start with a message that says what to do.
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { SigningAlg } from "../config.ts";
import { SIGNING_ALGS } from "../config.ts";
import type { KeyState, SigningKey } from "../domain/keys/key-ring.ts";

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
  privateJwk: JWK;
}

const KEY_STATES: readonly KeyState[] = ["next", "active", "retired"];
const PUBLIC_ONLY = ["kty", "crv", "x", "y", "n", "e"] as const;

async function checkOwnerOnly(file: string): Promise<void> {
  const st = await fs.stat(file);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8);
    throw new KeyStoreError(
      `${file} is readable by group or others (mode ${mode}); private keys must be owner-only. Fix with: chmod 600 ${file}`,
    );
  }
}

/** Write `data` to `file` atomically with mode 0600; fails with EEXIST if the file exists. */
export async function writeNewFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${randomBytes(8).toString("hex")}`);
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.link(tmp, file); // atomic, and refuses to replace an existing file
  } finally {
    await fs.unlink(tmp);
  }
}

async function ensureDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

async function parseKeyFile(file: string): Promise<SigningKey> {
  await checkOwnerOnly(file);
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(await fs.readFile(file, "utf8")) as KeyFile;
  } catch (err) {
    throw new KeyStoreError(`${file} is not a valid key file (${(err as Error).message}); restore it from backup or remove it`);
  }
  const { kid, alg, state, createdAt, privateJwk } = parsed ?? ({} as KeyFile);
  if (
    typeof kid !== "string" ||
    !SIGNING_ALGS.includes(alg) ||
    !KEY_STATES.includes(state) ||
    Number.isNaN(Date.parse(createdAt)) ||
    typeof privateJwk !== "object" ||
    privateJwk === null
  ) {
    throw new KeyStoreError(`${file} is not a valid key file (missing or bad kid, alg, state, createdAt or privateJwk)`);
  }
  try {
    const privateKey = await importJWK(privateJwk, alg);
    const publicJwk: JWK = {};
    for (const m of PUBLIC_ONLY) if (typeof privateJwk[m] === "string") publicJwk[m] = privateJwk[m];
    return { kid, alg, state, createdAt: new Date(createdAt), privateKey: privateKey as SigningKey["privateKey"], publicJwk };
  } catch (err) {
    throw new KeyStoreError(`${file} holds a key that cannot be imported as ${alg} (${(err as Error).message})`);
  }
}

export async function loadKeys(dir: string): Promise<SigningKey[]> {
  await ensureDir(dir);
  const names = (await fs.readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
  return Promise.all(names.map((n) => parseKeyFile(path.join(dir, n))));
}

export async function generateSigningKey(alg: SigningAlg, state: KeyState, createdAt: Date): Promise<{ key: SigningKey; file: KeyFile }> {
  const options = alg === "RS256" || alg === "PS256" ? { modulusLength: 2048, extractable: true } : { extractable: true };
  const { privateKey } = await generateKeyPair(alg, options);
  const privateJwk = await exportJWK(privateKey);
  const publicJwk: JWK = {};
  for (const m of PUBLIC_ONLY) if (typeof privateJwk[m] === "string") publicJwk[m] = privateJwk[m];
  // RFC 7638 thumbprint: a stable kid derived from the public key itself.
  const kid = await calculateJwkThumbprint(publicJwk, "sha256");
  const key: SigningKey = { kid, alg, state, createdAt, privateKey, publicJwk };
  return { key, file: { kid, alg, state, createdAt: createdAt.toISOString(), privateJwk: { ...privateJwk, kid, alg } } };
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

/** Loads the keys; on first start (no key at all) generates the first, active key. */
export async function ensureSigningKey(dir: string, alg: SigningAlg, now: Date): Promise<SigningKey[]> {
  const keys = await loadKeys(dir);
  if (keys.some((k) => k.state === "active" && k.alg === alg)) return keys;
  // Instances starting together on an empty KEYS_DIR: the lock makes exactly one create the key.
  return withDirLock(dir, async () => {
    const current = await loadKeys(dir);
    if (current.some((k) => k.state === "active" && k.alg === alg)) return current;
    const { key, file } = await generateSigningKey(alg, "active", now);
    await writeNewFileAtomic(path.join(dir, `${key.kid}.json`), JSON.stringify(file, null, 2) + "\n");
    return loadKeys(dir);
  });
}

/**
 * A 32-byte server secret kept next to the keys (created on first start), unless given in the
 * environment. Used to derive successor refresh tokens.
 */
export async function loadOrCreateSecret(dir: string, name: string, fromEnv?: string): Promise<Buffer> {
  if (fromEnv) {
    const secret = Buffer.from(fromEnv, "base64");
    if (secret.length < 32) throw new KeyStoreError(`the ${name} secret from the environment must be at least 32 bytes, base64`);
    return secret;
  }
  await ensureDir(dir);
  const file = path.join(dir, `${name}.secret`);
  try {
    await writeNewFileAtomic(file, randomBytes(32).toString("base64") + "\n");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  await checkOwnerOnly(file);
  const secret = Buffer.from((await fs.readFile(file, "utf8")).trim(), "base64");
  if (secret.length !== 32) throw new KeyStoreError(`${file} is not a valid secret (expected 32 bytes, base64)`);
  return secret;
}

