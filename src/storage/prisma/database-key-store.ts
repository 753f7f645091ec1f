// Database key store (KEY_STORE=database): keys in the SigningKey table, always sealed. A
// rotation is one database transaction that first updates the single KeyLock row, so
// concurrent rotations (two cron hosts, several instances) run one after another and a crash
// rolls the whole rotation back.
import { randomBytes } from "node:crypto";
import type { JWK } from "jose";
import { KEY_STATES, SIGNING_ALGS, type StoredKey } from "../../domain/keys/signing-key.ts";
import { seal, unseal, type SealedKey } from "../../domain/keys/sealing.ts";
import { KeyStoreError } from "../key-store-error.ts";
import type { KeyStore, KeyStoreTx } from "../../domain/keys/key-store.ts";
import { inPrismaTransaction, type Db } from "./client.ts";
import { isUniqueViolation } from "./errors.ts";


interface SigningKeyRow {
  kid: string;
  alg: string;
  state: string;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  sealed: string;
}

type TxClient = Pick<Db, "signingKey" | "keyLock">;

export class DatabaseKeyStore implements KeyStore {
  readonly kind = "database" as const;

  constructor(
    private readonly db: Db,
    private readonly encryptionKey: Buffer,
  ) {}

  private toStored(row: SigningKeyRow): StoredKey {
    const alg = SIGNING_ALGS.find((a) => a === row.alg);
    const state = KEY_STATES.find((s) => s === row.state);
    if (!alg || !state) throw new KeyStoreError(`signing key ${row.kid} in the database has a bad alg or state`);
    let privateJwk: JWK;
    try {
      privateJwk = JSON.parse(unseal(JSON.parse(row.sealed) as SealedKey, row.kid, this.encryptionKey)) as JWK;
    } catch (err) {
      throw new KeyStoreError(`signing key ${row.kid} in the database: ${(err as Error).message}`);
    }
    return { kid: row.kid, alg, state, createdAt: row.createdAt, activatedAt: row.activatedAt, retiredAt: row.retiredAt, privateJwk };
  }

  private async listWith(db: TxClient): Promise<StoredKey[]> {
    const rows = await db.signingKey.findMany({ orderBy: { createdAt: "asc" } });
    return rows.map((r) => this.toStored(r));
  }

  list(): Promise<StoredKey[]> {
    return this.listWith(this.db);
  }

  async transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    return this.db.$transaction(
      // The audit events the key manager records inside go through `tx` (client.ts).
      (tx) => inPrismaTransaction.run(tx, () => this.insideTransaction(tx, fn)),
      // Key generation (RSA) runs inside; a waiting rotation queues on the lock row.
      { maxWait: 10_000, timeout: 30_000 },
    );
  }

  private async insideTransaction<T>(tx: TxClient, fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    // Lock first: every rotation takes this row lock before it reads the keys.
    await tx.keyLock.update({ where: { id: 1 }, data: { version: { increment: 1 } } });
    return fn({
      list: () => this.listWith(tx),
      insert: async (k) => {
        await tx.signingKey.create({
          data: {
            kid: k.kid,
            alg: k.alg,
            state: k.state,
            createdAt: k.createdAt,
            activatedAt: k.activatedAt,
            retiredAt: k.retiredAt,
            sealed: JSON.stringify(seal(JSON.stringify(k.privateJwk), k.kid, this.encryptionKey)),
          },
        });
      },
      update: async (kid, patch) => {
        await tx.signingKey.update({ where: { kid }, data: patch });
      },
      remove: async (kid) => {
        await tx.signingKey.deleteMany({ where: { kid } });
      },
    });
  }

  async secret(name: string): Promise<Buffer> {
    const existing = await this.db.serverSecret.findUnique({ where: { name } });
    if (!existing) {
      const value = randomBytes(32).toString("base64");
      try {
        await this.db.serverSecret.create({
          data: { name, sealed: JSON.stringify(seal(value, `secret:${name}`, this.encryptionKey)), createdAt: new Date() },
        });
      } catch (err) {
        if (!isUniqueViolation(err)) throw err; // another instance created it first
      }
      return this.secret(name);
    }
    try {
      return Buffer.from(unseal(JSON.parse(existing.sealed) as SealedKey, `secret:${name}`, this.encryptionKey), "base64");
    } catch (err) {
      throw new KeyStoreError(`server secret ${name} in the database: ${(err as Error).message}`);
    }
  }
}
