// What the key lifecycle needs from a key store. Two implementations pass one contract suite:
// storage/file-key-store.ts (KEY_STORE=file) and storage/prisma/database-key-store.ts
// (KEY_STORE=database).
import type { StoredKey } from "./signing-key.ts";

export type KeyStatePatch = Partial<Pick<StoredKey, "state" | "activatedAt" | "retiredAt">>;

/** Operations inside one exclusive key-store transaction. */
export interface KeyStoreTx {
  list(): Promise<StoredKey[]>;
  insert(key: StoredKey): Promise<void>;
  update(kid: string, patch: KeyStatePatch): Promise<void>;
  remove(kid: string): Promise<void>;
}

/** KEY_STORE: key files in KEYS_DIR, or sealed rows in the database. */
export type KeyStoreKind = "file" | "database";

export interface KeyStore {
  readonly kind: KeyStoreKind;
  list(): Promise<StoredKey[]>;
  /**
   * Runs `fn` exclusively across processes (file lock, or a locked row in a database
   * transaction). The database store commits all of `fn` or nothing; the file store applies
   * each step atomically, and a crash between steps leaves a state the next run repairs.
   */
  transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T>;
  /** A named 32-byte server secret, created on first use, shared by every instance. */
  secret(name: string): Promise<Buffer>;
}
