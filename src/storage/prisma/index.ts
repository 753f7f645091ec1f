// Prisma implementation of the storage ports, one code base for SQLite and Postgres.
// The refresh hot path (findToken, insertChild) runs on the driver directly (fast-path.ts): one
// read (token + session + child) and one INSERT whose unique parentId arbitrates concurrent
// consumers.
import type { AuditEventRecord } from "../../domain/audit-store.ts";
import type { ClientRecord } from "../../domain/clients/client-store.ts";
import type { LoginThrottleStore } from "../../domain/credentials/throttle.ts";
import type { RefreshTokenRecord, SessionRecord } from "../../domain/sessions/session-store.ts";
import type { Storage } from "../storage.ts";
import type { UserRecord } from "../../domain/credentials/user-store.ts";
import { ClientExistsError } from "../../domain/clients/client-store.ts";
import { EmailTakenError } from "../../domain/credentials/user-store.ts";
import { openDb, type Db, type DbFlavor, type OpenOptions } from "./client.ts";
import { isUnavailable, isUniqueViolation } from "./errors.ts";
import { refreshFastPath, type RefreshFastPath } from "./fast-path.ts";
import { DatabaseKeyStore } from "./key-store.ts";
import { loginThrottleStore } from "./login-throttle.ts";

const PRUNE_CHUNK = 2000;

const list = (s: string): string[] => s.split(" ").filter(Boolean);
const joinList = (a: readonly string[]): string => a.join(" ");

type UserRow = Omit<UserRecord, "roles"> & { roles: string };
const toUser = ({ id, email, passwordHash, roles, createdAt, disabledAt }: UserRow): UserRecord => ({
  id,
  email,
  passwordHash,
  roles: list(roles),
  createdAt,
  disabledAt,
});

type ClientRow = Omit<ClientRecord, "type" | "grantTypes" | "scopes" | "audiences" | "resources"> & {
  type: string;
  grantTypes: string;
  scopes: string;
  audiences: string;
  resources: string;
};
const toClient = (r: ClientRow): ClientRecord => ({
  ...r,
  type: r.type === "confidential" ? "confidential" : "public",
  grantTypes: list(r.grantTypes),
  scopes: list(r.scopes),
  audiences: list(r.audiences),
  resources: list(r.resources),
});

const clientData = (client: ClientRecord) => ({
  ...client,
  grantTypes: joinList(client.grantTypes),
  scopes: joinList(client.scopes),
  audiences: joinList(client.audiences),
  resources: joinList(client.resources),
});

const tokenFields = {
  id: true,
  sessionId: true,
  hash: true,
  parentId: true,
  createdAt: true,
  expiresAt: true,
} as const;

export interface PrismaStorage extends Storage {
  db: Db;
  flavor: DbFlavor;
}

export async function openPrismaStorage(url: string, opts: OpenOptions = {}): Promise<PrismaStorage> {
  const { db, flavor, direct } = await openDb(url, opts);
  return prismaStorage(db, flavor, refreshFastPath(direct), loginThrottleStore(direct));
}

export function prismaStorage(db: Db, flavor: DbFlavor, fast: RefreshFastPath, loginThrottle: LoginThrottleStore): PrismaStorage {
  return {
    db,
    flavor,
    isUnavailable,

    keyStore: (encryptionKey: Buffer) => new DatabaseKeyStore(db, encryptionKey),

    async ping() {
      await db.$queryRawUnsafe("SELECT 1");
    },

    async close() {
      await db.$disconnect();
      await fast.close();
    },

    // The throttle's check-and-record runs on the driver (login-throttle.ts).
    loginThrottle,

    users: {
      // Login's lookup runs on the driver (fast-path.ts).
      findByEmail: (email) => fast.findUserByEmail(email),
      async findById(id) {
        const r = await db.user.findUnique({ where: { id } });
        return r ? toUser(r) : null;
      },
      async create(user) {
        try {
          await db.user.create({ data: { ...user, roles: joinList(user.roles) } });
        } catch (err) {
          if (isUniqueViolation(err)) throw new EmailTakenError();
          throw err;
        }
      },
      async updatePasswordHash(id, passwordHash) {
        await db.user.update({ where: { id }, data: { passwordHash } });
      },
      async disable(email, at) {
        await db.user.updateMany({ where: { email, disabledAt: null }, data: { disabledAt: at } });
        const r = await db.user.findUnique({ where: { email } });
        return r ? toUser(r) : null;
      },
    },

    clients: {
      async findById(id) {
        const r = await db.client.findUnique({ where: { id } });
        return r ? toClient(r) : null;
      },
      async create(client) {
        try {
          await db.client.create({ data: clientData(client) });
        } catch (err) {
          if (isUniqueViolation(err)) throw new ClientExistsError();
          throw err;
        }
      },
      async list() {
        return (await db.client.findMany({ orderBy: { createdAt: "asc" } })).map(toClient);
      },
      async disable(id, at) {
        const { count } = await db.client.updateMany({ where: { id }, data: { disabledAt: at } });
        return count === 1;
      },
      async setSecretHash(id, secretHash) {
        const { count } = await db.client.updateMany({ where: { id }, data: { secretHash } });
        return count === 1;
      },
      async upsert(client) {
        const data = clientData(client);
        try {
          const { name, type, grantTypes, scopes, audiences } = data;
          const update = { name, type, grantTypes, scopes, audiences };
          return toClient(await db.client.upsert({ where: { id: client.id }, create: data, update }));
        } catch (err) {
          // Two instances bootstrapping at once: the loser reads the winner's row.
          if (!isUniqueViolation(err)) throw err;
          const r = await db.client.findUniqueOrThrow({ where: { id: client.id } });
          return toClient(r);
        }
      },
    },

    sessions: {
      // Login's session + first token run on the driver, in one transaction (fast-path.ts).
      start: (session: SessionRecord, first: RefreshTokenRecord) => fast.startSession(session, first),

      findToken: (hash) => fast.findToken(hash),

      insertChild: (child, now) => fast.insertChild(child, now),

      async findChildOf(parentId) {
        const r = await db.refreshToken.findUnique({
          where: { parentId },
          select: { ...tokenFields, child: { select: { id: true } } },
        });
        if (!r) return null;
        const { child, ...token } = r;
        return { token, consumed: child !== null };
      },

      async findSession(id) {
        return db.session.findUnique({ where: { id } });
      },

      async revoke(sessionId, reason, at) {
        // Conditional update: of concurrent revokers exactly one sees count 1.
        const { count } = await db.session.updateMany({
          where: { id: sessionId, revokedAt: null },
          data: { revokedAt: at, revokedReason: reason },
        });
        return count === 1;
      },

      async revokeAllForUser(userId, reason, at) {
        const { count } = await db.session.updateMany({
          where: { userId, revokedAt: null },
          data: { revokedAt: at, revokedReason: reason },
        });
        return count;
      },

      async pruneDead(now, revokedBefore) {
        const { count } = await db.session.deleteMany({
          where: {
            OR: [
              { expiresAt: { lt: now } },
              { revokedAt: { lt: revokedBefore } },
              { refreshTokens: { none: { expiresAt: { gte: now } } } },
            ],
          },
        });
        return { sessions: count };
      },
    },

    revocations: {
      async add(entry) {
        // Revoking twice, even concurrently, is fine (RFC 7009 §2.2: the same answer either way).
        // A plain insert whose unique violation is ignored: Prisma's upsert reads then inserts.
        try {
          await db.revokedAccessToken.create({ data: entry });
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
        }
      },
      async has(jti) {
        return (await db.revokedAccessToken.count({ where: { jti } })) > 0;
      },
      async prune(now) {
        const { count } = await db.revokedAccessToken.deleteMany({ where: { expiresAt: { lt: now } } });
        return count;
      },
    },

    audit: {
      async record(e: AuditEventRecord) {
        await db.auditEvent.create({
          data: {
            id: e.id,
            type: e.type,
            at: e.at,
            userId: e.userId ?? null,
            clientId: e.clientId ?? null,
            sessionId: e.sessionId ?? null,
            details: JSON.stringify(e.details ?? {}),
          },
        });
      },
      async list(filter) {
        const rows = await db.auditEvent.findMany({
          where: { type: filter.type, sessionId: filter.sessionId },
          orderBy: { at: "asc" },
          take: filter.limit ?? 100,
        });
        return rows.map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
      },
      async prune(before) {
        // Chunks of PRUNE_CHUNK: one huge DELETE would hold SQLite's writer lock (and bloat a
        // Postgres transaction) long enough to stall logins behind it.
        let total = 0;
        for (;;) {
          const ids = (await db.auditEvent.findMany({ where: { at: { lt: before } }, select: { id: true }, take: PRUNE_CHUNK })).map((r) => r.id);
          if (ids.length === 0) return total;
          total += (await db.auditEvent.deleteMany({ where: { id: { in: ids } } })).count;
          if (ids.length < PRUNE_CHUNK) return total;
        }
      },
    },
  };
}
