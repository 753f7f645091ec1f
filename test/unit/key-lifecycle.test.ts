// Key lifecycle rules (pure): when a next key may sign, when a retired key may leave the JWKS,
// what a rotation run does. Then a property: random timelines of rotation runs (some at the
// same instant, some crashing midway) driven through KeyManager on an in-memory store, with
// simulated instances (reload lag) and verifiers (JWKS caches).
import fc from "fast-check";
import type { KeyObject } from "jose";
import { describe, expect, it } from "vitest";
import type { SigningAlg } from "../../src/domain/keys/signing-key.ts";
import { addSeconds } from "../../src/domain/clock.ts";
import { FakeClock } from "../helpers/fake-clock.ts";
import { KeyManager, type AppliedAction } from "../../src/domain/keys/key-manager.ts";
import { KeyRing } from "../../src/domain/keys/key-ring.ts";
import type { SigningKey } from "../../src/domain/keys/signing-key.ts";
import { activatableAt, planRotation, publishedUntil, rotationDueAt, type KeyAction, type KeyMeta, type KeyPolicy } from "../../src/domain/keys/lifecycle.ts";
import type { KeyState } from "../../src/domain/keys/signing-key.ts";
import type { KeyStatePatch, KeyStore, KeyStoreTx } from "../../src/domain/keys/key-store.ts";
import type { StoredKey } from "../../src/domain/keys/signing-key.ts";

const P: KeyPolicy = {
  jwksMaxAge: 60,
  keyPublishMargin: 30,
  clockSkew: 60,
  reloadInterval: 10,
  accessTokenTtl: 900,
  rotationInterval: 3600,
};
/** reload + max-age + margin: how long a next key is published before it may sign */
const PUBLISH_WAIT = P.reloadInterval + P.jwksMaxAge + P.keyPublishMargin; // 100
/** reload + ttl + max-age + skew: how long a retired key stays published */
const RETENTION = P.reloadInterval + P.accessTokenTtl + P.jwksMaxAge + P.clockSkew; // 1030

const T0 = Date.UTC(2030, 0, 1);
const at = (s: number) => new Date(T0 + s * 1000);

function key(kid: string, state: KeyState, createdAt: number, extra: Partial<KeyMeta> = {}): KeyMeta {
  return {
    kid,
    alg: "ES256",
    state,
    createdAt: at(createdAt),
    activatedAt: state === "active" ? at(createdAt) : null,
    retiredAt: null,
    ...extra,
  };
}

const plan = (keys: KeyMeta[], now: number, alg: SigningAlg = "ES256") => planRotation(keys, alg, at(now), P);
const byType = <T extends KeyAction["type"]>(actions: KeyAction[], type: T) =>
  actions.filter((a): a is Extract<KeyAction, { type: T }> => a.type === type);

/** What KeyRing would sign with, given these keys (private keys are not needed to choose). */
function ringSigner(keys: readonly KeyMeta[], alg: SigningAlg = "ES256"): string {
  const fake = keys.map((k): SigningKey => ({ ...k, privateKey: {} as KeyObject, publicJwk: {} }));
  return new KeyRing(fake, alg).signer().kid;
}

describe("key lifecycle: time rules", () => {
  it("activatableAt = createdAt + reload + jwksMaxAge + margin", () => {
    expect(activatableAt(key("n", "next", 0), P)).toEqual(at(100));
    expect(activatableAt(key("n", "next", 0), { ...P, reloadInterval: 1, jwksMaxAge: 300, keyPublishMargin: 0 })).toEqual(at(301));
  });

  it("publishedUntil = retiredAt + reload + accessTokenTtl + jwksMaxAge + clockSkew, for retired keys only", () => {
    const retired = key("r", "retired", 0, { activatedAt: at(0), retiredAt: at(5000) });
    expect(publishedUntil(retired, P)).toEqual(at(5000 + RETENTION));
    expect(publishedUntil(key("a", "active", 0), P)).toBeNull();
    expect(publishedUntil(key("n", "next", 0), P)).toBeNull();
    // A retired key without a retirement time is kept (never computed as "already expired").
    expect(publishedUntil(key("r", "retired", 0, { retiredAt: null }), P)).toBeNull();
  });

  it("rotationDueAt = activatedAt + rotationInterval (createdAt when activatedAt is missing), active keys only", () => {
    expect(rotationDueAt(key("a", "active", 0, { activatedAt: at(200) }), P)).toEqual(at(3800));
    expect(rotationDueAt(key("a", "active", 50, { activatedAt: null }), P)).toEqual(at(3650));
    expect(rotationDueAt(key("n", "next", 0), P)).toBeNull();
    expect(rotationDueAt(key("r", "retired", 0, { retiredAt: at(1) }), P)).toBeNull();
  });
});

describe("key lifecycle: planRotation", () => {
  it("no keys -> create_active (and nothing else)", () => {
    expect(plan([], 0)).toEqual([{ type: "create_active", alg: "ES256", reason: expect.any(String) }]);
    expect(plan([], 0, "RS256")).toEqual([{ type: "create_active", alg: "RS256", reason: expect.any(String) }]);
  });

  it("an active key and no next -> create_next", () => {
    expect(plan([key("a", "active", 0)], 1)).toEqual([{ type: "create_next", alg: "ES256" }]);
    // Also when the active key is long overdue: the next key must be published first.
    expect(plan([key("a", "active", 0)], 10 * P.rotationInterval)).toEqual([{ type: "create_next", alg: "ES256" }]);
  });

  it("a next key younger than reload + jwksMaxAge + margin is not promoted, even when rotation is due", () => {
    const due = P.rotationInterval * 2;
    const keys = [key("a", "active", 0), key("n", "next", due - (PUBLISH_WAIT - 1))];
    expect(plan(keys, due)).toEqual([]);
    // One second later it is.
    expect(plan(keys, due + 1)).toEqual([{ type: "promote", kid: "n", alg: "ES256", retire: ["a"] }]);
  });

  it("a next key old enough but rotation not due -> nothing", () => {
    const keys = [key("a", "active", 0), key("n", "next", 0)];
    expect(plan(keys, P.rotationInterval - 1)).toEqual([]);
    expect(plan(keys, PUBLISH_WAIT)).toEqual([]);
  });

  it("both (published long enough and rotation due) -> promote, retiring the old active key", () => {
    const keys = [key("a", "active", 0), key("n", "next", 10)];
    expect(plan(keys, P.rotationInterval)).toEqual([{ type: "promote", kid: "n", alg: "ES256", retire: ["a"] }]);
  });

  it("rotation is due from the activation time, not the creation time", () => {
    const keys = [key("a", "active", 0, { activatedAt: at(1000) }), key("n", "next", 1000)];
    expect(plan(keys, P.rotationInterval + 999)).toEqual([]);
    expect(byType(plan(keys, P.rotationInterval + 1000), "promote")).toHaveLength(1);
  });

  it("a retired key is removed exactly at retiredAt + reload + ttl + jwksMaxAge + skew, not one second earlier", () => {
    const retiredAt = 5000;
    const keys = [
      key("a", "active", 4000, { activatedAt: at(retiredAt) }),
      key("n", "next", retiredAt),
      key("r", "retired", 0, { activatedAt: at(0), retiredAt: at(retiredAt) }),
    ];
    expect(RETENTION).toBe(1030);
    expect(plan(keys, retiredAt + RETENTION - 1)).toEqual([]);
    expect(plan(keys, retiredAt + RETENTION)).toEqual([{ type: "remove", kid: "r" }]);
    expect(plan(keys, retiredAt + RETENTION + 86_400)).toContainEqual({ type: "remove", kid: "r" });
  });

  it("two active keys (a crash between activate and retire) -> retire the older, promote nothing", () => {
    const keys = [
      key("old", "active", 0, { activatedAt: at(0) }),
      key("new", "active", 100, { activatedAt: at(P.rotationInterval) }),
    ];
    const actions = plan(keys, P.rotationInterval + 1);
    expect(byType(actions, "retire")).toEqual([{ type: "retire", kid: "old", reason: expect.any(String) }]);
    expect(byType(actions, "promote")).toEqual([]);
    expect(byType(actions, "remove")).toEqual([]);
    // The key it keeps is the one instances already sign with.
    expect(ringSigner(keys)).toBe("new");
  });

  // revoke(active) while a next key exists creates a brand-new active key C that is *younger*
  // than the next key N. When N is later promoted and the run crashes before retiring C, KeyRing
  // signs with N (newest activation); the repair must keep N, not undo the rotation.
  it("two active keys after a crash: the repair keeps the key KeyRing signs with, even if it was created earlier", () => {
    const keys = [
      key("n-promoted", "active", 10, { activatedAt: at(50 + P.rotationInterval) }),
      key("c-after-revoke", "active", 50, { activatedAt: at(50) }),
    ];
    const signer = ringSigner(keys);
    expect(signer).toBe("n-promoted");
    const retired = byType(plan(keys, 51 + P.rotationInterval), "retire").map((a) => a.kid);
    expect(retired).toEqual(["c-after-revoke"]);
  });

  it("two next keys (racing runs) -> remove the extra one, keep one", () => {
    const keys = [key("a", "active", 0), key("n1", "next", 10), key("n2", "next", 20)];
    const actions = plan(keys, 30);
    const removed = byType(actions, "remove").map((a) => a.kid);
    expect(removed).toHaveLength(1);
    expect(["n1", "n2"]).toContain(removed[0]);
    expect(byType(actions, "create_next")).toEqual([]);
    expect(byType(actions, "promote")).toEqual([]);
  });

  it("no active key but an activatable next -> promote it (retiring nothing)", () => {
    const keys = [key("n", "next", 0)];
    expect(plan(keys, PUBLISH_WAIT)).toEqual([{ type: "promote", kid: "n", alg: "ES256", retire: [] }]);
  });

  it("no active key and a next that is not yet activatable -> a new active key now; the next is kept", () => {
    const keys = [key("n", "next", 0), key("r", "retired", 0, { retiredAt: at(0) })];
    const actions = plan(keys, PUBLISH_WAIT - 1);
    expect(actions).toEqual([{ type: "create_active", alg: "ES256", reason: expect.any(String) }]);
  });

  it("algorithm migration ES256 -> RS256: first an RS256 next key, the ES256 key keeps signing", () => {
    const keys = [key("es", "active", 0), key("es-next", "next", 0)];
    const actions = plan(keys, 10, "RS256");
    expect(actions).toContainEqual({ type: "create_next", alg: "RS256" });
    // Nothing may stop the ES256 key from signing before an RS256 key is published long enough.
    expect(actions.filter((a) => "kid" in a && a.kid === "es")).toEqual([]);
    expect(byType(actions, "create_active")).toEqual([]);
  });

  it("algorithm migration ES256 -> RS256: promoting the RS256 next key retires the ES256 active key", () => {
    const keys = [key("es", "active", 0), { ...key("rs", "next", 10), alg: "RS256" as const }];
    // RS256 has no active key, so it is "due" as soon as its next key is published long enough.
    expect(plan(keys, 10 + PUBLISH_WAIT - 1, "RS256")).toEqual([]);
    expect(plan(keys, 10 + PUBLISH_WAIT, "RS256")).toEqual([{ type: "promote", kid: "rs", alg: "RS256", retire: ["es"] }]);
  });

  it("is deterministic: the same keys and time give the same plan (whatever the input order)", () => {
    const keys = [
      key("a", "active", 0),
      key("b", "active", 5),
      key("n1", "next", 1),
      key("n2", "next", 1),
      key("r", "retired", 0, { retiredAt: at(0) }),
    ];
    const now = RETENTION + P.rotationInterval;
    expect(plan([...keys].reverse(), now)).toEqual(plan(keys, now));
  });
});

// ---- driving KeyManager on an in-memory store ----

type Mutation = { t: number; op: "insert" | "update" | "remove"; kid: string; patch?: KeyStatePatch; key?: StoredKey };

/**
 * A KeyStore in memory with the file store's semantics: transactions run one at a time, each
 * step is applied at once (a throw keeps the completed steps). Records every mutation with the
 * clock time, and the keys as they were after it.
 */
class MemoryKeyStore implements KeyStore {
  readonly kind = "file" as const;
  readonly keys = new Map<string, StoredKey>();
  readonly log: { m: Mutation; after: StoredKey[] }[] = [];
  #chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly clock: FakeClock) {}

  private snapshot(): StoredKey[] {
    return [...this.keys.values()].map((k) => ({ ...k }));
  }

  private record(m: Omit<Mutation, "t">): void {
    this.log.push({ m: { ...m, t: (this.clock.now().getTime() - T0) / 1000 }, after: this.snapshot() });
  }

  async list(): Promise<StoredKey[]> {
    return this.snapshot();
  }

  transaction<T>(fn: (tx: KeyStoreTx) => Promise<T>): Promise<T> {
    const tx: KeyStoreTx = {
      list: async () => this.snapshot(),
      insert: async (k) => {
        if (this.keys.has(k.kid)) throw new Error(`duplicate kid ${k.kid}`);
        this.keys.set(k.kid, { ...k });
        this.record({ op: "insert", kid: k.kid, key: { ...k } });
      },
      update: async (kid, patch) => {
        const cur = this.keys.get(kid);
        if (!cur) throw new Error(`no key ${kid}`);
        this.keys.set(kid, { ...cur, ...patch });
        this.record({ op: "update", kid, patch });
      },
      remove: async (kid) => {
        if (!this.keys.delete(kid)) return;
        this.record({ op: "remove", kid });
      },
    };
    const run = this.#chain.then(() => fn(tx));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async secret(): Promise<Buffer> {
    return Buffer.alloc(32, 7);
  }
}

class Crash extends Error {
  constructor() {
    super("simulated crash");
  }
}

function manager(store: KeyStore, clock: FakeClock, alg: SigningAlg = "ES256", afterStep?: (s: AppliedAction) => void) {
  return new KeyManager({ store, clock, policy: P, signingAlg: alg, afterStep });
}

const countBy = (keys: readonly StoredKey[], alg: SigningAlg, state: KeyState) => keys.filter((k) => k.alg === alg && k.state === state).length;

describe("key lifecycle: KeyManager on an in-memory store", () => {
  it("algorithm migration ES256 -> RS256 ends with RS256 keys only: nothing of ES256 stays published for ever", async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryKeyStore(clock);
    const es = manager(store, clock, "ES256");
    // Steady state on ES256: one active, one next (which is what every run leaves).
    await es.rotate();
    clock.advance(P.rotationInterval);
    await es.rotate();
    let keys = await store.list();
    expect(countBy(keys, "ES256", "active")).toBe(1);
    expect(countBy(keys, "ES256", "next")).toBe(1);

    // The deployment switches to RS256; runs every 10 minutes for 6 hours.
    const rs = manager(store, clock, "RS256");
    for (let i = 0; i < 36; i++) {
      await rs.rotate();
      keys = await store.list();
      expect(keys.filter((k) => k.state === "active").length).toBeGreaterThanOrEqual(1);
      clock.advance(600);
    }
    keys = await store.list();
    expect(countBy(keys, "RS256", "active")).toBe(1);
    expect(countBy(keys, "RS256", "next")).toBe(1);
    // The ES256 active key was retired and removed; its unused next key must go too.
    expect(keys.filter((k) => k.alg === "ES256").map((k) => `${k.kid.slice(0, 6)}:${k.state}`)).toEqual([]);
  });

  it("revoke, then a crash mid-promotion: the repair keeps the promoted key (the one instances sign with)", async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryKeyStore(clock);
    const m = manager(store, clock);
    await m.rotate(); // A active, N next
    const n = (await store.list()).find((k) => k.state === "next")!;
    const a = (await store.list()).find((k) => k.state === "active")!;
    clock.advance(50);
    const { applied } = await m.revoke(a.kid); // C active (younger than N)
    const c = applied.find((x) => x.action === "create_active")!;
    clock.advance(P.rotationInterval);
    const crashing = manager(store, clock, "ES256", (s) => {
      if (s.action === "promote") throw new Crash();
    });
    await expect(crashing.rotate()).rejects.toThrow("simulated crash");
    const afterCrash = await store.list();
    expect(afterCrash.filter((k) => k.state === "active").map((k) => k.kid).sort()).toEqual([c.kid, n.kid].sort());
    expect(ringSigner(afterCrash)).toBe(n.kid);

    clock.advance(5);
    await m.rotate();
    const repaired = await store.list();
    expect(repaired.filter((k) => k.state === "active").map((k) => k.kid)).toEqual([n.kid]);
    expect(repaired.find((k) => k.kid === c.kid)?.state).toBe("retired");
  });
});

// ---- the property: random timelines ----

interface Run {
  /** seconds since the previous run (0: the same instant) */
  gap: number;
  /** concurrent rotate() calls (several cron hosts) */
  parallel: number;
  /** the first call of this run crashes after that many applied steps */
  crashAfter: number | null;
}

const runArb = (maxGap: number): fc.Arbitrary<Run> =>
  fc.record({
    gap: fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: maxGap }), weight: 5 }),
    parallel: fc.oneof({ arbitrary: fc.constant(1), weight: 3 }, { arbitrary: fc.integer({ min: 2, max: 4 }), weight: 1 }),
    crashAfter: fc.option(fc.integer({ min: 1, max: 3 }), { freq: 3 }),
  });

/** Run the timeline; returns the store (with its mutation log) and the time of the last run. */
async function simulate(runs: Run[], crashes: boolean): Promise<{ store: MemoryKeyStore; end: number; firstKid: string }> {
  const clock = new FakeClock(T0);
  const store = new MemoryKeyStore(clock);
  let t = 0;
  for (const [i, run] of runs.entries()) {
    if (i > 0) {
      clock.advance(run.gap);
      t += run.gap;
    }
    let steps = 0;
    const crashAfter = crashes ? run.crashAfter : null;
    const calls = Array.from({ length: run.parallel }, (_, j) =>
      manager(
        store,
        clock,
        "ES256",
        j === 0 && crashAfter !== null
          ? () => {
              if (++steps === crashAfter) throw new Crash();
            }
          : undefined,
      ).rotate(),
    );
    const results = await Promise.allSettled(calls);
    for (const r of results) if (r.status === "rejected" && !(r.reason instanceof Crash)) throw r.reason;
    const crashed = results[results.length - 1]!.status === "rejected";

    const keys = await store.list();
    // Always: something signs.
    expect(keys.filter((k) => k.state === "active").length, `run ${i} at ${t}s: active keys`).toBeGreaterThanOrEqual(1);
    if (!crashed) {
      // The last call of this run completed: a converged state.
      expect(countBy(keys, "ES256", "active"), `run ${i} at ${t}s: active keys`).toBe(1);
      expect(countBy(keys, "ES256", "next"), `run ${i} at ${t}s: next keys`).toBe(1);
      // active + next + the key retired by the last promotion; a crash can delay one retirement
      // until close to the following promotion, hence one more when runs crash.
      expect(keys.length, `run ${i} at ${t}s: keys in steady state`).toBeLessThanOrEqual(crashes ? 4 : 3);
      // Nothing more is due right now (the run did all of it).
      expect(planRotation(keys, "ES256", clock.now(), P), `run ${i} at ${t}s: plan after a run`).toEqual([]);
    } else {
      expect(keys.length, `run ${i} at ${t}s: keys after a crash`).toBeLessThanOrEqual(4);
    }
  }
  const firstKid = store.log[0]?.m.kid ?? "";
  return { store, end: t, firstKid };
}

/** Checks the whole mutation history: publication, retention, and what verifiers would see. */
function checkHistory(store: MemoryKeyStore, end: number, firstKid: string): void {
  const inserted = new Map<string, number>();
  const activated = new Map<string, number>();
  const retired = new Map<string, number>();
  const removed = new Map<string, number>();
  // The signer after each mutation, as KeyRing picks it from that state.
  const signerTimeline: { t: number; kid: string }[] = [];

  for (const { m, after } of store.log) {
    // Never a moment with zero active keys (once the first key exists).
    expect(after.some((k) => k.state === "active"), `at ${m.t}s after ${m.op} ${m.kid}: no active key`).toBe(true);
    if (m.op === "insert") {
      inserted.set(m.kid, m.t);
      if (m.key?.state === "active") activated.set(m.kid, m.t);
      expect(m.key?.state === "active" ? m.kid : firstKid, `at ${m.t}s: a key inserted as active that is not the first key`).toBe(firstKid);
    } else if (m.op === "update") {
      // Retiring the key instances sign with would switch signing back to an older key.
      if (m.patch?.state === "retired") expect(m.kid, `at ${m.t}s: retired the key KeyRing signs with`).not.toBe(signerTimeline.at(-1)?.kid);
      if (m.patch?.state === "active" && !activated.has(m.kid)) activated.set(m.kid, m.t);
      if (m.patch?.state === "retired" && !retired.has(m.kid)) retired.set(m.kid, m.t);
      expect(m.patch?.state === "next", "a key went back to next").toBe(false);
    } else {
      removed.set(m.kid, m.t);
    }
    signerTimeline.push({ t: m.t, kid: ringSigner(after) });
  }

  for (const [kid, t] of activated) {
    if (kid === firstKid) continue;
    // Published (every instance serving it) for a whole cache lifetime + margin before it signs.
    expect(t - inserted.get(kid)!, `key ${kid} activated ${t - inserted.get(kid)!}s after creation`).toBeGreaterThanOrEqual(PUBLISH_WAIT);
  }
  for (const [kid, t] of removed) {
    if (!activated.has(kid)) continue; // a next key that never signed may go at any time
    expect(retired.has(kid), `key ${kid} removed while active`).toBe(true);
    expect(t - retired.get(kid)!, `key ${kid} removed ${t - retired.get(kid)!}s after retirement`).toBeGreaterThanOrEqual(RETENTION);
  }

  // Signing windows: from when KeyRing picks a key until reloadInterval after it stops picking it
  // (an instance that has not reloaded yet still signs with it).
  const windows = new Map<string, { from: number; to: number }[]>();
  for (let i = 0; i < signerTimeline.length; i++) {
    const { t, kid } = signerTimeline[i]!;
    const next = signerTimeline.slice(i + 1).find((s) => s.kid !== kid);
    if (i > 0 && signerTimeline[i - 1]!.kid === kid) continue;
    const stopped = next ? next.t : Infinity;
    windows.set(kid, [...(windows.get(kid) ?? []), { from: t, to: stopped + P.reloadInterval }]);
  }
  // A token signed at s is verified until s + ttl + skew with a JWKS fetched at any time in
  // [s - jwksMaxAge, s + ttl + skew]; a fetch at f sees a key only if every instance serves it,
  // i.e. it was in the store during all of [f - reload, f].
  for (const [kid, ws] of windows) {
    const born = inserted.get(kid)!;
    const gone = removed.get(kid) ?? Infinity;
    for (const w of ws) {
      const firstFetch = kid === firstKid ? born : w.from - P.jwksMaxAge - P.reloadInterval;
      const lastFetch = Math.min(w.to + P.accessTokenTtl + P.clockSkew, end);
      expect(born, `key ${kid} signs from ${w.from}s but is published only from ${born}s`).toBeLessThanOrEqual(firstFetch);
      if (gone !== Infinity) {
        expect(gone, `key ${kid} signs until ${w.to}s but left the JWKS at ${gone}s`).toBeGreaterThanOrEqual(lastFetch);
      }
    }
  }
}

describe("key lifecycle: property over random timelines", () => {
  /** How much of the lifecycle the generated timelines exercised (a property that never promotes proves little). */
  const coverage = () => ({ timelines: 0, promotions: 0, removals: 0, crashes: 0 });
  const check = async (runs: Run[], crashes: boolean, seen: ReturnType<typeof coverage>) => {
    const { store, end, firstKid } = await simulate(runs, crashes);
    checkHistory(store, end, firstKid);
    seen.timelines++;
    seen.promotions += store.log.filter((l) => l.m.op === "update" && l.m.patch?.state === "active").length;
    seen.removals += store.log.filter((l) => l.m.op === "remove").length;
    seen.crashes += crashes ? runs.filter((r) => r.crashAfter !== null).length : 0;
  };

  it("runs at least every rotationInterval/4, some concurrent: converged, published before signing, kept until tokens expire", async () => {
    const seen = coverage();
    await fc.assert(
      fc.asyncProperty(fc.array(runArb(P.rotationInterval / 4), { minLength: 1, maxLength: 60, size: "max" }), (runs) => check(runs, false, seen)),
      { numRuns: 60 },
    );
    expect(seen.promotions).toBeGreaterThan(seen.timelines);
    expect(seen.removals).toBeGreaterThan(seen.timelines);
  });

  it("the same with runs that crash midway (file-store semantics: completed steps are kept)", async () => {
    const seen = coverage();
    await fc.assert(
      fc.asyncProperty(fc.array(runArb(P.rotationInterval / 4), { minLength: 1, maxLength: 60, size: "max" }), (runs) => check(runs, true, seen)),
      { numRuns: 100 },
    );
    expect(seen.promotions).toBeGreaterThan(seen.timelines);
    expect(seen.crashes).toBeGreaterThan(seen.timelines);
  });

  it("the same with long pauses between runs (cron down for hours)", async () => {
    const seen = coverage();
    await fc.assert(
      fc.asyncProperty(fc.array(runArb(3 * P.rotationInterval), { minLength: 1, maxLength: 25, size: "max" }), (runs) => check(runs, true, seen)),
      { numRuns: 40 },
    );
    expect(seen.promotions).toBeGreaterThan(seen.timelines);
  });

  it("the checker itself catches a key that signs before it was published long enough", () => {
    const clock = new FakeClock(T0);
    const store = new MemoryKeyStore(clock);
    const k = (kid: string, state: KeyState, t: number): StoredKey => ({
      kid,
      alg: "ES256",
      state,
      createdAt: addSeconds(clock.now(), 0),
      activatedAt: state === "active" ? at(t) : null,
      retiredAt: null,
      privateJwk: {},
    });
    return store.transaction(async (tx) => {
      await tx.insert(k("first", "active", 0));
      clock.advance(3600);
      await tx.insert(k("eager", "next", 3600));
      clock.advance(PUBLISH_WAIT - 1);
      await tx.update("eager", { state: "active", activatedAt: clock.now() });
      await tx.update("first", { state: "retired", retiredAt: clock.now() });
      expect(() => checkHistory(store, 4000, "first")).toThrow(/activated 99s after creation/);
    });
  });

  it("the checker itself catches a retired key removed one second too early", () => {
    const clock = new FakeClock(T0);
    const store = new MemoryKeyStore(clock);
    const k = (kid: string, state: KeyState): StoredKey => ({
      kid,
      alg: "ES256",
      state,
      createdAt: clock.now(),
      activatedAt: state === "active" ? clock.now() : null,
      retiredAt: null,
      privateJwk: {},
    });
    return store.transaction(async (tx) => {
      await tx.insert(k("first", "active"));
      await tx.insert(k("second", "next"));
      clock.advance(P.rotationInterval);
      await tx.update("second", { state: "active", activatedAt: clock.now() });
      await tx.update("first", { state: "retired", retiredAt: clock.now() });
      clock.advance(RETENTION - 1);
      await tx.remove("first");
      expect(() => checkHistory(store, P.rotationInterval + RETENTION, "first")).toThrow(/removed 1029s after retirement/);
    });
  });
});
