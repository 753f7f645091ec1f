// The server secret file, KEYS_DIR/<name>.secret: 32 random bytes, base64, created once with
// mode 0600 and never overwritten; sealed (AES-256-GCM, `secret:<name>` as AAD) when
// KEYS_ENCRYPTION_KEY is set.
import { randomBytes } from "node:crypto";
import { seal, unseal, type SealedKey } from "../domain/keys/sealing.ts";
import { writeNewFileAtomic } from "./files/atomic-write.ts";
import { errCode } from "./files/errno.ts";
import { inDir, openKeysDir, parseJson, readPrivateFile, SEAL_HINT, type Where } from "./files/private-files.ts";
import { KeyStoreError } from "./key-store-error.ts";

const SECRET_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

export const sealedSecretContent = (secret: Buffer, name: string, key: Buffer) => JSON.stringify(seal(secret.toString("base64"), `secret:${name}`, key)) + "\n";

/** Reads and checks a secret file; with `allowPlaintext` (only `keys seal`), a plain one is returned as such. */
export async function readSecretFile(file: Where, name: string, encryptionKey: Buffer | null, allowPlaintext: boolean): Promise<{ secret: Buffer; plaintext: boolean }> {
  const stored = (await readPrivateFile(file, "secret file")).trim();
  let encoded = stored;
  const plaintext = !stored.startsWith("{");
  if (!plaintext) {
    if (!encryptionKey) throw new KeyStoreError(`${file.shown} is encrypted; set KEYS_ENCRYPTION_KEY to the key it was sealed with`);
    const sealed = parseJson(stored, file.shown, "secret file");
    try {
      encoded = unseal(sealed as SealedKey, `secret:${name}`, encryptionKey);
    } catch {
      throw new KeyStoreError(`${file.shown}: KEYS_ENCRYPTION_KEY cannot decrypt this secret: wrong encryption key, or the file was altered`);
    }
  } else if (encryptionKey && !allowPlaintext) {
    throw new KeyStoreError(`${file.shown} holds the ${name} secret in plaintext although KEYS_ENCRYPTION_KEY is set; ${SEAL_HINT}`);
  }
  const secret = Buffer.from(encoded, "base64");
  if (secret.length !== 32) throw new KeyStoreError(`${file.shown} is not a valid secret (expected 32 bytes, base64); restore it from backup or remove it`);
  return { secret, plaintext };
}

/**
 * A 32-byte server secret kept next to the keys (created on first start), unless given in the
 * environment. Used to derive successor refresh tokens. With KEYS_ENCRYPTION_KEY it is sealed
 * like the keys, and a plaintext one is refused (`keys seal` seals it).
 */
export async function loadOrCreateSecret(dir: string, name: string, fromEnv?: string, encryptionKey: Buffer | null = null): Promise<Buffer> {
  if (fromEnv) {
    const secret = Buffer.from(fromEnv, "base64");
    if (secret.length < 32) throw new KeyStoreError(`the ${name} secret from the environment must be at least 32 bytes, base64`);
    return secret;
  }
  if (!SECRET_NAME_RE.test(name)) throw new KeyStoreError("invalid secret name");
  const where = await openKeysDir(dir);
  const file = inDir(where, `${name}.secret`);
  const fresh = randomBytes(32);
  const content = encryptionKey ? sealedSecretContent(fresh, name, encryptionKey) : fresh.toString("base64") + "\n";
  try {
    await writeNewFileAtomic(file.real, content);
  } catch (err) {
    if (errCode(err) !== "EEXIST") throw err;
  }
  return (await readSecretFile(file, name, encryptionKey, false)).secret;
}
