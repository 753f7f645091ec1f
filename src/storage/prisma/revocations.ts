// The RevocationStore (revoked access tokens, by jti) on Prisma.
import type { RevocationStore } from "../../domain/tokens/revocation-store.ts";
import type { Db } from "./client.ts";
import { isUniqueViolation } from "./errors.ts";

export function prismaRevocationStore(db: Db): RevocationStore {
  return {
    async add(entry) {
      // Revoking twice, even concurrently, is fine (RFC 7009 §2.2: the same answer either way).
      // A plain insert whose unique violation is ignored: Prisma's upsert reads then inserts.
      // Exactly one of concurrent callers inserts, and is told so (the others get false).
      try {
        const { statusIdx, ...rest } = entry;
        await db.revokedAccessToken.create({ data: { ...rest, statusIdx: statusIdx === null ? null : BigInt(statusIdx) } });
        return true;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        return false;
      }
    },
    async has(jti) {
      return (await db.revokedAccessToken.count({ where: { jti } })) > 0;
    },
    async prune(now) {
      const { count } = await db.revokedAccessToken.deleteMany({ where: { expiresAt: { lt: now } } });
      return count;
    },
  };
}
