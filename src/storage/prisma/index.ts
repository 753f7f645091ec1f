// Prisma implementation of the domain's stores, one code base for SQLite and Postgres: composes
// one store per aggregate (users.ts, clients.ts, sessions.ts, audit.ts, revocations.ts,
// status-lists.ts) over the Prisma client, and the hot paths that run on the driver directly
// (session-queries.ts, user-queries.ts, login-throttle.ts, audit-queries.ts) over the direct handle.
import type { LoginThrottleStore } from "../../domain/credentials/throttle.ts";
import type { Storage } from "../storage.ts";
import { prismaAuditStore } from "./audit.ts";
import { auditQueries, type AuditQueries } from "./audit-queries.ts";
import { closeDirect, openDb, type Db, type DbFlavor, type DirectHandle, type OpenOptions } from "./client.ts";
import { prismaClientStore } from "./clients.ts";
import { DatabaseKeyStore } from "./database-key-store.ts";
import { isUnavailable } from "./errors.ts";
import { loginThrottleStore } from "./login-throttle.ts";
import { prismaRevocationStore } from "./revocations.ts";
import { sessionQueries, type SessionQueries } from "./session-queries.ts";
import { prismaRevokedIndexStore, prismaStatusIndexStore } from "./status-lists.ts";
import { prismaSessionStore } from "./sessions.ts";
import { userQueries, type UserQueries } from "./user-queries.ts";
import { prismaUserStore } from "./users.ts";

export interface PrismaStorage extends Storage {
  db: Db;
  flavor: DbFlavor;
}

/** What runs on the direct driver handle instead of through Prisma. */
export interface DriverQueries {
  sessions: SessionQueries;
  users: UserQueries;
  loginThrottle: LoginThrottleStore;
  audit: AuditQueries;
}

export const driverQueries = (direct: DirectHandle): DriverQueries => ({
  sessions: sessionQueries(direct),
  users: userQueries(direct),
  loginThrottle: loginThrottleStore(direct),
  audit: auditQueries(direct),
});

export async function openPrismaStorage(url: string, opts: OpenOptions = {}): Promise<PrismaStorage> {
  const { db, flavor, direct } = await openDb(url, opts);
  return prismaStorage(db, flavor, direct);
}

export function prismaStorage(db: Db, flavor: DbFlavor, direct: DirectHandle, queries: DriverQueries = driverQueries(direct)): PrismaStorage {
  return {
    db,
    flavor,
    isUnavailable,

    keyStore: (encryptionKey: Buffer) => new DatabaseKeyStore(db, encryptionKey),

    async ping() {
      await db.$queryRawUnsafe("SELECT 1");
    },

    async close() {
      // The checkpointer first: a worker failing after Prisma's disconnect would make its
      // fallback reopen Prisma's connection.
      if (direct.flavor === "sqlite") await direct.checkpointer?.close();
      await db.$disconnect();
      await closeDirect(direct);
    },

    watchCheckpointer: direct.flavor === "sqlite" && direct.checkpointer ? (listener) => direct.checkpointer!.watch(listener) : undefined,

    // The throttle's check-and-record runs on the driver (login-throttle.ts).
    loginThrottle: queries.loginThrottle,
    users: prismaUserStore(db, queries.users),
    clients: prismaClientStore(db),
    sessions: prismaSessionStore(db, queries.sessions),
    revocations: prismaRevocationStore(db),
    audit: prismaAuditStore(db, queries.audit),
    statusIndices: prismaStatusIndexStore(db),
    revokedIndices: prismaRevokedIndexStore(db),
  };
}
