// An in-memory SessionStore: for fast unit tests of the session rules (domain/sessions), and a
// possible backing for a single-process dev mode. It is held to the same contract suite as the
// Prisma store (test/integration/session-store-contract.test.ts), so what the rules see here is
// what they see on SQLite and Postgres: the same outcomes, boundaries and exactly-once answers.
//
// Every method does its work synchronously inside one call, so each is atomic on its own and
// concurrent callers interleave only between calls, as they do between statements on a
// database: a revoke that lands before insertChild makes it insert nothing ("session_ended").
// Records are copied in and out, so a caller mutating what it got cannot change the store.
//
// What the database's other tables provide comes from `users` (roles, disabledAt, passwordHash:
// read at each call, so a test can change them). Clients are not checked (no foreign key on clientId here).
import type {
  ConsumeOutcome,
  LiveSession,
  LoginCheck,
  PruneResult,
  RefreshTokenLookup,
  RefreshTokenRecord,
  SessionRecord,
  SessionStore,
} from "../../domain/sessions/session-store.ts";

/** What the store needs to know of a user; a `Map<string, SessionUser>` will do. */
export interface SessionUser {
  roles: readonly string[];
  disabledAt: Date | null;
  passwordHash: string;
}

export interface SessionUsers {
  get(userId: string): SessionUser | undefined;
}

const copyDate = (d: Date | null): Date | null => (d === null ? null : new Date(d.getTime()));
const copySession = (s: SessionRecord): SessionRecord => ({
  ...s,
  createdAt: new Date(s.createdAt.getTime()),
  expiresAt: new Date(s.expiresAt.getTime()),
  revokedAt: copyDate(s.revokedAt),
});
const copyToken = (t: RefreshTokenRecord): RefreshTokenRecord => ({
  ...t,
  createdAt: new Date(t.createdAt.getTime()),
  expiresAt: new Date(t.expiresAt.getTime()),
});

export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<string, SessionRecord>();
  /** by token id */
  readonly #tokens = new Map<string, RefreshTokenRecord>();
  /** the unique indexes: hash -> token id, parentId -> token id */
  readonly #byHash = new Map<string, string>();
  readonly #byParent = new Map<string, string>();

  constructor(private readonly users: SessionUsers) {}

  async start(session: SessionRecord, first: RefreshTokenRecord, check: LoginCheck): Promise<boolean> {
    // The user as the login found it, or nothing is written (no such user either).
    const user = this.users.get(session.userId);
    if (!user || user.disabledAt !== null || user.passwordHash !== check.passwordHash) return false;
    // Every check before any write: the database's transaction keeps neither row on failure.
    if (this.#sessions.has(session.id)) throw new Error(`session ${session.id} already exists`);
    // The unique statusIdx: a status list index belongs to one session only.
    if (session.statusIdx !== null && [...this.#sessions.values()].some((s) => s.statusIdx === session.statusIdx)) {
      throw new Error(`status list index ${session.statusIdx} already belongs to a session`);
    }
    if (first.sessionId !== session.id) throw new Error("the first refresh token belongs to another session");
    this.#assertInsertable(first);
    if (first.parentId !== null) throw new Error("a session's first refresh token has no parent");
    this.#sessions.set(session.id, copySession(session));
    this.#put(first);
    return true;
  }

  async findToken(hash: string): Promise<RefreshTokenLookup | null> {
    const id = this.#byHash.get(hash);
    const token = id === undefined ? undefined : this.#tokens.get(id);
    if (!token) return null;
    const session = this.#sessions.get(token.sessionId)!;
    const user = this.#user(session.userId);
    return {
      token: copyToken(token),
      session: copySession(session),
      user: { roles: [...user.roles], disabledAt: copyDate(user.disabledAt) },
      child: this.#childOf(token.id),
    };
  }

  async insertChild(child: RefreshTokenRecord, now: Date): Promise<ConsumeOutcome> {
    // Liveness first, as the database's INSERT ... SELECT: an ended session inserts nothing,
    // whether or not the parent was consumed.
    const session = this.#sessions.get(child.sessionId);
    if (!session || session.revokedAt !== null || session.expiresAt <= now) return "session_ended";
    if (this.#user(session.userId).disabledAt !== null) return "session_ended";
    if (child.parentId === null || !this.#tokens.has(child.parentId)) throw new Error(`no refresh token ${child.parentId} to consume`);
    // The unique indexes (parentId, hash): the loser of a concurrent consume.
    if (this.#byParent.has(child.parentId) || this.#byHash.has(child.hash)) return "consumed";
    if (this.#tokens.has(child.id)) throw new Error(`refresh token ${child.id} already exists`);
    this.#put(child);
    return "inserted";
  }

  async findChildOf(parentId: string): Promise<{ token: RefreshTokenRecord; consumed: boolean } | null> {
    return this.#childOf(parentId);
  }

  async findSession(id: string): Promise<SessionRecord | null> {
    const session = this.#sessions.get(id);
    return session ? copySession(session) : null;
  }

  async revoke(sessionId: string, reason: string, at: Date): Promise<boolean> {
    const session = this.#sessions.get(sessionId);
    if (!session || session.revokedAt !== null) return false;
    this.#sessions.set(sessionId, { ...session, revokedAt: new Date(at.getTime()), revokedReason: reason });
    return true;
  }

  async revokeAllForUser(userId: string, reason: string, at: Date, exceptSessionId?: string): Promise<number> {
    let count = 0;
    for (const session of this.#sessions.values()) {
      if (session.userId !== userId || session.revokedAt !== null || session.id === exceptSessionId) continue;
      this.#sessions.set(session.id, { ...session, revokedAt: new Date(at.getTime()), revokedReason: reason });
      count++;
    }
    return count;
  }

  async listLive(userId: string, now: Date, limit: number): Promise<LiveSession[]> {
    const newest = new Map<string, RefreshTokenRecord>();
    for (const t of this.#tokens.values()) {
      const seen = newest.get(t.sessionId);
      if (!seen || t.createdAt > seen.createdAt || (t.createdAt.getTime() === seen.createdAt.getTime() && t.expiresAt > seen.expiresAt)) newest.set(t.sessionId, t);
    }
    const live: LiveSession[] = [];
    for (const s of this.#sessions.values()) {
      const token = newest.get(s.id);
      if (s.userId !== userId || s.revokedAt !== null || s.expiresAt <= now || !token || token.expiresAt <= now) continue;
      live.push({ session: copySession(s), lastUsedAt: new Date(token.createdAt.getTime()), idleExpiresAt: new Date(token.expiresAt.getTime()) });
    }
    live.sort((a, b) => b.session.createdAt.getTime() - a.session.createdAt.getTime() || (a.session.id < b.session.id ? -1 : a.session.id > b.session.id ? 1 : 0));
    return live.slice(0, limit);
  }

  async pruneDead(endedBefore: Date, revokedBefore: Date): Promise<PruneResult> {
    const live = new Set<string>();
    for (const t of this.#tokens.values()) if (t.expiresAt >= endedBefore) live.add(t.sessionId);
    const dead = [...this.#sessions.values()].filter((s) =>
      s.revokedAt === null ? s.expiresAt < endedBefore || !live.has(s.id) : s.revokedAt < revokedBefore,
    );
    for (const s of dead) this.#sessions.delete(s.id);
    // Their tokens go with them (the database's ON DELETE CASCADE).
    for (const t of [...this.#tokens.values()]) {
      if (this.#sessions.has(t.sessionId)) continue;
      this.#tokens.delete(t.id);
      this.#byHash.delete(t.hash);
      if (t.parentId !== null) this.#byParent.delete(t.parentId);
    }
    return { sessions: dead.length };
  }

  #user(userId: string): SessionUser {
    const user = this.users.get(userId);
    if (!user) throw new Error(`no user ${userId}`);
    return user;
  }

  #assertInsertable(t: RefreshTokenRecord): void {
    if (this.#tokens.has(t.id)) throw new Error(`refresh token ${t.id} already exists`);
    if (this.#byHash.has(t.hash)) throw new Error("a refresh token with this hash already exists");
  }

  #put(t: RefreshTokenRecord): void {
    this.#tokens.set(t.id, copyToken(t));
    this.#byHash.set(t.hash, t.id);
    if (t.parentId !== null) this.#byParent.set(t.parentId, t.id);
  }

  #childOf(parentId: string): { token: RefreshTokenRecord; consumed: boolean } | null {
    const id = this.#byParent.get(parentId);
    const child = id === undefined ? undefined : this.#tokens.get(id);
    return child ? { token: copyToken(child), consumed: this.#byParent.has(child.id) } : null;
  }
}
