// One contract for every SessionStore: the memory store (the fast unit tests of the session rules
// run on it) and the Prisma store on each database. Each method's promise as the rules rely on it:
// the lookup's shape, the atomic consume and its three outcomes, exactly-once revocation, and
// which sessions pruning deletes, boundaries included. Where the memory store answers like the
// databases here, the unit tests of domain/sessions say something about production.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RefreshTokenRecord, SessionRecord, SessionStore } from "../../src/domain/sessions/session-store.ts";
import { newId } from "../../src/domain/ids.ts";
import { hashRefreshToken, newRefreshToken } from "../../src/domain/tokens/refresh-token.ts";
import { MemorySessionStore, type SessionUser } from "../../src/storage/memory/session-store.ts";
import { openPrismaStorage, type PrismaStorage } from "../../src/storage/prisma/index.ts";
import { flavors, freshDatabase, type Flavor } from "../helpers/issuer.ts";

// ms precision on purpose: both databases keep milliseconds.
const T0 = new Date("2030-01-01T00:00:00.123Z");
const at = (base: Date, ms: number) => new Date(base.getTime() + ms);
const HOUR = 3_600_000;
const CLIENT = "web";

/** The stored hash of every user the targets make, and the check a login made against it. */
const PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$the-user's-salt$the-user's-hash";
const AS_CHECKED = { passwordHash: PASSWORD_HASH };

// ---- targets ----

interface Backend {
  store: SessionStore;
  /** a new user with these roles; its id */
  user(roles?: string[]): Promise<string>;
  disable(userId: string, at: Date): Promise<void>;
  /** `n` stores on the same data for concurrent calls: other connections where that works */
  peers(n: number): SessionStore[];
}

interface Target {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<Backend>;
}

const memoryTarget: Target = {
  name: "memory",
  setup: async () => undefined,
  teardown: async () => undefined,
  async fresh() {
    const users = new Map<string, SessionUser>();
    const store = new MemorySessionStore(users);
    return {
      store,
      async user(roles = []) {
        const id = newId();
        users.set(id, { roles, disabledAt: null, passwordHash: PASSWORD_HASH });
        return id;
      },
      async disable(userId, when) {
        users.set(userId, { ...users.get(userId)!, disabledAt: when });
      },
      peers: (n) => Array.from({ length: n }, () => store),
    };
  },
};

function prismaTarget(flavor: Flavor): Target {
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let storage: PrismaStorage | undefined;
  // Postgres: a second instance (its own pool). SQLite: the same one, as in the key-store
  // contract (better-sqlite3 waits for a busy database synchronously, on the one event loop).
  let other: PrismaStorage | undefined;
  return {
    name: `prisma [${flavor}]`,
    async setup() {
      db = await freshDatabase(flavor);
      storage = await openPrismaStorage(db.url);
      other = flavor === "postgres" ? await openPrismaStorage(db.url) : storage;
      await storage.clients.create({
        id: CLIENT,
        name: "Web",
        type: "public",
        secretHash: null,
        grantTypes: ["password", "refresh_token"],
        scopes: ["profile"],
        audiences: [],
        resources: [],
        accessTokenTtl: null,
        refreshTokenTtl: null,
        createdAt: T0,
        disabledAt: null,
      });
    },
    async teardown() {
      if (other !== storage) await other?.close();
      await storage?.close();
      await db?.drop();
    },
    async fresh() {
      const s = storage!;
      // pruneDead looks at every session: start each test with none (tokens cascade).
      await s.db.session.deleteMany();
      const emails = new Map<string, string>();
      return {
        store: s.sessions,
        async user(roles = []) {
          const id = newId();
          const email = `${id}@example.test`;
          emails.set(id, email);
          await s.users.create({ id, email, passwordHash: PASSWORD_HASH, roles, createdAt: T0, disabledAt: null });
          return id;
        },
        async disable(userId, when) {
          await s.users.setDisabled(userId, when);
        },
        peers: (n) => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? s : other!).sessions),
      };
    },
  };
}

const targets: Target[] = [memoryTarget, ...flavors().map(prismaTarget)];

// ---- records ----

const newHash = () => hashRefreshToken(newRefreshToken());
/** Token status list indices: unique per session, as the allocator hands them out. */
let nextStatusIdx = 2 ** 40; // beyond 32 bits: the column is a BIGINT

function sessionRecord(userId: string, o: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: newId(),
    userId,
    clientId: CLIENT,
    scope: "profile",
    createdAt: T0,
    expiresAt: at(T0, 3 * HOUR),
    revokedAt: null,
    revokedReason: null,
    statusIdx: nextStatusIdx++,
    ...o,
  };
}

function tokenRecord(session: SessionRecord, parent: RefreshTokenRecord | null, o: Partial<RefreshTokenRecord> = {}): RefreshTokenRecord {
  const createdAt = o.createdAt ?? parent?.createdAt ?? session.createdAt;
  return {
    id: newId(),
    sessionId: session.id,
    hash: newHash(),
    parentId: parent?.id ?? null,
    createdAt,
    expiresAt: at(createdAt, HOUR),
    ...o,
  };
}

// ---- the contract ----

for (const target of targets) {
  describe(`session store contract: ${target.name}`, () => {
    let b: Backend;
    let store: SessionStore;

    beforeAll(() => target.setup());
    afterAll(() => target.teardown());
    beforeEach(async () => {
      b = await target.fresh();
      store = b.store;
    });

    /** A session of a new user (or `userId`) with its first token, started in the store. */
    async function started(o: { userId?: string; session?: Partial<SessionRecord>; first?: Partial<RefreshTokenRecord> } = {}) {
      const userId = o.userId ?? (await b.user());
      const session = sessionRecord(userId, o.session);
      const first = tokenRecord(session, null, o.first);
      expect(await store.start(session, first, AS_CHECKED)).toBe(true);
      return { userId, session, first };
    }

    /** Inserts the child of `parent` (created `ms` after it), expecting it to be inserted. */
    async function rotated(session: SessionRecord, parent: RefreshTokenRecord, ms = 1000, o: Partial<RefreshTokenRecord> = {}) {
      const child = tokenRecord(session, parent, { createdAt: at(parent.createdAt, ms), ...o });
      expect(await store.insertChild(child, child.createdAt)).toBe("inserted");
      return child;
    }

    // -- start, findToken, findSession --

    it("start then findToken: the token, its session, the user's roles and disabledAt, and no child", async () => {
      const userId = await b.user(["admin", "reports:reader"]);
      const { session, first } = await started({ userId });
      expect(await store.findToken(first.hash)).toEqual({
        token: first,
        session,
        user: { roles: ["admin", "reports:reader"], disabledAt: null },
        child: null,
      });
      expect(await store.findSession(session.id)).toEqual(session);
    });

    it("findToken reads the user as of the read: no roles is [], a disabled user has its disabledAt", async () => {
      const { userId, first } = await started();
      expect((await store.findToken(first.hash))!.user).toEqual({ roles: [], disabledAt: null });
      await b.disable(userId, at(T0, 5000));
      expect((await store.findToken(first.hash))!.user).toEqual({ roles: [], disabledAt: at(T0, 5000) });
    });

    it("unknown hash, session id or parent: null", async () => {
      const { first } = await started();
      expect(await store.findToken(newHash())).toBeNull();
      expect(await store.findSession(newId())).toBeNull();
      expect(await store.findChildOf(newId())).toBeNull();
      // A token that was never consumed has no child.
      expect(await store.findChildOf(first.id)).toBeNull();
    });

    it("start writes nothing and answers false when the user is not as the login found it: another password hash, disabled, or gone", async () => {
      const userId = await b.user();
      const attempt = async (check: { passwordHash: string }, forUser = userId) => {
        const session = sessionRecord(forUser);
        const first = tokenRecord(session, null);
        const started = await store.start(session, first, check);
        if (!started) {
          expect(await store.findSession(session.id)).toBeNull();
          expect(await store.findToken(first.hash)).toBeNull();
        }
        return started;
      };
      expect(await attempt({ passwordHash: "$argon2id$another-hash" })).toBe(false);
      expect(await attempt({ passwordHash: "" })).toBe(false);
      expect(await attempt(AS_CHECKED, newId())).toBe(false);
      await b.disable(userId, T0);
      expect(await attempt(AS_CHECKED)).toBe(false);
      expect(await store.listLive(userId, T0, 10)).toEqual([]);
      // The same user, hash and state as checked: started.
      expect(await attempt(AS_CHECKED, await b.user())).toBe(true);
    });

    it("start is one write: a first token whose hash exists is refused and no session is left", async () => {
      const { first } = await started();
      const userId = await b.user();
      const session = sessionRecord(userId);
      await expect(store.start(session, tokenRecord(session, null, { hash: first.hash }), AS_CHECKED)).rejects.toThrow();
      expect(await store.findSession(session.id)).toBeNull();
      expect((await store.findToken(first.hash))!.session.id).toBe(first.sessionId);
    });

    it("statusIdx is stored and read back by findToken and findSession; null (a session from before the status list) too", async () => {
      const { session, first } = await started();
      expect(typeof session.statusIdx).toBe("number");
      expect((await store.findToken(first.hash))!.session.statusIdx).toBe(session.statusIdx);
      expect((await store.findSession(session.id))!.statusIdx).toBe(session.statusIdx);
      const old = await started({ session: { statusIdx: null } });
      expect((await store.findToken(old.first.hash))!.session.statusIdx).toBeNull();
      expect((await store.findSession(old.session.id))!.statusIdx).toBeNull();
      // Several sessions without an index may coexist.
      await started({ session: { statusIdx: null } });
    });

    it("statusIdx is unique: a session started with another session's index is refused, and nothing of it is stored", async () => {
      const { session } = await started();
      const userId = await b.user();
      const clash = sessionRecord(userId, { statusIdx: session.statusIdx });
      const first = tokenRecord(clash, null);
      await expect(store.start(clash, first, AS_CHECKED)).rejects.toThrow();
      expect(await store.findSession(clash.id)).toBeNull();
      expect(await store.findToken(first.hash)).toBeNull();
    });

    it("records read back are copies: changing one does not change the store", async () => {
      const { session, first } = await started();
      const got = (await store.findToken(first.hash))!;
      got.session.expiresAt.setTime(0);
      got.token.expiresAt.setTime(0);
      got.user.roles.push("admin");
      expect(await store.findToken(first.hash)).toEqual({ token: first, session, user: { roles: [], disabledAt: null }, child: null });
    });

    // -- insertChild, findChildOf --

    it("insertChild 'inserted': the parent shows its child, unconsumed; the child has its own lookup", async () => {
      const { session, first } = await started();
      const child = await rotated(session, first);
      const parent = (await store.findToken(first.hash))!;
      expect(parent.child).toEqual({ token: child, consumed: false });
      expect(await store.findChildOf(first.id)).toEqual({ token: child, consumed: false });
      const own = (await store.findToken(child.hash))!;
      expect(own.token).toEqual(child);
      expect(own.session).toEqual(session);
      expect(own.child).toBeNull();
      expect(await store.findChildOf(child.id)).toBeNull();
    });

    it("once the child is consumed too, the parent's child shows consumed: true", async () => {
      const { session, first } = await started();
      const child = await rotated(session, first);
      const grandchild = await rotated(session, child);
      expect((await store.findToken(first.hash))!.child).toEqual({ token: child, consumed: true });
      expect(await store.findChildOf(first.id)).toEqual({ token: child, consumed: true });
      expect((await store.findToken(child.hash))!.child).toEqual({ token: grandchild, consumed: false });
      expect((await store.findToken(grandchild.hash))!.child).toBeNull();
    });

    it("a second child of the same parent: 'consumed', and only the first child is stored", async () => {
      const { session, first } = await started();
      const child = await rotated(session, first);
      const second = tokenRecord(session, first, { createdAt: at(T0, 2000) });
      expect(await store.insertChild(second, second.createdAt)).toBe("consumed");
      expect(await store.findToken(second.hash)).toBeNull();
      expect(await store.findChildOf(first.id)).toEqual({ token: child, consumed: false });
    });

    it("the same child token (same hash) inserted again under another id: 'consumed'", async () => {
      const { session, first } = await started();
      const child = await rotated(session, first);
      expect(await store.insertChild({ ...child, id: newId() }, child.createdAt)).toBe("consumed");
      expect(await store.findChildOf(first.id)).toEqual({ token: child, consumed: false });
    });

    it("just before the session's expiresAt: 'inserted'", async () => {
      const { session, first } = await started();
      const child = tokenRecord(session, first);
      expect(await store.insertChild(child, at(session.expiresAt, -1))).toBe("inserted");
    });

    const endings: Array<[string, (s: { session: SessionRecord; userId: string }) => Promise<Date>]> = [
      [
        "revoked",
        async ({ session }) => {
          await store.revoke(session.id, "logout", at(T0, 500));
          return at(T0, 1000);
        },
      ],
      ["at its expiresAt (the session must end after now)", async ({ session }) => session.expiresAt],
      ["past its expiresAt", async ({ session }) => at(session.expiresAt, 1)],
      [
        "whose user is disabled",
        async ({ userId }) => {
          await b.disable(userId, at(T0, 500));
          return at(T0, 1000);
        },
      ],
    ];

    it.each(endings)("a session %s: 'session_ended', nothing is inserted", async (_, end) => {
      const { session, first, userId } = await started();
      const now = await end({ session, userId });
      const child = tokenRecord(session, first, { createdAt: now });
      expect(await store.insertChild(child, now)).toBe("session_ended");
      expect(await store.findToken(child.hash)).toBeNull();
      expect(await store.findChildOf(first.id)).toBeNull();
    });

    it("an ended session whose token was already consumed: 'session_ended' (liveness is judged first)", async () => {
      const { session, first } = await started();
      const child = await rotated(session, first);
      await store.revoke(session.id, "logout", at(T0, 1500));
      expect(await store.insertChild(tokenRecord(session, first, { createdAt: at(T0, 2000) }), at(T0, 2000))).toBe("session_ended");
      expect(await store.findChildOf(first.id)).toEqual({ token: child, consumed: false });
    });

    it.each([
      ["distinct tokens", false],
      ["the same derived token (as concurrent refreshes insert)", true],
    ])("10 concurrent insertChild of one parent, %s: exactly one 'inserted', 9 'consumed'", async (_, sameHash) => {
      const { session, first } = await started();
      const hash = newHash();
      const children = Array.from({ length: 10 }, () => tokenRecord(session, first, { createdAt: at(T0, 1000), ...(sameHash ? { hash } : {}) }));
      const stores = b.peers(children.length);
      const outcomes = await Promise.all(children.map((c, i) => stores[i]!.insertChild(c, c.createdAt)));
      expect(outcomes.filter((o) => o === "inserted")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "consumed")).toHaveLength(9);
      const winner = children[outcomes.indexOf("inserted")]!;
      expect(await store.findChildOf(first.id)).toEqual({ token: winner, consumed: false });
    });

    it("insertChild racing a revoke, 10 times: either 'inserted' and stored, or 'session_ended' and nothing stored", async () => {
      for (let i = 0; i < 10; i++) {
        const { session, first } = await started();
        const child = tokenRecord(session, first, { createdAt: at(T0, 1000) });
        const [a, c] = b.peers(2);
        const [outcome, revoked] = await Promise.all([a!.insertChild(child, child.createdAt), c!.revoke(session.id, "logout", child.createdAt)]);
        expect(revoked).toBe(true);
        expect(["inserted", "session_ended"]).toContain(outcome);
        expect(await store.findChildOf(first.id)).toEqual(outcome === "inserted" ? { token: child, consumed: false } : null);
      }
    });

    // -- revoke, revokeAllForUser --

    it("revoke: true once, stores when and why; a second revoke is false and changes nothing; unknown id: false", async () => {
      const { session, first } = await started();
      expect(await store.revoke(session.id, "logout", at(T0, 1000))).toBe(true);
      const revoked = { ...session, revokedAt: at(T0, 1000), revokedReason: "logout" };
      expect(await store.findSession(session.id)).toEqual(revoked);
      expect((await store.findToken(first.hash))!.session).toEqual(revoked);
      expect(await store.revoke(session.id, "refresh_token_reuse", at(T0, 2000))).toBe(false);
      expect(await store.findSession(session.id)).toEqual(revoked);
      expect(await store.revoke(newId(), "logout", T0)).toBe(false);
    });

    it("10 concurrent revokes of one session: exactly one true, and its reason is the one stored", async () => {
      const { session } = await started();
      const stores = b.peers(10);
      const results = await Promise.all(stores.map((s, i) => s.revoke(session.id, `reason-${i}`, at(T0, 1000 + i))));
      expect(results.filter(Boolean)).toHaveLength(1);
      const i = results.indexOf(true);
      expect(await store.findSession(session.id)).toMatchObject({ revokedReason: `reason-${i}`, revokedAt: at(T0, 1000 + i) });
    });

    it("revokeAllForUser revokes and counts that user's unrevoked sessions; revoked ones and other users' are untouched", async () => {
      const userId = await b.user();
      const a = await started({ userId });
      const c = await started({ userId });
      const old = await started({ userId });
      const otherUser = await started();
      await store.revoke(old.session.id, "logout", at(T0, 100));
      expect(await store.revokeAllForUser(userId, "user_disabled", at(T0, 1000))).toBe(2);
      for (const s of [a.session, c.session]) {
        expect(await store.findSession(s.id)).toEqual({ ...s, revokedAt: at(T0, 1000), revokedReason: "user_disabled" });
      }
      expect(await store.findSession(old.session.id)).toEqual({ ...old.session, revokedAt: at(T0, 100), revokedReason: "logout" });
      expect(await store.findSession(otherUser.session.id)).toEqual(otherUser.session);
      expect(await store.revokeAllForUser(userId, "user_disabled", at(T0, 2000))).toBe(0);
      expect(await store.revokeAllForUser(newId(), "user_disabled", at(T0, 2000))).toBe(0);
    });

    // What the Prisma store does today: "live" here means "not revoked". A session past its end
    // that pruning has not deleted yet is revoked and counted too.
    it("revokeAllForUser also revokes and counts an ended session that is not revoked yet", async () => {
      const userId = await b.user();
      await started({ userId, session: { expiresAt: at(T0, 1000) } });
      await started({ userId });
      expect(await store.revokeAllForUser(userId, "user_disabled", at(T0, 5000))).toBe(2);
    });

    it("two concurrent revokeAllForUser: each session is revoked once, the counts add up", async () => {
      const userId = await b.user();
      for (let i = 0; i < 5; i++) await started({ userId });
      const [x, y] = b.peers(2);
      const counts = await Promise.all([x!.revokeAllForUser(userId, "a", at(T0, 1000)), y!.revokeAllForUser(userId, "b", at(T0, 1000))]);
      expect(counts[0]! + counts[1]!).toBe(5);
    });

    it("revokeAllForUser with an exception leaves that session alone", async () => {
      const userId = await b.user();
      const kept = await started({ userId });
      const gone = await started({ userId });
      expect(await store.revokeAllForUser(userId, "password_changed", at(T0, 1000), kept.session.id)).toBe(1);
      expect(await store.findSession(kept.session.id)).toEqual(kept.session);
      expect(await store.findSession(gone.session.id)).toMatchObject({ revokedAt: at(T0, 1000), revokedReason: "password_changed" });
    });

    // -- login metadata, listLive --

    it("start keeps the login metadata; findSession and findToken read it back", async () => {
      const { session, first } = await started({ session: { userAgent: "Agent/1.0", address: "2001:db8::1" } });
      expect(await store.findSession(session.id)).toEqual(session);
      expect((await store.findToken(first.hash))!.session.id).toBe(session.id);
      const bare = await started();
      expect(await store.findSession(bare.session.id)).toEqual(bare.session);
    });

    it("listLive: the user's live sessions newest first, with their newest token's times; revoked, ended, idle and other users' left out", async () => {
      const userId = await b.user();
      const older = await started({ userId, session: { userAgent: "Old/1" } });
      const rotatedChild = await rotated(older.session, older.first, 5000);
      const newer = await started({ userId, session: { createdAt: at(T0, 1000) }, first: { createdAt: at(T0, 1000) } });
      const revoked = await started({ userId });
      await store.revoke(revoked.session.id, "logout", at(T0, 100));
      await started({ userId, session: { expiresAt: at(T0, 2000) } }); // ended at the absolute end
      await started({ userId, first: { expiresAt: at(T0, 2000) } }); // idle: its newest token is past
      await started(); // another user's
      const now = at(T0, 3000);
      const live = await store.listLive(userId, now, 100);
      expect(live.map((l) => l.session.id)).toEqual([newer.session.id, older.session.id]);
      expect(live[1]).toEqual({ session: older.session, lastUsedAt: rotatedChild.createdAt, idleExpiresAt: rotatedChild.expiresAt });
      expect(live[0]).toEqual({ session: newer.session, lastUsedAt: newer.first.createdAt, idleExpiresAt: newer.first.expiresAt });
      expect(await store.listLive(userId, now, 1)).toHaveLength(1);
      expect(await store.listLive(newId(), now, 100)).toEqual([]);
    });

    // -- pruneDead --

    it("pruneDead deletes exactly the dead sessions (ended, idle past the newest token, revoked before the cutoff) with their tokens", async () => {
      const now = at(T0, 10 * HOUR);
      const revokedBefore = at(now, -HOUR);
      const late = at(now, HOUR);
      // live: its first token is long idle, but the newest one is not
      const live = await started({ session: { expiresAt: late } });
      const liveChild = await rotated(live.session, live.first, 9.5 * HOUR);
      // ended: past its absolute end, even with a token whose own deadline is later
      const ended = await started({ session: { expiresAt: at(now, -1) }, first: { expiresAt: late } });
      // idle: its newest token's deadline has passed
      const idle = await started({ session: { expiresAt: late } });
      const idleChild = await rotated(idle.session, idle.first, 1000, { expiresAt: at(now, -1) });
      // revoked before the cutoff (tokens still within their deadlines)
      const longRevoked = await started({ session: { expiresAt: late }, first: { expiresAt: late } });
      await store.revoke(longRevoked.session.id, "logout", at(revokedBefore, -1));
      // revoked at or after the cutoff: kept for now
      const recentlyRevoked = await started({ session: { expiresAt: late }, first: { expiresAt: late } });
      await store.revoke(recentlyRevoked.session.id, "logout", at(revokedBefore, 1));
      const revokedAtCutoff = await started({ session: { expiresAt: late }, first: { expiresAt: late } });
      await store.revoke(revokedAtCutoff.session.id, "logout", revokedBefore);

      expect(await store.pruneDead(now, revokedBefore)).toEqual({ sessions: 3 });

      for (const gone of [ended, idle, longRevoked]) {
        expect(await store.findSession(gone.session.id)).toBeNull();
        expect(await store.findToken(gone.first.hash)).toBeNull();
      }
      expect(await store.findToken(idleChild.hash)).toBeNull();
      for (const kept of [live, recentlyRevoked, revokedAtCutoff]) {
        expect(await store.findSession(kept.session.id)).not.toBeNull();
        expect(await store.findToken(kept.first.hash)).not.toBeNull();
      }
      expect((await store.findToken(liveChild.hash))!.token).toEqual(liveChild);
      expect(await store.findChildOf(live.first.id)).toEqual({ token: liveChild, consumed: false });
      // Nothing dead is left to delete.
      expect(await store.pruneDead(now, revokedBefore)).toEqual({ sessions: 0 });
    });

    it("pruneDead keeps a revoked session until the revocation cutoff even when it has ended or gone idle (its status bit)", async () => {
      const now = at(T0, 10 * HOUR);
      const revokedBefore = at(now, -HOUR);
      const ended = await started({ session: { expiresAt: at(now, -1) }, first: { expiresAt: at(now, -1) } });
      const idle = await started({ first: { expiresAt: at(now, -1) } });
      for (const s of [ended, idle]) await store.revoke(s.session.id, "logout", revokedBefore);
      expect(await store.pruneDead(now, revokedBefore)).toEqual({ sessions: 0 });
      for (const s of [ended, idle]) expect((await store.findSession(s.session.id))!.revokedAt).toEqual(revokedBefore);
      expect(await store.pruneDead(now, at(revokedBefore, 1))).toEqual({ sessions: 2 });
      for (const s of [ended, idle]) expect(await store.findSession(s.session.id)).toBeNull();
    });

    it("pruneDead deletes more dead sessions than one chunk holds (the Prisma store deletes 200 per statement), and only those", async () => {
      const now = at(T0, 10 * HOUR);
      const late = at(now, HOUR);
      const dead = 567;
      for (let i = 0; i < dead; i += 50) {
        await Promise.all(Array.from({ length: Math.min(50, dead - i) }, () => started({ session: { expiresAt: at(now, -1) }, first: { expiresAt: at(now, -1) } })));
      }
      const live = await Promise.all([0, 1, 2].map(() => started({ session: { expiresAt: late }, first: { expiresAt: late } })));
      expect(await store.pruneDead(now, T0)).toEqual({ sessions: dead });
      for (const kept of live) expect(await store.findToken(kept.first.hash)).not.toBeNull();
      expect(await store.pruneDead(now, T0)).toEqual({ sessions: 0 });
    }, 60_000);

    it("pruneDead finds a few dead sessions among many live ones, across chunks (the Prisma store looks at 200 per chunk)", async () => {
      const now = at(T0, 10 * HOUR);
      const late = at(now, HOUR);
      const live: Array<Awaited<ReturnType<typeof started>>> = [];
      for (let i = 0; i < 450; i += 50) live.push(...(await Promise.all(Array.from({ length: 50 }, () => started({ session: { expiresAt: late }, first: { expiresAt: late } })))));
      const dead = await Promise.all(Array.from({ length: 7 }, () => started({ session: { expiresAt: at(now, -1) } })));
      expect(await store.pruneDead(now, T0)).toEqual({ sessions: 7 });
      for (const gone of dead) expect(await store.findSession(gone.session.id)).toBeNull();
      for (const kept of live) expect(await store.findToken(kept.first.hash)).not.toBeNull();
    }, 60_000);

    it("pruneDead keeps a session whose end, or newest token's deadline, is exactly now (deleted from the next instant)", async () => {
      const now = at(T0, 2 * HOUR);
      const endsNow = await started({ session: { expiresAt: now }, first: { expiresAt: now } });
      const idleNow = await started({ first: { expiresAt: now } });
      expect(await store.pruneDead(now, T0)).toEqual({ sessions: 0 });
      expect(await store.pruneDead(at(now, 1), T0)).toEqual({ sessions: 2 });
      expect(await store.findSession(endsNow.session.id)).toBeNull();
      expect(await store.findSession(idleNow.session.id)).toBeNull();
    });
  });
}
