// Key operations: the scheduled rotation (do whatever is due, nothing else), the emergency
// rotation, revocation of a compromised key, and the listing an operator reads. Each runs in
// one exclusive key-store transaction, so concurrent runs (two cron hosts) converge on one
// active and one next key per algorithm.
import type { KeyStore, KeyStoreTx } from "./key-store.ts";
import { keyMeta, type SigningAlg, type StoredKey } from "./signing-key.ts";
import type { Clock } from "../clock.ts";
import { generateKey } from "./generate.ts";
import { activatableAt, planRotation, publishedUntil, rotationDueAt, type KeyAction, type KeyPolicy } from "./lifecycle.ts";

export interface KeyEvent {
  type: "key.created" | "key.activated" | "key.retired" | "key.removed" | "key.revoked";
  kid: string;
  alg: SigningAlg;
  details?: Record<string, unknown>;
}

export interface AppliedAction {
  action: KeyAction["type"] | "revoke";
  kid: string;
  alg: SigningAlg;
  detail?: string;
}

export interface KeyInfo {
  kid: string;
  alg: SigningAlg;
  state: StoredKey["state"];
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
  /** next keys: earliest moment it may sign */
  activatableAt: Date | null;
  /** active keys: when the scheduled rotation replaces it */
  rotationDueAt: Date | null;
  /** retired keys: when it leaves the JWKS */
  publishedUntil: Date | null;
}

export interface KeyManagerOptions {
  store: KeyStore;
  clock: Clock;
  policy: KeyPolicy;
  signingAlg: SigningAlg;
  rsaModulusLength?: number;
  onEvent?: (event: KeyEvent) => Promise<void> | void;
  /** test hook: called after each applied step (crash simulation) */
  afterStep?: (step: AppliedAction) => Promise<void> | void;
}

export class KeyManager {
  constructor(private readonly options: KeyManagerOptions) {}

  /**
   * At start: with no key at all, create one that signs at once (no verifier can have cached
   * anything yet). With keys but none active (all revoked), do what a rotation would.
   */
  async ensureInitialKey(): Promise<AppliedAction[]> {
    const existing = await this.options.store.list();
    if (existing.some((k) => k.state === "active")) return [];
    if (existing.length > 0) return this.rotate();
    return this.options.store.transaction(async (tx) => {
      const keys = await tx.list();
      if (keys.some((k) => k.state === "active")) return []; // another instance was first
      if (keys.length > 0) return [];
      const key = await this.create(tx, this.options.signingAlg, "active");
      return [{ action: "create_active", kid: key.kid, alg: key.alg, detail: "first key" }];
    });
  }

  /** The scheduled rotation: whatever is due now, repeated until nothing is. */
  async rotate(): Promise<AppliedAction[]> {
    const before = await this.options.store.list();
    const plan = planRotation(before, this.options.signingAlg, this.options.clock.now(), this.options.policy);
    // Creating a key usually means another right after (promote, then a new next key).
    if (plan.some((a) => a.type === "create_next" || a.type === "create_active" || a.type === "promote")) await this.pregenerate(2);
    return this.options.store.transaction(async (tx) => {
      const applied: AppliedAction[] = [];
      for (let round = 0; round < 6; round++) {
        const keys = await tx.list();
        const plan = planRotation(keys, this.options.signingAlg, this.options.clock.now(), this.options.policy);
        if (plan.length === 0) return applied;
        for (const action of plan) applied.push(...(await this.apply(tx, keys, action)));
      }
      return applied;
    });
  }

  /** Emergency: a new key signs immediately; every active key is retired (stays published). */
  async rotateNow(): Promise<AppliedAction[]> {
    await this.pregenerate(1);
    return this.options.store.transaction(async (tx) => {
      const keys = await tx.list();
      const key = await this.create(tx, this.options.signingAlg, "active");
      const applied: AppliedAction[] = [{ action: "create_active", kid: key.kid, alg: key.alg, detail: "emergency rotation" }];
      await this.step(applied.at(-1)!);
      for (const old of keys.filter((k) => k.state === "active")) applied.push(await this.retire(tx, old, "emergency rotation"));
      return applied;
    });
  }

  /**
   * A compromised key: removed from the JWKS at once and never signs again. If it was the
   * only active key, a new one signs immediately.
   */
  async revoke(kid: string): Promise<{ revoked: StoredKey | null; applied: AppliedAction[] }> {
    await this.pregenerate(1);
    return this.options.store.transaction(async (tx) => {
      const keys = await tx.list();
      const target = keys.find((k) => k.kid === kid) ?? null;
      if (!target) return { revoked: null, applied: [] };
      await tx.remove(kid);
      const applied: AppliedAction[] = [{ action: "revoke", kid, alg: target.alg, detail: `was ${target.state}` }];
      await this.options.onEvent?.({ type: "key.revoked", kid, alg: target.alg, details: { previousState: target.state } });
      await this.step(applied[0]!);
      if (!keys.some((k) => k.kid !== kid && k.state === "active")) {
        const key = await this.create(tx, this.options.signingAlg, "active");
        applied.push({ action: "create_active", kid: key.kid, alg: key.alg, detail: "replaces the revoked key" });
      }
      return { revoked: target, applied };
    });
  }

  async list(): Promise<KeyInfo[]> {
    const { policy } = this.options;
    return (await this.options.store.list())
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .map((k) => ({
        ...keyMeta(k),
        activatableAt: k.state === "next" ? activatableAt(k, policy) : null,
        rotationDueAt: rotationDueAt(k, policy),
        publishedUntil: publishedUntil(k, policy),
      }));
  }

  private async apply(tx: KeyStoreTx, keys: StoredKey[], action: KeyAction): Promise<AppliedAction[]> {
    const now = this.options.clock.now();
    switch (action.type) {
      case "create_next":
      case "create_active": {
        const key = await this.create(tx, action.alg, action.type === "create_next" ? "next" : "active");
        const done: AppliedAction = { action: action.type, kid: key.kid, alg: key.alg };
        await this.step(done);
        return [done];
      }
      case "promote": {
        // Activate first, then retire: a crash in between leaves two active keys (repaired by
        // the next run), never none.
        await tx.update(action.kid, { state: "active", activatedAt: now });
        await this.options.onEvent?.({ type: "key.activated", kid: action.kid, alg: action.alg });
        const done: AppliedAction[] = [{ action: "promote", kid: action.kid, alg: action.alg }];
        await this.step(done[0]!);
        for (const kid of action.retire) {
          const old = keys.find((k) => k.kid === kid);
          if (old) done.push(await this.retire(tx, old, `replaced by ${action.kid}`));
        }
        return done;
      }
      case "retire": {
        const old = keys.find((k) => k.kid === action.kid);
        return old ? [await this.retire(tx, old, action.reason)] : [];
      }
      case "remove": {
        const old = keys.find((k) => k.kid === action.kid);
        await tx.remove(action.kid);
        const alg = old?.alg ?? this.options.signingAlg;
        await this.options.onEvent?.({ type: "key.removed", kid: action.kid, alg });
        const done: AppliedAction = { action: "remove", kid: action.kid, alg, detail: old ? `was ${old.state}` : undefined };
        await this.step(done);
        return [done];
      }
    }
  }

  /**
   * Key pairs made before a transaction starts: generation (RSA: up to a second) must not run
   * while the store's lock is held, since every instance's database connection may be waiting
   * on it.
   */
  #spare: Array<Awaited<ReturnType<typeof generateKey>>> = [];

  private async pregenerate(count: number): Promise<void> {
    while (this.#spare.length < count) this.#spare.push(await generateKey(this.options.signingAlg, "next", this.options.clock.now(), this.options.rsaModulusLength));
  }

  private async create(tx: KeyStoreTx, alg: SigningAlg, state: "next" | "active"): Promise<StoredKey> {
    const now = this.options.clock.now();
    const spareIndex = this.#spare.findIndex((k) => k.alg === alg);
    const spare = spareIndex >= 0 ? this.#spare.splice(spareIndex, 1)[0] : undefined;
    const key: StoredKey = spare
      ? { ...spare, state, createdAt: now, activatedAt: state === "active" ? now : null, retiredAt: null }
      : await generateKey(alg, state, now, this.options.rsaModulusLength);
    await tx.insert(key);
    await this.options.onEvent?.({ type: "key.created", kid: key.kid, alg, details: { state } });
    return key;
  }

  private async retire(tx: KeyStoreTx, key: StoredKey, reason: string): Promise<AppliedAction> {
    await tx.update(key.kid, { state: "retired", retiredAt: this.options.clock.now() });
    await this.options.onEvent?.({ type: "key.retired", kid: key.kid, alg: key.alg, details: { reason } });
    const done: AppliedAction = { action: "retire", kid: key.kid, alg: key.alg, detail: reason };
    await this.step(done);
    return done;
  }

  private async step(done: AppliedAction): Promise<void> {
    await this.options.afterStep?.(done);
  }
}
