// One contract for every key store: the file store (plain and sealed) and the database store on
// each database. Storage round trips, sealing at rest, transactions, and KeyManager on top
// (concurrent runs, crashes between the steps of a rotation, revocation, server secrets).
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { compactVerify, CompactSign, importJWK } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SIGNING_ALGS, type SigningAlg } from "../../src/domain/keys/signing-key.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { generateKey } from "../../src/domain/keys/generate.ts";
import { toSigningKey } from "../../src/domain/keys/signing-key.ts";
import { KeyManager, type AppliedAction } from "../../src/domain/keys/key-manager.ts";
import { KeyRing, publicJwkOf } from "../../src/domain/keys/key-ring.ts";
import type { KeyPolicy } from "../../src/domain/keys/lifecycle.ts";
import { FileKeyStore } from "../../src/storage/file-key-store.ts";
import { withDirLock } from "../../src/storage/files/dir-lock.ts";
import { KeyStoreError } from "../../src/storage/key-store-error.ts";
import { openPrismaStorage, type PrismaStorage } from "../../src/storage/prisma/index.ts";
import type { KeyStore, KeyStoreTx } from "../../src/domain/keys/key-store.ts";
import type { StoredKey } from "../../src/domain/keys/signing-key.ts";
import { flavors, freshDatabase, type Flavor } from "../helpers/issuer.ts";

const ENC_KEY = randomBytes(32);
const OTHER_KEY = randomBytes(32);
const POLICY: KeyPolicy = {
  jwksMaxAge: 60,
  keyPublishMargin: 30,
  clockSkew: 60,
  reloadInterval: 10,
  accessTokenTtl: 900,
  rotationInterval: 3600,
};
// ms precision on purpose: both databases keep milliseconds.
const T0 = new Date("2030-01-01T00:00:00.123Z");

// ---- targets ----

interface Backend {
  store: KeyStore;
  /** the same storage opened with another encryption key (null: none) */
  reopen(encryptionKey: Buffer | null): KeyStore;
  /** an independent instance on the same storage (another host: own connection) */
  another(): Promise<KeyStore>;
  /**
   * An instance that runs transactions concurrently with this one, in this process. The same
   * as another() except on SQLite: better-sqlite3 waits for a busy database synchronously,
   * which would block the one event loop both connections share (a deadlock that two real
   * processes do not have), so there it is a second store on the same client, whose
   * transactions the adapter queues.
   */
  peer(): Promise<KeyStore>;
  /** the stored form (files or rows), to check what is at rest and that nothing changed */
  storedForm(): Promise<string>;
  close(): Promise<void>;
}

interface Target {
  name: string;
  kind: "file" | "database";
  sealed: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<Backend>;
}

function fileTarget(sealed: boolean): Target {
  return {
    name: `file (${sealed ? "sealed" : "plain"})`,
    kind: "file",
    sealed,
    setup: async () => undefined,
    teardown: async () => undefined,
    async fresh() {
      const dir = path.join(mkdtempSync(path.join(os.tmpdir(), "tessera-contract-")), "keys");
      const key = sealed ? ENC_KEY : null;
      return {
        store: new FileKeyStore(dir, key),
        reopen: (k) => new FileKeyStore(dir, k),
        another: async () => new FileKeyStore(dir, key),
        peer: async () => new FileKeyStore(dir, key),
        storedForm: async () => fileSnapshot(dir),
        close: async () => rmSync(path.dirname(dir), { recursive: true, force: true }),
      };
    },
  };
}

/** Every file in the dir (but the lock) with its mode and content. */
function fileSnapshot(dir: string): string {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n !== ".lock").sort();
  } catch {
    return "(no dir)";
  }
  return names
    .map((n) => {
      const f = path.join(dir, n);
      return `== ${n} ${(statSync(f).mode & 0o777).toString(8)}\n${readFileSync(f, "utf8")}`;
    })
    .join("\n");
}

function databaseTarget(flavor: Flavor): Target {
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let storage: PrismaStorage | undefined;
  const extra: PrismaStorage[] = [];
  return {
    name: `database [${flavor}]`,
    kind: "database",
    sealed: true,
    async setup() {
      db = await freshDatabase(flavor);
      storage = await openPrismaStorage(db.url);
    },
    async teardown() {
      await storage?.close();
      await db?.drop();
    },
    async fresh() {
      const s = storage!;
      await s.db.signingKey.deleteMany();
      await s.db.serverSecret.deleteMany();
      const another = async () => {
        const other = await openPrismaStorage(db!.url);
        extra.push(other);
        return other.keyStore(ENC_KEY);
      };
      return {
        store: s.keyStore(ENC_KEY),
        reopen: (k) => {
          if (!k) throw new Error("the database store always has an encryption key");
          return s.keyStore(k);
        },
        another,
        peer: async () => (flavor === "sqlite" ? s.keyStore(ENC_KEY) : another()),
        storedForm: async () =>
          JSON.stringify({
            keys: await s.db.signingKey.findMany({ orderBy: { kid: "asc" } }),
            secrets: await s.db.serverSecret.findMany({ orderBy: { name: "asc" } }),
          }),
        close: async () => {
          for (const o of extra.splice(0)) await o.close();
        },
      };
    },
  };
}

const targets: Target[] = [fileTarget(false), fileTarget(true), ...flavors().map(databaseTarget)];

// ---- helpers ----

class Crash extends Error {
  constructor(readonly after: string) {
    super(`simulated crash after ${after}`);
  }
}

function managerOn(store: KeyStore, clock: FakeClock, afterStep?: (s: AppliedAction) => void, signingAlg: SigningAlg = "ES256") {
  return new KeyManager({ store, clock, policy: POLICY, signingAlg, afterStep });
}

/** Throws once, right after the first step of that kind. */
function crashAfter(kind: AppliedAction["action"]) {
  let done = false;
  return (s: AppliedAction) => {
    if (!done && s.action === kind) {
      done = true;
      throw new Crash(kind);
    }
  };
}

/**
 * Wraps a store to watch every step inside its transactions: the fewest active keys ever seen
 * after a step (what a reloading instance of the file store, or the transaction itself, sees).
 */
function watched(inner: KeyStore) {
  const seen: number[] = [];
  const look = async (tx: KeyStoreTx) => seen.push((await tx.list()).filter((k) => k.state === "active").length);
  const store: KeyStore = {
    kind: inner.kind,
    list: () => inner.list(),
    secret: (n) => inner.secret(n),
    transaction: (fn) =>
      inner.transaction((tx) =>
        fn({
          list: () => tx.list(),
          insert: async (k) => {
            await tx.insert(k);
            await look(tx);
          },
          update: async (kid, patch) => {
            await tx.update(kid, patch);
            await look(tx);
          },
          remove: async (kid) => {
            await tx.remove(kid);
            await look(tx);
          },
        }),
      ),
  };
  return { store, minActive: () => Math.min(Infinity, ...seen), steps: () => seen.length };
}

const states = (keys: StoredKey[]) =>
  Object.fromEntries(keys.map((k) => [k.kid, k.state] as const).sort(([a], [b]) => a.localeCompare(b)));
const ofState = (keys: StoredKey[], state: StoredKey["state"], alg: SigningAlg = "ES256") =>
  keys.filter((k) => k.state === state && k.alg === alg);
const meta = (k: StoredKey) => ({
  kid: k.kid,
  alg: k.alg,
  state: k.state,
  createdAt: k.createdAt.getTime(),
  activatedAt: k.activatedAt?.getTime() ?? null,
  retiredAt: k.retiredAt?.getTime() ?? null,
});
const byKid = (keys: StoredKey[]) => [...keys].sort((a, b) => a.kid.localeCompare(b.kid));

async function insert(store: KeyStore, ...keys: StoredKey[]): Promise<void> {
  await store.transaction(async (tx) => {
    for (const k of keys) await tx.insert(k);
  });
}

async function signsAndVerifies(k: StoredKey): Promise<void> {
  const signing = await toSigningKey(k);
  const jws = await new CompactSign(new TextEncoder().encode(`hello ${k.kid}`)).setProtectedHeader({ alg: k.alg, kid: k.kid }).sign(signing.privateKey);
  const publicKey = await importJWK(publicJwkOf(signing), k.alg);
  const { payload } = await compactVerify(jws, publicKey);
  expect(new TextDecoder().decode(payload)).toBe(`hello ${k.kid}`);
}

/** A, active since T0; N, next since T0 + 1 s; the clock moved on until A is due and N activatable. */
async function promotionDue(store: KeyStore, clock: FakeClock): Promise<{ a: StoredKey; n: StoredKey }> {
  const m = managerOn(store, clock);
  await m.ensureInitialKey();
  clock.advance(1);
  await m.rotate();
  const keys = await store.list();
  const a = ofState(keys, "active")[0]!;
  const n = ofState(keys, "next")[0]!;
  expect(keys).toHaveLength(2);
  clock.advance(POLICY.rotationInterval);
  return { a, n };
}

// ---- the contract ----

for (const target of targets) {
  describe(`key store contract: ${target.name}`, () => {
    let b: Backend;
    let store: KeyStore;
    let clock: FakeClock;

    beforeAll(() => target.setup());
    afterAll(() => target.teardown());
    beforeEach(async () => {
      b = await target.fresh();
      store = b.store;
      clock = new FakeClock(T0);
    });
    afterEach(async () => b?.close());

    // -- storage --

    it("list() of an empty store is []", async () => {
      expect(await store.list()).toEqual([]);
      expect(store.kind).toBe(target.kind);
    });

    it("insert then list round-trips kid, alg, state, timestamps and a private key that still signs (every algorithm)", async () => {
      const keys: StoredKey[] = [];
      for (const [i, alg] of SIGNING_ALGS.entries()) {
        const k = await generateKey(alg, "next", new Date(T0.getTime() + i * 1001));
        keys.push(k);
      }
      // Every state and timestamp combination the lifecycle uses.
      keys[1] = { ...keys[1]!, state: "active", activatedAt: new Date(T0.getTime() + 5_555) };
      keys[2] = { ...keys[2]!, state: "retired", activatedAt: new Date(T0.getTime() + 7_007), retiredAt: new Date(T0.getTime() + 9_009) };
      await insert(store, ...keys);

      const listed = await store.list();
      expect(byKid(listed).map(meta)).toEqual(byKid(keys).map(meta));
      for (const k of keys) {
        const got = listed.find((l) => l.kid === k.kid)!;
        expect(got.createdAt).toBeInstanceOf(Date);
        expect(got.privateJwk).toEqual(k.privateJwk);
        expect(typeof got.privateJwk.d).toBe("string");
        await signsAndVerifies(got);
      }
      // Another instance reads the same.
      expect(byKid(await (await b.another()).list()).map(meta)).toEqual(byKid(keys).map(meta));
    });

    it("inserting a kid that exists is refused and leaves the stored key as it was", async () => {
      const k = await generateKey("ES256", "active", T0);
      await insert(store, k);
      const before = await b.storedForm();
      await expect(insert(store, { ...k, state: "retired", retiredAt: T0 })).rejects.toThrow();
      expect(await b.storedForm()).toBe(before);
      expect((await store.list()).map(meta)).toEqual([meta(k)]);
    });

    it("update changes state and timestamps of that key only", async () => {
      const a = await generateKey("ES256", "active", T0);
      const n = await generateKey("ES256", "next", T0);
      await insert(store, a, n);
      const t1 = new Date(T0.getTime() + 3_600_000);
      await store.transaction(async (tx) => {
        await tx.update(n.kid, { state: "active", activatedAt: t1 });
        await tx.update(a.kid, { state: "retired", retiredAt: t1 });
      });
      const listed = byKid(await store.list());
      expect(listed.map(meta)).toEqual(
        byKid([
          { ...n, state: "active", activatedAt: t1 },
          { ...a, state: "retired", retiredAt: t1 },
        ]).map(meta),
      );
      // The private key is untouched by an update.
      expect(listed.find((k) => k.kid === n.kid)!.privateJwk).toEqual(n.privateJwk);
      await signsAndVerifies(listed.find((k) => k.kid === n.kid)!);
    });

    it("remove deletes the key; removing an unknown kid is a no-op", async () => {
      const a = await generateKey("ES256", "active", T0);
      const r = await generateKey("ES256", "retired", T0);
      await insert(store, a, r);
      await store.transaction((tx) => tx.remove(r.kid));
      expect((await store.list()).map((k) => k.kid)).toEqual([a.kid]);
      const before = await b.storedForm();
      await store.transaction((tx) => tx.remove("unknown-kid"));
      await store.transaction((tx) => tx.remove(r.kid)); // already gone
      expect(await b.storedForm()).toBe(before);
      expect((await store.list()).map((k) => k.kid)).toEqual([a.kid]);
    });

    it(
      target.sealed
        ? "the stored form does not contain the private key (sealed)"
        : "the stored form holds the private key in the clear (plain file store, owner-only)",
      async () => {
        const k = await generateKey("ES256", "active", T0);
        await insert(store, k);
        const d = k.privateJwk.d!;
        expect(d.length).toBeGreaterThan(20);
        const stored = await b.storedForm();
        expect(stored).toContain(k.kid);
        if (target.sealed) {
          expect(stored).not.toContain(d);
          expect(stored).not.toMatch(/\\?"d\\?"\s*:/);
          expect(stored).toContain("A256GCM");
        } else {
          expect(stored).toContain(d);
          expect(stored).toMatch(/ 600\n/);
        }
      },
    );

    if (target.sealed) {
      it("opened with another encryption key: list() rejects with a KeyStoreError naming KEYS_ENCRYPTION_KEY; nothing is modified", async () => {
        const m = managerOn(store, clock);
        await m.ensureInitialKey();
        await m.rotate();
        await store.secret("refresh-token");
        const before = await b.storedForm();

        const wrong = b.reopen(OTHER_KEY);
        const err = await wrong.list().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(KeyStoreError);
        expect((err as Error).message).toMatch(/KEYS_ENCRYPTION_KEY/);
        expect((err as Error).message).not.toContain(ENC_KEY.toString("base64"));
        expect((err as Error).message).not.toContain(OTHER_KEY.toString("base64"));
        // Nothing built on that store writes either.
        const wrongManager = managerOn(wrong, clock);
        clock.advance(POLICY.rotationInterval * 2);
        await expect(wrongManager.ensureInitialKey()).rejects.toBeInstanceOf(KeyStoreError);
        await expect(wrongManager.rotate()).rejects.toBeInstanceOf(KeyStoreError);
        await expect(wrongManager.rotateNow()).rejects.toBeInstanceOf(KeyStoreError);
        if (target.kind === "database") await expect(wrong.secret("refresh-token")).rejects.toThrow(/KEYS_ENCRYPTION_KEY/);
        expect(await b.storedForm()).toBe(before);
        // The right key still opens everything.
        expect(await store.list()).toHaveLength(2);
      });

      if (target.kind === "file") {
        it("opened without an encryption key: list() rejects with a KeyStoreError naming KEYS_ENCRYPTION_KEY", async () => {
          await managerOn(store, clock).ensureInitialKey();
          const before = await b.storedForm();
          const err = await b
            .reopen(null)
            .list()
            .then(
              () => null,
              (e: unknown) => e,
            );
          expect(err).toBeInstanceOf(KeyStoreError);
          expect((err as Error).message).toMatch(/encrypted; set KEYS_ENCRYPTION_KEY/);
          expect(await b.storedForm()).toBe(before);
        });
      }
    }

    // -- transactions --

    if (target.kind === "database") {
      it("a transaction that throws keeps nothing of it (rolled back), and the next transaction works", async () => {
        const a = await generateKey("ES256", "active", T0);
        await insert(store, a);
        const before = await b.storedForm();
        const n = await generateKey("ES256", "next", T0);
        await expect(
          store.transaction(async (tx) => {
            await tx.insert(n);
            await tx.update(a.kid, { state: "retired", retiredAt: T0 });
            expect((await tx.list()).map((k) => k.kid).sort()).toEqual([a.kid, n.kid].sort()); // seen inside
            throw new Error("boom");
          }),
        ).rejects.toThrow("boom");
        expect(await b.storedForm()).toBe(before);
        expect((await store.list()).map(meta)).toEqual([meta(a)]);
        await insert(store, n);
        expect(await store.list()).toHaveLength(2);
      });
    } else {
      it("a transaction that throws keeps each completed step (documented), releases the lock, and the next transaction works", async () => {
        const a = await generateKey("ES256", "active", T0);
        await insert(store, a);
        const n = await generateKey("ES256", "next", T0);
        await expect(
          store.transaction(async (tx) => {
            await tx.insert(n);
            await tx.update(a.kid, { state: "retired", retiredAt: T0 });
            throw new Error("boom");
          }),
        ).rejects.toThrow("boom");
        expect(states(await store.list())).toEqual(states([n, { ...a, state: "retired" }]));
        const r = await generateKey("ES256", "retired", T0);
        await insert(store, r); // would time out if the lock were kept
        expect(await store.list()).toHaveLength(3);
      });
    }

    // -- KeyManager on the store --

    it("ensureInitialKey on an empty store creates exactly one active key; a second call does nothing", async () => {
      const m = managerOn(store, clock);
      const applied = await m.ensureInitialKey();
      expect(applied).toEqual([{ action: "create_active", kid: expect.any(String), alg: "ES256", detail: "first key" }]);
      const keys = await store.list();
      expect(keys.map(meta)).toEqual([
        { kid: applied[0]!.kid, alg: "ES256", state: "active", createdAt: T0.getTime(), activatedAt: T0.getTime(), retiredAt: null },
      ]);
      expect(await m.ensureInitialKey()).toEqual([]);
      expect((await store.list()).map(meta)).toEqual(keys.map(meta));
    });

    it.each([2, 5])("%i concurrent ensureInitialKey calls (several instances starting) leave exactly one key, active", async (n) => {
      const stores = [store, ...(await Promise.all(Array.from({ length: n - 1 }, () => b.peer())))];
      const results = await Promise.all(stores.map((s) => managerOn(s, clock).ensureInitialKey()));
      expect(results.flat().filter((a) => a.action === "create_active")).toHaveLength(1);
      const keys = await store.list();
      expect(keys).toHaveLength(1);
      expect(keys[0]!.state).toBe("active");
    });

    it.each([2, 5])("%i concurrent rotate() on a fresh store: exactly one active and one next key", async (n) => {
      // Half from this instance, half from other instances (several cron hosts).
      const stores = await Promise.all(Array.from({ length: n }, async (_, i) => (i % 2 === 0 ? store : b.peer())));
      const results = await Promise.all(stores.map((s) => managerOn(s, clock).rotate()));
      const all = results.flat();
      expect(all.filter((a) => a.action === "create_active")).toHaveLength(1);
      expect(all.filter((a) => a.action === "create_next")).toHaveLength(1);
      const keys = await store.list();
      expect(ofState(keys, "active")).toHaveLength(1);
      expect(ofState(keys, "next")).toHaveLength(1);
      expect(keys).toHaveLength(2);
    });

    it.each([2, 5])("%i concurrent rotate() when promotion is due: exactly one promotion, one active, one next", async (n) => {
      const { a, n: next } = await promotionDue(store, clock);
      const stores = await Promise.all(Array.from({ length: n }, async (_, i) => (i % 2 === 0 ? store : b.peer())));
      const results = await Promise.all(stores.map((s) => managerOn(s, clock).rotate()));
      const all = results.flat();
      expect(all.filter((x) => x.action === "promote")).toEqual([{ action: "promote", kid: next.kid, alg: "ES256" }]);
      expect(all.filter((x) => x.action === "retire").map((x) => x.kid)).toEqual([a.kid]);
      expect(all.filter((x) => x.action === "create_next")).toHaveLength(1);
      const keys = await store.list();
      expect(ofState(keys, "active").map((k) => k.kid)).toEqual([next.kid]);
      expect(ofState(keys, "retired").map((k) => k.kid)).toEqual([a.kid]);
      expect(ofState(keys, "next")).toHaveLength(1);
      expect(keys).toHaveLength(3);
      const promoted = keys.find((k) => k.kid === next.kid)!;
      expect(promoted.activatedAt?.getTime()).toBe(clock.now().getTime());
      expect(keys.find((k) => k.kid === a.kid)!.retiredAt?.getTime()).toBe(clock.now().getTime());
    });

    it("rotate() when nothing is due does nothing and writes nothing", async () => {
      const m = managerOn(store, clock);
      await m.rotate();
      clock.advance(POLICY.rotationInterval - 1);
      const before = await b.storedForm();
      expect(await m.rotate()).toEqual([]);
      expect(await b.storedForm()).toBe(before);
    });

    // -- crash simulation --

    it("a crash right after promote: the next rotate() leaves the new key the only active one, never zero active keys", async () => {
      const { a, n } = await promotionDue(store, clock);
      const w = watched(store);
      await expect(managerOn(w.store, clock, crashAfter("promote")).rotate()).rejects.toThrow("simulated crash after promote");
      const afterCrash = await store.list();
      if (target.kind === "file") {
        // Each step is kept: two active keys, and instances sign with the new one.
        expect(states(afterCrash)).toEqual(states([{ ...a }, { ...n, state: "active" }]));
        const ring = new KeyRing(await Promise.all(afterCrash.map(toSigningKey)), "ES256");
        expect(ring.signer().kid).toBe(n.kid);
      } else {
        // The whole rotation rolled back: the old key is still the only active one.
        expect(afterCrash.map(meta).sort((x, y) => x.kid.localeCompare(y.kid))).toEqual(byKid([a, n]).map(meta));
        expect(new KeyRing(await Promise.all(afterCrash.map(toSigningKey)), "ES256").signer().kid).toBe(a.kid);
      }

      clock.advance(5);
      await managerOn(w.store, clock).rotate();
      const keys = await store.list();
      expect(ofState(keys, "active").map((k) => k.kid)).toEqual([n.kid]);
      expect(ofState(keys, "retired").map((k) => k.kid)).toEqual([a.kid]);
      expect(ofState(keys, "next")).toHaveLength(1);
      expect(keys).toHaveLength(3);
      expect(w.minActive()).toBeGreaterThanOrEqual(1);
      expect(w.steps()).toBeGreaterThan(0);
    });

    // The first rotation of a deployment: ensureInitialKey and the first rotate() run at the same
    // instant, so the old and the new key have the same createdAt. After a crash between
    // "activate the new key" and "retire the old one", instances sign with the new key (newest
    // activation); the repair must keep that one, whatever the kids are.
    it("a crash right after promote when both keys were created in the same instant: the repair keeps the new key", async () => {
      const a = await generateKey("ES256", "active", T0);
      let n = await generateKey("ES256", "next", T0);
      // The kid order that a createdAt tie-break by kid gets wrong (kids are random thumbprints).
      while (n.kid.localeCompare(a.kid) < 0) n = await generateKey("ES256", "next", T0);
      await insert(store, a, n);
      clock.advance(POLICY.rotationInterval);
      const w = watched(store);
      await expect(managerOn(w.store, clock, crashAfter("promote")).rotate()).rejects.toThrow("simulated crash after promote");
      const signer = new KeyRing(await Promise.all((await store.list()).map(toSigningKey)), "ES256").signer().kid;
      expect(signer).toBe(target.kind === "file" ? n.kid : a.kid);

      clock.advance(5);
      await managerOn(w.store, clock).rotate();
      const keys = await store.list();
      expect(ofState(keys, "active").map((k) => k.kid)).toEqual([n.kid]);
      expect(ofState(keys, "retired").map((k) => k.kid)).toEqual([a.kid]);
      expect(w.minActive()).toBeGreaterThanOrEqual(1);
    });

    it("a crash right after create_next: the next rotate() leaves one active and exactly one next key", async () => {
      const m = managerOn(store, clock);
      await m.ensureInitialKey();
      const [a] = await store.list();
      const w = watched(store);
      await expect(managerOn(w.store, clock, crashAfter("create_next")).rotate()).rejects.toThrow("simulated crash after create_next");
      const afterCrash = await store.list();
      const crashNext = ofState(afterCrash, "next");
      expect(crashNext).toHaveLength(target.kind === "file" ? 1 : 0);
      expect(ofState(afterCrash, "active").map((k) => k.kid)).toEqual([a!.kid]);

      clock.advance(1);
      await managerOn(w.store, clock).rotate();
      const keys = await store.list();
      expect(ofState(keys, "active").map((k) => k.kid)).toEqual([a!.kid]);
      const next = ofState(keys, "next");
      expect(next).toHaveLength(1);
      // The file store keeps the key made before the crash instead of adding another.
      if (target.kind === "file") expect(next[0]!.kid).toBe(crashNext[0]!.kid);
      expect(keys).toHaveLength(2);
      expect(w.minActive()).toBeGreaterThanOrEqual(1);
    });

    it("a crash right after a retire: the next rotate() completes the rotation", async () => {
      const { a, n } = await promotionDue(store, clock);
      const w = watched(store);
      await expect(managerOn(w.store, clock, crashAfter("retire")).rotate()).rejects.toThrow("simulated crash after retire");
      const afterCrash = await store.list();
      if (target.kind === "file") {
        expect(states(afterCrash)).toEqual(states([{ ...a, state: "retired" }, { ...n, state: "active" }]));
      } else {
        expect(afterCrash.map(meta).sort((x, y) => x.kid.localeCompare(y.kid))).toEqual(byKid([a, n]).map(meta));
      }

      clock.advance(5);
      await managerOn(w.store, clock).rotate();
      const keys = await store.list();
      expect(ofState(keys, "active").map((k) => k.kid)).toEqual([n.kid]);
      expect(ofState(keys, "retired").map((k) => k.kid)).toEqual([a.kid]);
      const next = ofState(keys, "next");
      expect(next).toHaveLength(1);
      expect([a.kid, n.kid]).not.toContain(next[0]!.kid);
      expect(keys).toHaveLength(3);
      expect(w.minActive()).toBeGreaterThanOrEqual(1);
    });

    // -- revocation --

    it("revoke(active kid) removes it at once and a new key signs; the next key is untouched", async () => {
      const m = managerOn(store, clock);
      await m.ensureInitialKey();
      await m.rotate();
      const [a] = ofState(await store.list(), "active");
      const [n] = ofState(await store.list(), "next");
      clock.advance(60);
      const { revoked, applied } = await m.revoke(a!.kid);
      expect(revoked?.kid).toBe(a!.kid);
      expect(revoked?.state).toBe("active");
      expect(applied.map((x) => x.action)).toEqual(["revoke", "create_active"]);
      const keys = await store.list();
      expect(keys.map((k) => k.kid)).not.toContain(a!.kid);
      const active = ofState(keys, "active");
      expect(active).toHaveLength(1);
      expect([a!.kid, n!.kid]).not.toContain(active[0]!.kid);
      expect(active[0]!.activatedAt?.getTime()).toBe(clock.now().getTime());
      expect(keys.find((k) => k.kid === n!.kid)?.state).toBe("next");
      expect(keys).toHaveLength(2);
    });

    it("revoke(next kid) removes it and creates no active key", async () => {
      const m = managerOn(store, clock);
      await m.ensureInitialKey();
      await m.rotate();
      const [a] = ofState(await store.list(), "active");
      const [n] = ofState(await store.list(), "next");
      const { revoked, applied } = await m.revoke(n!.kid);
      expect(revoked?.kid).toBe(n!.kid);
      expect(applied.map((x) => x.action)).toEqual(["revoke"]);
      expect((await store.list()).map((k) => k.kid)).toEqual([a!.kid]);
    });

    it("revoke of an unknown kid returns revoked null and changes nothing", async () => {
      const m = managerOn(store, clock);
      await m.ensureInitialKey();
      const before = await b.storedForm();
      expect(await m.revoke("no-such-kid")).toEqual({ revoked: null, applied: [] });
      expect(await b.storedForm()).toBe(before);
    });

    // -- server secrets --

    it("secret(name) returns the same 32 bytes on repeated and concurrent calls, from every instance", async () => {
      const other = await b.another();
      const got = await Promise.all([store.secret("refresh-token"), other.secret("refresh-token"), store.secret("refresh-token"), other.secret("refresh-token")]);
      for (const s of got) {
        expect(s).toHaveLength(32);
        expect(s.equals(got[0]!)).toBe(true);
      }
      expect((await store.secret("refresh-token")).equals(got[0]!)).toBe(true);
      expect((await (await b.another()).secret("refresh-token")).equals(got[0]!)).toBe(true);
      // Another name, another secret.
      const other2 = await store.secret("something-else");
      expect(other2).toHaveLength(32);
      expect(other2.equals(got[0]!)).toBe(false);
      // Never stored in the clear in the database.
      if (target.kind === "database") expect(await b.storedForm()).not.toContain(got[0]!.toString("base64"));
    });
  });
}

// ---- the file store on disk ----

describe("FileKeyStore on disk", () => {
  const tmpDirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), "tessera-contract-"));
    tmpDirs.push(d);
    return path.join(d, "keys");
  };
  afterEach(() => {
    for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function withOneKey(encryptionKey: Buffer | null) {
    const dir = tmp();
    const store = new FileKeyStore(dir, encryptionKey);
    const clock = new FakeClock(T0);
    await managerOn(store, clock).ensureInitialKey();
    const [k] = await store.list();
    return { dir, store, clock, file: path.join(dir, `${k!.kid}.json`) };
  }

  const rejection = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: unknown) => e as Error,
    );

  for (const sealed of [false, true]) {
    const label = sealed ? "sealed" : "plain";

    it(`[${label}] a key file readable by others: list() rejects with a KeyStoreError saying what to do; the file is left unchanged`, async () => {
      const { dir, store, clock, file } = await withOneKey(sealed ? ENC_KEY : null);
      chmodSync(file, 0o644);
      const before = fileSnapshot(dir);
      const err = await rejection(store.list());
      expect(err).toBeInstanceOf(KeyStoreError);
      expect(err!.message).toContain(file);
      expect(err!.message).toMatch(/readable by group or others/);
      expect(err!.message).toMatch(/chmod 600/);
      // A rotation on that store refuses too, and writes nothing.
      clock.advance(POLICY.rotationInterval * 2);
      await expect(managerOn(store, clock).rotate()).rejects.toBeInstanceOf(KeyStoreError);
      await expect(managerOn(store, clock).ensureInitialKey()).rejects.toBeInstanceOf(KeyStoreError);
      expect(fileSnapshot(dir)).toBe(before);
      expect(statSync(file).mode & 0o777).toBe(0o644); // not silently "fixed"
    });

    it(`[${label}] a group-readable key file is refused as well`, async () => {
      const { store, file } = await withOneKey(sealed ? ENC_KEY : null);
      chmodSync(file, 0o640);
      await expect(store.list()).rejects.toBeInstanceOf(KeyStoreError);
    });

    it(`[${label}] a corrupted (truncated) key file: list() rejects with a KeyStoreError; the file is left unchanged`, async () => {
      const { dir, store, clock, file } = await withOneKey(sealed ? ENC_KEY : null);
      const content = readFileSync(file, "utf8");
      writeFileSync(file, content.slice(0, Math.floor(content.length / 2)));
      const before = fileSnapshot(dir);
      const err = await rejection(store.list());
      expect(err).toBeInstanceOf(KeyStoreError);
      expect(err!.message).toContain(file);
      expect(err!.message).toMatch(/not a valid key file/);
      clock.advance(POLICY.rotationInterval * 2);
      await expect(managerOn(store, clock).rotate()).rejects.toBeInstanceOf(KeyStoreError);
      expect(fileSnapshot(dir)).toBe(before);
    });

    it(`[${label}] a key file with a bad state or no private key is refused`, async () => {
      const { store, file } = await withOneKey(sealed ? ENC_KEY : null);
      const parsed = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      writeFileSync(file, JSON.stringify({ ...parsed, state: "signing" }));
      await expect(store.list()).rejects.toThrow(/not a valid key file/);
      writeFileSync(file, JSON.stringify({ ...parsed, privateJwk: undefined, sealed: undefined }));
      await expect(store.list()).rejects.toThrow(/not a valid key file/);
    });
  }

  it("[sealed] a flipped bit in the sealed private key: KeyStoreError, not a garbage key", async () => {
    const { store, file } = await withOneKey(ENC_KEY);
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { sealed: { ct: string } };
    const ct = Buffer.from(parsed.sealed.ct, "base64url");
    ct[5] = ct[5]! ^ 0x01;
    parsed.sealed.ct = ct.toString("base64url");
    writeFileSync(file, JSON.stringify(parsed));
    const err = await rejection(store.list());
    expect(err).toBeInstanceOf(KeyStoreError);
    expect(err!.message).toMatch(/KEYS_ENCRYPTION_KEY cannot decrypt/);
  });

  it("[sealed] a sealed key file copied under another kid is refused (kid bound as associated data)", async () => {
    const dir = tmp();
    const store = new FileKeyStore(dir, ENC_KEY);
    const a = await generateKey("ES256", "active", T0);
    const other = await generateKey("ES256", "retired", T0);
    await insert(store, a, other);
    const fileA = JSON.parse(readFileSync(path.join(dir, `${a.kid}.json`), "utf8")) as Record<string, unknown>;
    const fileOther = JSON.parse(readFileSync(path.join(dir, `${other.kid}.json`), "utf8")) as Record<string, unknown>;
    // Put a's sealed private key into other's file.
    writeFileSync(path.join(dir, `${other.kid}.json`), JSON.stringify({ ...fileOther, sealed: fileA.sealed }), { mode: 0o600 });
    await expect(store.list()).rejects.toThrow(/KEYS_ENCRYPTION_KEY cannot decrypt key/);
  });

  it("withDirLock serialises two concurrent holders: the second starts only after the first ends", async () => {
    const dir = tmp();
    const events: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let firstIn!: () => void;
    const firstHolds = new Promise<void>((r) => (firstIn = r));

    const first = withDirLock(dir, async () => {
      events.push("first:start");
      firstIn();
      await released;
      events.push("first:end");
      return "first";
    });
    await firstHolds;
    const second = withDirLock(dir, async () => {
      events.push("second:start");
      events.push("second:end");
      return "second";
    });
    // Give the second holder many chances to (wrongly) get in while the first holds the lock.
    await new Promise((r) => setTimeout(r, 300));
    expect(events).toEqual(["first:start"]);
    expect(readdirSync(dir)).toContain(".lock");
    release();
    expect(await Promise.all([first, second])).toEqual(["first", "second"]);
    expect(events).toEqual(["first:start", "first:end", "second:start", "second:end"]);
    expect(readdirSync(dir)).not.toContain(".lock");
  });

  it("withDirLock releases the lock when the holder throws", async () => {
    const dir = tmp();
    await expect(withDirLock(dir, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(readdirSync(dir)).not.toContain(".lock");
    expect(await withDirLock(dir, async () => "again", 1000)).toBe("again");
  });

  it("withDirLock breaks a stale lock (older than 30 s) left by a crashed holder", async () => {
    const dir = tmp();
    await withDirLock(dir, async () => undefined); // creates the dir
    const lock = path.join(dir, ".lock");
    writeFileSync(lock, "12345 crashed\n", { mode: 0o600 });
    const old = new Date(Date.now() - 31_000);
    utimesSync(lock, old, old);
    // A timeout far shorter than the stale age: it must break the lock, not wait it out.
    expect(await withDirLock(dir, async () => "got it", 2_000)).toBe("got it");
    expect(readdirSync(dir)).not.toContain(".lock");
  });

  it("withDirLock does not break a live lock: it gives up with a KeyStoreError and leaves the lock alone", async () => {
    const dir = tmp();
    await withDirLock(dir, async () => undefined);
    const lock = path.join(dir, ".lock");
    writeFileSync(lock, "12345 running\n", { mode: 0o600 });
    const recent = new Date(Date.now() - 20_000);
    utimesSync(lock, recent, recent);
    let ran = false;
    const err = await rejection(
      withDirLock(
        dir,
        async () => {
          ran = true;
        },
        300,
      ),
    );
    expect(err).toBeInstanceOf(KeyStoreError);
    expect(err!.message).toMatch(/held by another process/);
    expect(ran).toBe(false);
    expect(readFileSync(lock, "utf8")).toBe("12345 running\n");
  });
});
