// The refresh-token rules of domain/sessions (RFC 9700 §4.14.2 rotation, reuse detection, the
// grace window, idle and absolute expiry), on the memory store and a fake clock: every boundary
// and every interleaving with a revocation, in milliseconds. The memory store is held to the
// Prisma store's contract (test/integration/session-store-contract.test.ts); the same behaviours
// end to end over HTTP are in test/integration/refresh-rotation.test.ts and test/security/refresh-*.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Audit, type AuditEventType } from "../../src/domain/audit.ts";
import type { AuditEventRecord, AuditStore } from "../../src/domain/audit-store.ts";
import { InvalidGrant } from "../../src/domain/errors.ts";
import {
  REVOKED_SESSION_RETENTION,
  revokedSessionRetention,
  Sessions,
  type IssuedRefreshToken,
  type SessionPolicy,
} from "../../src/domain/sessions/sessions.ts";
import type { SessionStore } from "../../src/domain/sessions/session-store.ts";
import { hashRefreshToken } from "../../src/domain/tokens/refresh-token.ts";
import { StatusIndexAllocator } from "../../src/domain/tokens/status-index.ts";
import { MemorySessionStore, type SessionUser } from "../../src/storage/memory/session-store.ts";
import { MemoryStatusIndexStore } from "../../src/storage/memory/status-index-store.ts";
import { FakeClock } from "../helpers/fake-clock.ts";

const T0 = new Date("2030-01-01T00:00:00.000Z");
const POLICY: SessionPolicy = { refreshTokenTtl: 3 * 3600, refreshIdleTtl: 3600, refreshReuseGrace: 10 };
const USER = "user-1";
/** the stored hash the login checked the password against */
const PASSWORD_HASH = "$argon2id$the-user's-hash";
const CLIENT = "web";
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Audit events kept in an array (the rules only record; nothing here lists or prunes). */
function memoryAudit(events: AuditEventRecord[]): AuditStore {
  return {
    record: async (e) => void events.push(e),
    list: async (f) => events.filter((e) => (!f.type || e.type === f.type) && (!f.sessionId || e.sessionId === f.sessionId)),
    page: async () => {
      throw new Error("the session rules never list audit events");
    },
    prune: async () => 0,
  };
}

/**
 * `store` with `before(method, n)` awaited before its n-th call (0-based): lets a test run
 * something (a logout, another refresh) at an exact point between the rules' store calls.
 */
function intercepted(store: SessionStore, before: (method: string, n: number) => Promise<void>): { store: SessionStore; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const n = calls.push(String(prop)) - 1;
        await before(String(prop), n);
        return method.apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

function setup(policy: Partial<SessionPolicy> = {}) {
  const clock = new FakeClock(T0);
  const users = new Map<string, SessionUser>([[USER, { roles: ["reader"], disabledAt: null, passwordHash: PASSWORD_HASH }]]);
  const store = new MemorySessionStore(users);
  const events: AuditEventRecord[] = [];
  const audit = new Audit(memoryAudit(events), quiet, clock);
  const secret = randomBytes(32);
  const fullPolicy = { ...POLICY, ...policy };
  const statusIndices = new StatusIndexAllocator(new MemoryStatusIndexStore());
  /** how many times the rules told the status lists of a revocation */
  const revocationsHeard = { count: 0 };
  const statusLists = { revoked: async () => void revocationsHeard.count++ };
  const sessionsOn = (s: SessionStore) => new Sessions(s, clock, secret, audit, fullPolicy, statusIndices, statusLists);
  const sessions = sessionsOn(store);
  const login = (o: { refreshTokenTtl?: number | null } = {}) => sessions.start({ userId: USER, clientId: CLIENT, scope: "profile", passwordHash: PASSWORD_HASH, ...o }).then((s) => {
    if (!s) throw new Error("the session was not started");
    return s;
  });
  return {
    clock,
    users,
    store,
    events,
    audit,
    sessions,
    sessionsOn,
    statusIndices,
    statusLists,
    revocationsHeard,
    login,
    /** a login whose first token was rotated `after` seconds ago: s.refreshToken is consumed */
    async rotatedAgo(after: number) {
      const s = await login();
      const r = await sessions.rotate(s.refreshToken, CLIENT);
      clock.advance(after);
      return { s, r };
    },
    /** how many events of that type */
    count: (type: AuditEventType) => events.filter((e) => e.type === type).length,
    /** the session as stored now */
    stored: async (started: IssuedRefreshToken) => (await store.findSession(started.session.id))!,
    /** how many refresh tokens the session has (walks the family from `first`) */
    familySize: async (first: string) => {
      let n = 0;
      let token = (await store.findToken(hashRefreshToken(first)))?.token;
      while (token) {
        n++;
        token = (await store.findChildOf(token.id))?.token;
      }
      return n;
    },
  };
}

/** The promise's InvalidGrant (fails the test if it resolves or throws anything else). */
async function invalidGrant(p: Promise<unknown>): Promise<InvalidGrant> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidGrant);
  return err as InvalidGrant;
}

const ms = (clock: FakeClock, n: number) => clock.set(new Date(clock.now().getTime() + n));

describe("sessions: start and rotation", () => {
  it("start: a 43-character token, stored only as its hash, expiring at the idle deadline", async () => {
    const t = setup();
    const s = await t.login();
    expect(s.outcome).toBe("started");
    expect(s.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.expiresAt).toEqual(new Date(T0.getTime() + 3600_000));
    expect(s.session).toMatchObject({ userId: USER, clientId: CLIENT, scope: "profile", createdAt: T0, revokedAt: null });
    expect(s.session.expiresAt).toEqual(new Date(T0.getTime() + 3 * 3600_000));
    const lookup = (await t.sessions.lookup(s.refreshToken))!;
    expect(lookup.token.hash).toBe(hashRefreshToken(s.refreshToken));
    expect(lookup.token.hash).not.toBe(s.refreshToken);
    expect(t.sessions.isActive(lookup)).toBe(true);
    expect(await t.sessions.findById(s.session.id)).toEqual(s.session);
  });

  it("start: null, and no session, when the user is disabled or has another password by the time it is written", async () => {
    const t = setup();
    const start = () => t.sessions.start({ userId: USER, clientId: CLIENT, scope: "profile", passwordHash: PASSWORD_HASH });
    t.users.set(USER, { roles: [], disabledAt: null, passwordHash: "$argon2id$a-new-hash" });
    expect(await start()).toBeNull();
    t.users.set(USER, { roles: [], disabledAt: T0, passwordHash: PASSWORD_HASH });
    expect(await start()).toBeNull();
    expect(await t.store.listLive(USER, T0, 10)).toEqual([]);
    t.users.set(USER, { roles: [], disabledAt: null, passwordHash: PASSWORD_HASH });
    expect((await start())?.outcome).toBe("started");
  });

  it("a per-client lifetime shorter than the idle timeout caps the first token too", async () => {
    const t = setup();
    const s = await t.login({ refreshTokenTtl: 600 });
    expect(s.session.expiresAt).toEqual(new Date(T0.getTime() + 600_000));
    expect(s.expiresAt).toEqual(s.session.expiresAt);
  });

  it("rotate returns a new token with a fresh idle deadline and the user's roles; the old token is consumed", async () => {
    const t = setup();
    const s = await t.login();
    t.clock.advance(60);
    const r = await t.sessions.rotate(s.refreshToken, CLIENT);
    expect(r.outcome).toBe("rotated");
    expect(r.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.refreshToken).not.toBe(s.refreshToken);
    expect(r.session.id).toBe(s.session.id);
    expect(r.roles).toEqual(["reader"]);
    expect(r.expiresAt).toEqual(new Date(T0.getTime() + 60_000 + 3600_000));
    const old = (await t.sessions.lookup(s.refreshToken))!;
    expect(old.child?.token.hash).toBe(hashRefreshToken(r.refreshToken));
    expect(t.sessions.isActive(old)).toBe(false);
    expect(t.sessions.isActive((await t.sessions.lookup(r.refreshToken))!)).toBe(true);
    expect(await t.familySize(s.refreshToken)).toBe(2);
  });

  it("roles are read at each rotation: a role taken away is gone from the next one", async () => {
    const t = setup();
    const s = await t.login();
    t.users.set(USER, { roles: [], disabledAt: null, passwordHash: PASSWORD_HASH });
    expect((await t.sessions.rotate(s.refreshToken, CLIENT)).roles).toEqual([]);
  });

  it("a chain of rotations, each within the idle timeout, keeps the family going: one token per rotation", async () => {
    const t = setup();
    const first = (await t.login()).refreshToken;
    let token = first;
    for (let i = 0; i < 5; i++) {
      t.clock.advance(30 * 60);
      token = (await t.sessions.rotate(token, CLIENT)).refreshToken;
    }
    expect(t.sessions.isActive((await t.sessions.lookup(token))!)).toBe(true);
    expect(await t.familySize(first)).toBe(6);
    expect(t.count("refresh.reuse_detected")).toBe(0);
  });

  it("garbage and unknown tokens: InvalidGrant, nothing recorded", async () => {
    const t = setup();
    await t.login();
    for (const bad of ["", "x", "A".repeat(43), "a".repeat(5000)]) {
      expect((await invalidGrant(t.sessions.rotate(bad, CLIENT))).description).toMatch(/invalid/);
    }
    expect(t.events).toEqual([]);
  });
});

describe("sessions: the grace window", () => {
  it("a retry by the same client within refreshReuseGrace gets the same successor ('grace_retry'), recorded, nothing written", async () => {
    const t = setup();
    const { s, r } = await t.rotatedAgo(9);
    const retry = await t.sessions.rotate(s.refreshToken, CLIENT);
    expect(retry).toMatchObject({ outcome: "grace_retry", refreshToken: r.refreshToken, expiresAt: r.expiresAt, roles: ["reader"] });
    expect(await t.familySize(s.refreshToken)).toBe(2);
    const graced = t.events.filter((e) => e.type === "refresh.grace_retry");
    expect(graced).toHaveLength(1);
    expect(graced[0]).toMatchObject({ sessionId: s.session.id, userId: USER, clientId: CLIENT, details: { secondsSinceRotation: 9 } });
    // The family is intact: the successor rotates.
    expect((await t.sessions.rotate(r.refreshToken, CLIENT)).outcome).toBe("rotated");
  });

  it("the window is [0, grace): 1 ms before its end is a retry, at its end it is reuse", async () => {
    const inside = setup();
    const a = await inside.login();
    await inside.sessions.rotate(a.refreshToken, CLIENT);
    ms(inside.clock, 9_999);
    expect((await inside.sessions.rotate(a.refreshToken, CLIENT)).outcome).toBe("grace_retry");

    const atEnd = setup();
    const b = await atEnd.login();
    await atEnd.sessions.rotate(b.refreshToken, CLIENT);
    ms(atEnd.clock, 10_000);
    expect((await invalidGrant(atEnd.sessions.rotate(b.refreshToken, CLIENT))).description).toMatch(/already used/);
    expect((await atEnd.stored(b)).revokedReason).toBe("refresh_token_reuse");
  });

  it("several retries within the window all get the same successor", async () => {
    const t = setup();
    const s = await t.login();
    const r = await t.sessions.rotate(s.refreshToken, CLIENT);
    for (let i = 0; i < 3; i++) {
      t.clock.advance(3);
      expect((await t.sessions.rotate(s.refreshToken, CLIENT)).refreshToken).toBe(r.refreshToken);
    }
    expect(t.count("refresh.grace_retry")).toBe(3);
  });

  it("refreshReuseGrace 0: any second use is reuse", async () => {
    const t = setup({ refreshReuseGrace: 0 });
    const s = await t.login();
    await t.sessions.rotate(s.refreshToken, CLIENT);
    await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT));
    expect((await t.stored(s)).revokedAt).toEqual(T0);
  });

  it("within the window, a parent whose child was already used (two generations back) is reuse", async () => {
    const t = setup();
    const s = await t.login();
    const r1 = await t.sessions.rotate(s.refreshToken, CLIENT);
    const r2 = await t.sessions.rotate(r1.refreshToken, CLIENT);
    t.clock.advance(1);
    expect((await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT))).description).toMatch(/already used/);
    await invalidGrant(t.sessions.rotate(r2.refreshToken, CLIENT));
  });

  it("within the window, a successor that has already expired (idle timeout shorter than the window) is reuse", async () => {
    const t = setup({ refreshIdleTtl: 5 });
    const { s } = await t.rotatedAgo(6);
    expect((await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT))).description).toMatch(/already used/);
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
  });

  it("a retry after the derivation secret changed is reuse (the recomputed successor is not the stored one)", async () => {
    const t = setup();
    const s = await t.login();
    await t.sessions.rotate(s.refreshToken, CLIENT);
    const restarted = new Sessions(t.store, t.clock, randomBytes(32), t.audit, POLICY, t.statusIndices, t.statusLists);
    await invalidGrant(restarted.rotate(s.refreshToken, CLIENT));
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
  });
});

describe("sessions: reuse detection", () => {
  it("after the window, a consumed token revokes the whole family (the successor dies too), once", async () => {
    const t = setup();
    const s = await t.login();
    const tokens = [s.refreshToken];
    for (let i = 0; i < 3; i++) {
      t.clock.advance(60);
      tokens.push((await t.sessions.rotate(tokens.at(-1)!, CLIENT)).refreshToken);
    }
    t.clock.advance(60);
    expect((await invalidGrant(t.sessions.rotate(tokens[0]!, CLIENT))).description).toMatch(/already used/);
    expect(await t.stored(s)).toMatchObject({ revokedAt: t.clock.now(), revokedReason: "refresh_token_reuse" });
    const reuse = t.events.filter((e) => e.type === "refresh.reuse_detected");
    expect(reuse).toHaveLength(1);
    expect(reuse[0]).toMatchObject({ sessionId: s.session.id, userId: USER, clientId: CLIENT, details: { familyRevoked: true, secondsSinceRotation: 180 } });
    for (const token of tokens) {
      expect((await invalidGrant(t.sessions.rotate(token, CLIENT))).description).toMatch(/revoked/);
      expect(t.sessions.isActive((await t.sessions.lookup(token))!)).toBe(false);
    }
    // Nothing more was detected or written: a revoked family is refused before the reuse check.
    expect(t.count("refresh.reuse_detected")).toBe(1);
    expect(await t.familySize(s.refreshToken)).toBe(4);
  });

  it("reuse revokes only that family: the user's other session keeps working", async () => {
    const t = setup();
    const a = await t.login();
    const b = await t.login();
    await t.sessions.rotate(a.refreshToken, CLIENT);
    t.clock.advance(60);
    await invalidGrant(t.sessions.rotate(a.refreshToken, CLIENT));
    expect((await t.sessions.rotate(b.refreshToken, CLIENT)).outcome).toBe("rotated");
  });

  it.each([
    ["inside the window", 1],
    ["after the window", 60],
  ])("a consumed token presented with another client_id %s is reuse: the family is revoked first", async (_, after) => {
    const t = setup();
    const { s } = await t.rotatedAgo(after);
    expect((await invalidGrant(t.sessions.rotate(s.refreshToken, "other-spa"))).description).toMatch(/already used/);
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
  });

  it("a consumed token is judged before the request checks: a failing check does not spare the family", async () => {
    const t = setup();
    const { s } = await t.rotatedAgo(60);
    let checked = false;
    const check = () => {
      checked = true;
      throw new Error("scope refused");
    };
    await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT, check));
    expect(checked).toBe(false);
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
  });

  it("an unconsumed token with another client_id, or a failing check, is refused without consuming or revoking", async () => {
    const t = setup();
    const s = await t.login();
    expect((await invalidGrant(t.sessions.rotate(s.refreshToken, "other-spa"))).description).toMatch(/not issued to this client/);
    const seen: unknown[] = [];
    await expect(
      t.sessions.rotate(s.refreshToken, CLIENT, (session, user) => {
        seen.push(session.id, user.roles);
        throw new InvalidGrant("scope");
      }),
    ).rejects.toThrow("scope");
    expect(seen).toEqual([s.session.id, ["reader"]]);
    expect((await t.sessions.lookup(s.refreshToken))!.child).toBeNull();
    expect((await t.stored(s)).revokedAt).toBeNull();
    expect((await t.sessions.rotate(s.refreshToken, CLIENT)).outcome).toBe("rotated");
    expect(t.count("refresh.reuse_detected")).toBe(0);
  });

  it("a genuine grace retry with a failing check is refused and revokes nothing", async () => {
    const t = setup();
    const { s, r } = await t.rotatedAgo(1);
    await expect(
      t.sessions.rotate(s.refreshToken, CLIENT, () => {
        throw new InvalidGrant("scope");
      }),
    ).rejects.toThrow("scope");
    expect((await t.stored(s)).revokedAt).toBeNull();
    expect((await t.sessions.rotate(r.refreshToken, CLIENT)).outcome).toBe("rotated");
  });
});

describe("sessions: rejectIfReused (the client failed authentication)", () => {
  it("an unconsumed, unknown or garbage token: nothing happens", async () => {
    const t = setup();
    const s = await t.login();
    await t.sessions.rejectIfReused(s.refreshToken, undefined);
    await t.sessions.rejectIfReused("A".repeat(43), CLIENT);
    await t.sessions.rejectIfReused("garbage", CLIENT);
    expect((await t.stored(s)).revokedAt).toBeNull();
    expect(t.events).toEqual([]);
  });

  it("a possible grace retry by the client it names is left alone; by anyone else it is reuse", async () => {
    const t = setup();
    const { s } = await t.rotatedAgo(1);
    await t.sessions.rejectIfReused(s.refreshToken, CLIENT);
    expect((await t.stored(s)).revokedAt).toBeNull();
    await expect(t.sessions.rejectIfReused(s.refreshToken, undefined)).rejects.toBeInstanceOf(InvalidGrant);
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
  });

  it("after the window it is reuse even for the client it names; a revoked or ended session is left alone", async () => {
    const t = setup();
    const { s } = await t.rotatedAgo(60);
    await expect(t.sessions.rejectIfReused(s.refreshToken, CLIENT)).rejects.toBeInstanceOf(InvalidGrant);
    await t.sessions.rejectIfReused(s.refreshToken, CLIENT); // already revoked: no second verdict
    expect(t.count("refresh.reuse_detected")).toBe(1);

    const ended = await t.login({ refreshTokenTtl: 120 });
    await t.sessions.rotate(ended.refreshToken, CLIENT);
    t.clock.advance(120);
    await t.sessions.rejectIfReused(ended.refreshToken, undefined);
    expect((await t.stored(ended)).revokedAt).toBeNull();
  });
});

describe("sessions: expiry and disabled users", () => {
  it("idle timeout: a token unused for refreshIdleTtl is refused (1 ms earlier it rotates), and nothing is consumed", async () => {
    const t = setup();
    const s = await t.login();
    ms(t.clock, 3600_000 - 1);
    const r = await t.sessions.rotate(s.refreshToken, CLIENT);
    ms(t.clock, 3600_000);
    const lookup = (await t.sessions.lookup(r.refreshToken))!;
    expect(t.sessions.isActive(lookup)).toBe(false);
    expect((await invalidGrant(t.sessions.rotate(r.refreshToken, CLIENT))).description).toMatch(/expired/);
    expect((await t.sessions.lookup(r.refreshToken))!.child).toBeNull();
    expect((await t.stored(s)).revokedAt).toBeNull();
  });

  it("absolute lifetime: rotation never moves refreshTokenTtl; the last tokens are capped at it", async () => {
    const t = setup();
    const s = await t.login();
    const end = s.session.expiresAt;
    let token = s.refreshToken;
    for (let i = 0; i < 3; i++) {
      t.clock.advance(50 * 60);
      const r = await t.sessions.rotate(token, CLIENT);
      expect(r.session.expiresAt).toEqual(end);
      expect(r.expiresAt.getTime()).toBeLessThanOrEqual(end.getTime());
      token = r.refreshToken;
    }
    // 150 min after login: the successor's idle deadline (210 min) is capped at the end (180 min)
    expect((await t.sessions.lookup(token))!.token.expiresAt).toEqual(end);
    t.clock.set(new Date(end.getTime() - 1));
    expect(t.sessions.isActive((await t.sessions.lookup(token))!)).toBe(true);
    t.clock.set(end);
    expect(t.sessions.isActive((await t.sessions.lookup(token))!)).toBe(false);
    expect((await invalidGrant(t.sessions.rotate(token, CLIENT))).description).toMatch(/session has expired/);
  });

  it("a disabled user cannot rotate: refused, nothing consumed, the token not active", async () => {
    const t = setup();
    const s = await t.login();
    t.users.set(USER, { roles: ["reader"], disabledAt: T0, passwordHash: PASSWORD_HASH });
    expect((await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT))).description).toMatch(/disabled/);
    const lookup = (await t.sessions.lookup(s.refreshToken))!;
    expect(lookup.child).toBeNull();
    expect(t.sessions.isActive(lookup)).toBe(false);
  });

  it("a user disabled between the lookup and the consume: refused, nothing consumed", async () => {
    const t = setup();
    const s = await t.login();
    const { store } = intercepted(t.store, async (method) => {
      if (method === "insertChild") t.users.set(USER, { roles: ["reader"], disabledAt: t.clock.now(), passwordHash: PASSWORD_HASH });
    });
    expect((await invalidGrant(t.sessionsOn(store).rotate(s.refreshToken, CLIENT))).description).toMatch(/revoked/);
    expect((await t.sessions.lookup(s.refreshToken))!.child).toBeNull();
  });
});

describe("sessions: revocation and pruning", () => {
  it("revokeSession: the family's tokens are refused; revoking again records nothing", async () => {
    const t = setup();
    const s = await t.login();
    const r = await t.sessions.rotate(s.refreshToken, CLIENT);
    await t.sessions.revokeSession(s.session, "logout");
    await t.sessions.revokeSession(s.session, "logout");
    expect(t.count("session.revoked")).toBe(1);
    expect(await t.stored(s)).toMatchObject({ revokedAt: T0, revokedReason: "logout" });
    for (const token of [s.refreshToken, r.refreshToken]) {
      expect((await invalidGrant(t.sessions.rotate(token, CLIENT))).description).toMatch(/revoked/);
    }
    expect(t.count("refresh.reuse_detected")).toBe(0);
  });

  it("revokeByToken: any token of the family revokes it; unknown or garbage tokens are a no-op", async () => {
    const t = setup();
    const s = await t.login();
    const r = await t.sessions.rotate(s.refreshToken, CLIENT);
    expect(await t.sessions.revokeByToken("A".repeat(43), "logout")).toBeNull();
    expect(await t.sessions.revokeByToken("garbage", "logout")).toBeNull();
    expect(t.events.filter((e) => e.type === "session.revoked")).toEqual([]);
    expect((await t.sessions.revokeByToken(s.refreshToken, "logout"))!.id).toBe(s.session.id);
    expect((await t.stored(s)).revokedReason).toBe("logout");
    await invalidGrant(t.sessions.rotate(r.refreshToken, CLIENT));
  });

  it("pruneDead deletes idle, ended and long-revoked sessions, keeps live ones, and records how many", async () => {
    const t = setup();
    const live = await t.login();
    const idle = await t.login();
    const revoked = await t.login();
    await t.sessions.revokeSession(revoked.session, "logout");
    t.clock.advance(50 * 60);
    const liveNext = await t.sessions.rotate(live.refreshToken, CLIENT);
    t.clock.advance(20 * 60);
    expect(await t.sessions.pruneDead(3600)).toBe(2);
    expect(t.events.filter((e) => e.type === "sessions.pruned").map((e) => e.details)).toEqual([{ sessions: 2 }]);
    expect(await t.sessions.findById(idle.session.id)).toBeNull();
    expect(await t.sessions.findById(revoked.session.id)).toBeNull();
    expect((await t.sessions.rotate(liveNext.refreshToken, CLIENT)).outcome).toBe("rotated");
    expect(await t.sessions.pruneDead(3600)).toBe(0);
    expect(t.count("sessions.pruned")).toBe(1);
  });

  it("a revoked session is kept for the revocation retention even once it has ended and gone idle (its status bit stays set)", async () => {
    const t = setup();
    const s = await t.login();
    await t.sessions.revokeSession(s.session, "logout");
    // Past the idle timeout (1 h) and the absolute end (3 h): an unrevoked session would go now.
    t.clock.advance(5 * 3600);
    expect(await t.sessions.pruneDead(REVOKED_SESSION_RETENTION)).toBe(0);
    expect((await t.stored(s)).revokedReason).toBe("logout");
    t.clock.advance(REVOKED_SESSION_RETENTION - 5 * 3600);
    expect(await t.sessions.pruneDead(REVOKED_SESSION_RETENTION)).toBe(0); // revoked exactly at the cutoff
    t.clock.advance(1);
    expect(await t.sessions.pruneDead(REVOKED_SESSION_RETENTION)).toBe(1);
  });

  it("revoked sessions are kept a day, or the longest access-token lifetime plus the clock skew if that is longer", () => {
    expect(revokedSessionRetention(900, 60)).toBe(86400);
    expect(revokedSessionRetention(86400, 60)).toBe(86460);
    expect(revokedSessionRetention(7 * 86400, 0)).toBe(7 * 86400);
  });
});

describe("sessions: token status list", () => {
  it("each session gets its own index; every rotation and grace retry of a session keeps it", async () => {
    const t = setup();
    const [a, b, c] = [await t.login(), await t.login(), await t.login()];
    const indices = [a, b, c].map((x) => x.session.statusIdx);
    expect(new Set(indices).size).toBe(3);
    for (const idx of indices) expect(Number.isSafeInteger(idx) && idx! >= 0).toBe(true);
    expect((await t.stored(a)).statusIdx).toBe(a.session.statusIdx);
    const r = await t.sessions.rotate(a.refreshToken, CLIENT);
    expect(r.session.statusIdx).toBe(a.session.statusIdx);
    const retry = await t.sessions.rotate(a.refreshToken, CLIENT);
    expect(retry.outcome).toBe("grace_retry");
    expect(retry.session.statusIdx).toBe(a.session.statusIdx);
    t.clock.advance(60);
    expect((await t.sessions.rotate(r.refreshToken, CLIENT)).session.statusIdx).toBe(a.session.statusIdx);
  });

  it("2000 sessions (two blocks and more): all indices distinct", async () => {
    const t = setup();
    const indices = await Promise.all(Array.from({ length: 2000 }, () => t.login().then((x) => x.session.statusIdx)));
    expect(new Set(indices).size).toBe(2000);
  });

  it("the status lists hear of every revocation this instance makes, once: logout, reuse; nothing for a no-op", async () => {
    const t = setup();
    const a = await t.login();
    await t.sessions.revokeSession(a.session, "logout");
    expect(t.revocationsHeard.count).toBe(1);
    await t.sessions.revokeSession(a.session, "logout"); // already revoked
    expect(await t.sessions.revokeByToken("garbage", "logout")).toBeNull();
    expect(t.revocationsHeard.count).toBe(1);
    const { s } = await t.rotatedAgo(60);
    await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT));
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
    expect(t.revocationsHeard.count).toBe(2);
    // The revocation is committed before the lists hear of it.
    const b = await t.login();
    let revokedWhenHeard: Date | null | undefined;
    const heard = new Sessions(t.store, t.clock, randomBytes(32), t.audit, POLICY, t.statusIndices, {
      revoked: async () => void (revokedWhenHeard = (await t.stored(b)).revokedAt),
    });
    await heard.revokeSession(b.session, "logout");
    expect(revokedWhenHeard).toEqual(t.clock.now());
  });
});

describe("sessions: concurrency", () => {
  it("20 concurrent rotate() of one token within the grace window: one 'rotated', 19 'grace_retry', one successor", async () => {
    const t = setup();
    const s = await t.login();
    const results = await Promise.all(Array.from({ length: 20 }, () => t.sessions.rotate(s.refreshToken, CLIENT)));
    expect(results.filter((r) => r.outcome === "rotated")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "grace_retry")).toHaveLength(19);
    expect(new Set(results.map((r) => r.refreshToken)).size).toBe(1);
    expect(await t.familySize(s.refreshToken)).toBe(2);
    expect((await t.stored(s)).revokedAt).toBeNull();
    expect(t.count("refresh.grace_retry")).toBe(19);
    expect((await t.sessions.rotate(results[0]!.refreshToken, CLIENT)).outcome).toBe("rotated");
  });

  it("20 concurrent rotate() of one token without a grace window: one 'rotated', 19 refused, the family revoked once", async () => {
    const t = setup({ refreshReuseGrace: 0 });
    const s = await t.login();
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => t.sessions.rotate(s.refreshToken, CLIENT)));
    const won = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const lost = settled.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(won.map((r) => r.outcome)).toEqual(["rotated"]);
    expect(lost).toHaveLength(19);
    for (const e of lost) expect(e).toBeInstanceOf(InvalidGrant);
    expect(await t.familySize(s.refreshToken)).toBe(2);
    expect((await t.stored(s)).revokedReason).toBe("refresh_token_reuse");
    const reuse = t.events.filter((e) => e.type === "refresh.reuse_detected");
    expect(reuse.filter((e) => e.details?.familyRevoked === true)).toHaveLength(1);
    // The winner's token died with the family.
    await invalidGrant(t.sessions.rotate(won[0]!.refreshToken, CLIENT));
  });

  // A logout (revokeSession) injected before each store call a rotate() makes, for each path
  // through rotate(): the fresh consume, a grace retry, and the loser of a concurrent consume.
  // Whatever the point, no successor is handed out after the logout committed: rotate() decides
  // at its last store call (insertChild "inserted", or the grace retry's final findSession), so
  // it succeeds only when the logout comes after all of them; afterwards no token of the family
  // works.
  interface RotatePath {
    name: string;
    calls: string[];
    outcome: IssuedRefreshToken["outcome"];
    /** before rotate(): consume the token (so that rotate() is a grace retry) */
    consumedFirst?: boolean;
    /** another refresh with the same token runs just before this store call */
    raceAt?: number;
  }
  const paths: RotatePath[] = [
    { name: "a fresh token (the consume)", calls: ["findToken", "insertChild"], outcome: "rotated" },
    { name: "a grace retry", calls: ["findToken", "findSession"], outcome: "grace_retry", consumedFirst: true },
    {
      name: "the loser of a concurrent consume",
      calls: ["findToken", "insertChild", "findChildOf", "findSession"],
      outcome: "grace_retry",
      raceAt: 1,
    },
  ];

  for (const path of paths) {
    const points = [...path.calls.keys(), path.calls.length];
    it.each(points)(`logout vs rotate, ${path.name}: logout before store call %i`, async (k) => {
      const t = setup();
      const s = await t.login();
      if (path.consumedFirst) await t.sessions.rotate(s.refreshToken, CLIENT);
      t.clock.advance(1);
      const raced: IssuedRefreshToken[] = [];
      let loggedOutBefore: string | null = null;
      const { store, calls } = intercepted(t.store, async (method, n) => {
        if (n === path.raceAt) raced.push(await t.sessions.rotate(s.refreshToken, CLIENT));
        if (n === k) {
          await t.sessions.revokeSession(s.session, "logout");
          loggedOutBefore = method;
        }
      });
      const result = await t.sessionsOn(store).rotate(s.refreshToken, CLIENT).then(
        (r) => r,
        (e: unknown) => e,
      );
      expect(calls).toEqual(path.calls.slice(0, calls.length));
      if (path.raceAt !== undefined) expect(raced.map((r) => r.outcome)).toEqual(calls.length > path.raceAt ? ["rotated"] : []);
      if (k === path.calls.length) {
        expect(calls).toEqual(path.calls);
        expect(result).toMatchObject({ outcome: path.outcome });
        await t.sessions.revokeSession(s.session, "logout");
      } else {
        expect(loggedOutBefore).toBe(path.calls[k]);
        expect(result).toBeInstanceOf(InvalidGrant);
        expect((result as InvalidGrant).description).toMatch(/revoked/);
      }
      expect((await t.stored(s)).revokedReason).toBe("logout");
      // A logout before the consume leaves nothing consumed.
      if (path.outcome === "rotated") expect((await t.sessions.lookup(s.refreshToken))!.child === null).toBe(k <= 1);
      // After the logout no token of the family works.
      for (const r of [result, ...raced]) {
        if (!(r instanceof InvalidGrant)) await invalidGrant(t.sessions.rotate((r as IssuedRefreshToken).refreshToken, CLIENT));
      }
      await invalidGrant(t.sessions.rotate(s.refreshToken, CLIENT));
    });
  }

  it("logout and rotate started together, 20 times with different head starts: never a live successor after the logout", async () => {
    const seen = new Set<string>();
    for (let delay = 0; delay < 20; delay++) {
      const t = setup();
      const s = await t.login();
      const tick = async (n: number) => {
        for (let i = 0; i < n; i++) await Promise.resolve();
      };
      const [result] = await Promise.allSettled([
        t.sessions.rotate(s.refreshToken, CLIENT),
        tick(delay).then(() => t.sessions.revokeSession(s.session, "logout")),
      ]);
      seen.add(result.status);
      if (result.status === "fulfilled") await invalidGrant(t.sessions.rotate(result.value.refreshToken, CLIENT));
      else expect(result.reason).toBeInstanceOf(InvalidGrant);
      expect((await t.stored(s)).revokedReason).toBe("logout");
    }
    // The head starts cover both orders: the logout first, and the rotation first.
    expect([...seen].sort()).toEqual(["fulfilled", "rejected"]);
  });
});
