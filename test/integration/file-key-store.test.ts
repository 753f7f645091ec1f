// The file key store on a real filesystem: owner-only files, created once and never
// overwritten, refused when readable by others or corrupt, and safe when instances race.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import type { AuditLogger } from "../../src/domain/audit.ts";
import { KeyRing } from "../../src/domain/keys/key-ring.ts";
import type { SigningAlg } from "../../src/domain/keys/signing-key.ts";
import { toSigningKey } from "../../src/domain/keys/signing-key.ts";
import { KeyManager } from "../../src/domain/keys/key-manager.ts";
import { createServices, keyPolicy } from "../../src/services.ts";
import { FileKeyStore } from "../../src/storage/file-key-store.ts";
import { KeyStoreError } from "../../src/storage/key-store-error.ts";
import { loadOrCreateSecret } from "../../src/storage/secret-file.ts";
import type { ClientRecord } from "../../src/domain/clients/client-store.ts";
import type { Storage } from "../../src/storage/storage.ts";

/** Every key in `dir`, imported for signing (what an instance's key reload produces). */
async function loadKeys(dir: string) {
  return Promise.all((await new FileKeyStore(dir).list()).map(toSigningKey));
}

/** What a server does at start (createServices): KeyManager.ensureInitialKey on the file store. */
async function ensureSigningKey(dir: string, alg: SigningAlg, now: Date) {
  const manager = new KeyManager({
    store: new FileKeyStore(dir),
    clock: { now: () => now },
    policy: keyPolicy(loadConfig({})),
    signingAlg: alg,
  });
  await manager.ensureInitialKey();
  return loadKeys(dir);
}

const tmpDirs: string[] = [];
function tmp(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tessera-keysfile-"));
  tmpDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const mode = (file: string) => statSync(file).mode & 0o777;
const keyFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".json") && !n.startsWith("."));
const NOW = new Date("2030-01-01T00:00:00Z");

/** The one key file in `dir` (whatever it is named), checked to hold `kid`. */
function onlyKeyFile(dir: string, kid: string): string {
  const files = keyFiles(dir);
  expect(files, `key files in ${dir}`).toHaveLength(1);
  const file = path.join(dir, files[0]!);
  expect((JSON.parse(readFileSync(file, "utf8")) as { kid: string }).kid).toBe(kid);
  return file;
}

describe("keys file store", () => {
  it("ensureSigningKey on a new dir creates it 0700 with exactly one 0600 key file and returns that key", async () => {
    const dir = path.join(tmp(), "keys"); // does not exist yet
    const keys = await ensureSigningKey(dir, "ES256", NOW);
    expect(mode(dir)).toBe(0o700);
    expect(keys).toHaveLength(1);
    const [key] = keys;
    expect(key).toMatchObject({ alg: "ES256", state: "active", createdAt: NOW });
    const file = onlyKeyFile(dir, key!.kid);
    expect(mode(file)).toBe(0o600);
    // No temp file left behind.
    expect(readdirSync(dir).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    // The file holds the private key; what the ring publishes does not.
    const stored = JSON.parse(readFileSync(file, "utf8")) as { kid: string; privateJwk: Record<string, string> };
    expect(stored.kid).toBe(key!.kid);
    expect(typeof stored.privateJwk.d).toBe("string");
    expect(key!.publicJwk).not.toHaveProperty("d");
    expect(new KeyRing(keys, "ES256").signer().kid).toBe(key!.kid);
  });

  it("a second ensureSigningKey loads the same key and writes nothing", async () => {
    const dir = path.join(tmp(), "keys");
    const [first] = await ensureSigningKey(dir, "ES256", NOW);
    const file = onlyKeyFile(dir, first!.kid);
    const before = { content: readFileSync(file, "utf8"), mtimeMs: statSync(file).mtimeMs, names: readdirSync(dir).sort() };
    const again = await ensureSigningKey(dir, "ES256", new Date(NOW.getTime() + 86400_000));
    expect(again.map((k) => k.kid)).toEqual([first!.kid]);
    expect(again[0]!.createdAt).toEqual(NOW);
    expect(readdirSync(dir).sort()).toEqual(before.names);
    expect(readFileSync(file, "utf8")).toBe(before.content);
    expect(statSync(file).mtimeMs).toBe(before.mtimeMs);
    expect((await loadKeys(dir)).map((k) => k.kid)).toEqual([first!.kid]);
  });

  it("a key file readable by group or others is refused: KeyStoreError naming the file and saying chmod 600", async () => {
    const dir = tmp();
    const [key] = await ensureSigningKey(dir, "ES256", NOW);
    const file = onlyKeyFile(dir, key!.kid);
    for (const bad of [0o644, 0o640, 0o604]) {
      chmodSync(file, bad);
      const err = await loadKeys(dir).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `mode ${bad.toString(8)}`).toBeInstanceOf(KeyStoreError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toContain("chmod 600");
      // ensureSigningKey refuses too, rather than creating a replacement.
      await expect(ensureSigningKey(dir, "ES256", NOW)).rejects.toBeInstanceOf(KeyStoreError);
      expect(keyFiles(dir)).toEqual([path.basename(file)]);
    }
    chmodSync(file, 0o600);
    expect((await loadKeys(dir)).map((k) => k.kid)).toEqual([key!.kid]);
  });

  it("a corrupted key file is a KeyStoreError and is left exactly as it was", async () => {
    const dir = tmp();
    const [key] = await ensureSigningKey(dir, "ES256", NOW);
    const file = onlyKeyFile(dir, key!.kid);
    const corrupt = '{"kid": "abc", "alg": "ES256", "privateJwk": {"kty": "EC", "d": "trunc';
    writeFileSync(file, corrupt, { mode: 0o600 });
    const err = await loadKeys(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeyStoreError);
    expect((err as Error).message).toContain(file);
    await expect(ensureSigningKey(dir, "ES256", NOW)).rejects.toBeInstanceOf(KeyStoreError);
    expect(readFileSync(file, "utf8")).toBe(corrupt);
    expect(mode(file)).toBe(0o600);
    // Nothing new but the lock file (.lock.db: kept on purpose, the OS lock lives on it).
    expect(readdirSync(dir).filter((n) => n !== ".lock.db").sort()).toEqual([path.basename(file)]);

    // Valid JSON, wrong shape: refused as well, untouched.
    const wrongShape = JSON.stringify({ kid: "k", alg: "HS256", state: "active", createdAt: "x", privateJwk: {} });
    writeFileSync(file, wrongShape, { mode: 0o600 });
    await expect(loadKeys(dir)).rejects.toBeInstanceOf(KeyStoreError);
    expect(readFileSync(file, "utf8")).toBe(wrongShape);
  });

  it("5 concurrent ensureSigningKey calls on an empty dir all succeed and all sign with the same kid", async () => {
    // Run the race a few times: the interleaving differs from round to round.
    for (let round = 0; round < 40; round++) {
      const dir = path.join(tmp(), "keys");
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => ensureSigningKey(dir, "ES256", new Date(NOW.getTime() + i * 1000))),
      );
      const signers = results.map((keys) => new KeyRing(keys, "ES256").signer().kid);
      expect(new Set(signers).size, `round ${round}: signers ${signers.join(", ")}`).toBe(1);
      // What every instance signs with is what every instance publishes.
      for (const keys of results) expect(keys.map((k) => k.kid)).toContain(signers[0]);
      // And a later start agrees with them.
      expect(new KeyRing(await loadKeys(dir), "ES256").signer().kid).toBe(signers[0]);
      for (const f of keyFiles(dir)) expect(mode(path.join(dir, f))).toBe(0o600);
    }
  });

  it("loadOrCreateSecret: 32 bytes, the same on every call, in a 0600 file; concurrent first calls agree", async () => {
    const dir = tmp();
    const a = await loadOrCreateSecret(dir, "refresh-token");
    expect(a).toHaveLength(32);
    const file = path.join(dir, "refresh-token.secret");
    expect(mode(file)).toBe(0o600);
    const content = readFileSync(file, "utf8");
    const b = await loadOrCreateSecret(dir, "refresh-token");
    expect(b.equals(a)).toBe(true);
    expect(readFileSync(file, "utf8")).toBe(content);
    // A different name is a different secret.
    const other = await loadOrCreateSecret(dir, "other");
    expect(other.equals(a)).toBe(false);

    const fresh = tmp();
    const racing = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateSecret(fresh, "refresh-token")));
    for (const s of racing) expect(s.equals(racing[0]!)).toBe(true);
    expect(readdirSync(fresh)).toEqual(["refresh-token.secret"]);
  });

  it("loadOrCreateSecret with KEYS_ENCRYPTION_KEY: the secret is sealed at rest and only that key opens it", async () => {
    const dir = tmp();
    const key = randomBytes(32);
    const secret = await loadOrCreateSecret(dir, "refresh-token", undefined, key);
    expect(secret).toHaveLength(32);
    const onDisk = readFileSync(path.join(dir, "refresh-token.secret"), "utf8");
    expect(onDisk).not.toContain(secret.toString("base64"));
    expect(JSON.parse(onDisk)).toMatchObject({ v: 1, alg: "A256GCM" });
    expect((await loadOrCreateSecret(dir, "refresh-token", undefined, key)).equals(secret)).toBe(true);
    await expect(loadOrCreateSecret(dir, "refresh-token", undefined, randomBytes(32))).rejects.toThrow(/KEYS_ENCRYPTION_KEY/);
    await expect(loadOrCreateSecret(dir, "refresh-token")).rejects.toThrow(/KEYS_ENCRYPTION_KEY/);
    expect(readFileSync(path.join(dir, "refresh-token.secret"), "utf8")).toBe(onDisk);
  });

  it("loadOrCreateSecret: a world-readable secret file is refused", async () => {
    const dir = tmp();
    await loadOrCreateSecret(dir, "refresh-token");
    chmodSync(path.join(dir, "refresh-token.secret"), 0o644);
    await expect(loadOrCreateSecret(dir, "refresh-token")).rejects.toBeInstanceOf(KeyStoreError);
  });

  it("loadOrCreateSecret: an env secret of 32+ bytes is used as is (no file); a shorter one is refused", async () => {
    const dir = tmp();
    const good = Buffer.alloc(32, 7);
    expect((await loadOrCreateSecret(dir, "refresh-token", good.toString("base64"))).equals(good)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
    for (const short of [Buffer.alloc(16, 1).toString("base64"), Buffer.alloc(31, 1).toString("base64"), "not base64 at all!"]) {
      const err = await loadOrCreateSecret(dir, "refresh-token", short).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, short).toBeInstanceOf(KeyStoreError);
      expect((err as Error).message).toMatch(/at least 32 bytes/);
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("createServices and the key files", () => {
  const silent: AuditLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

  /** Just enough storage for createServices to finish when the keys are fine. */
  function stubStorage(): Storage & { upserts: ClientRecord[]; closed: number } {
    const upserts: ClientRecord[] = [];
    const s = {
      upserts,
      closed: 0,
      users: {} as Storage["users"],
      sessions: {} as Storage["sessions"],
      audit: { record: async () => undefined, list: async () => [], page: async () => [], prune: async () => 0 },
      clients: {
        findById: async () => null,
        upsert: async (c: ClientRecord) => {
          upserts.push(c);
          return c;
        },
      } as unknown as Storage["clients"],
      ping: async () => undefined,
      close: async () => {
        s.closed++;
      },
      isUnavailable: () => false,
      revocations: {} as Storage["revocations"],
      loginThrottle: {} as Storage["loginThrottle"],
      // An empty database as far as the token status lists go (createServices builds them).
      statusIndices: { reserve: async () => 0, reserved: async () => 0 },
      revokedIndices: { revokedIndices: async () => [] },
      keyStore: () => {
        throw new Error("the file key store is under test");
      },
    };
    return s;
  }

  const configFor = (keysDir: string, env: Record<string, string> = {}) =>
    loadConfig({ ISSUER: "https://issuer.test", DATABASE_URL: "file:/nonexistent/never-opened.db", KEYS_DIR: keysDir, LOG_LEVEL: "silent", ...env });
  const withSecret = { REFRESH_TOKEN_SECRET: Buffer.alloc(32, 1).toString("base64") };

  it("starts with owner-only key files (the control)", async () => {
    const dir = tmp();
    await ensureSigningKey(dir, "ES256", NOW);
    const storage = stubStorage();
    const services = await createServices(configFor(dir, withSecret), silent, { storage });
    expect(services.keys.hasSigner()).toBe(true);
    expect(storage.upserts.map((c) => c.id)).toEqual(["web"]);
  });

  it("refuses to start with a world-readable key file", async () => {
    const dir = tmp();
    const [key] = await ensureSigningKey(dir, "ES256", NOW);
    const file = onlyKeyFile(dir, key!.kid);
    chmodSync(file, 0o644);
    const storage = stubStorage();
    const err = await createServices(configFor(dir, withSecret), silent, { storage }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeyStoreError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toContain("chmod 600");
    // Nothing was written on the way down, and the caller's storage is left for the caller.
    expect(storage.upserts).toEqual([]);
    expect(storage.closed).toBe(0);
    expect(keyFiles(dir)).toEqual([path.basename(file)]);
    expect(mode(file)).toBe(0o644);
  });

  it("refuses to start with a world-readable refresh-token secret file", async () => {
    const dir = tmp();
    await ensureSigningKey(dir, "ES256", NOW);
    await loadOrCreateSecret(dir, "refresh-token");
    chmodSync(path.join(dir, "refresh-token.secret"), 0o604);
    await expect(createServices(configFor(dir), silent, { storage: stubStorage() })).rejects.toBeInstanceOf(KeyStoreError);
  });
});
