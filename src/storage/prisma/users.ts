// The UserStore on Prisma; login's lookup by email runs on the driver (user-queries.ts).
import { EmailTakenError, type UserRecord, type UserStore } from "../../domain/credentials/user-store.ts";
import type { Db } from "./client.ts";
import { isUniqueViolation } from "./errors.ts";
import { joinList, splitList } from "./lists.ts";
import type { UserQueries } from "./user-queries.ts";

type UserRow = Omit<UserRecord, "roles"> & { roles: string };
const toUser = ({ id, email, passwordHash, roles, createdAt, disabledAt }: UserRow): UserRecord => ({
  id,
  email,
  passwordHash,
  roles: splitList(roles),
  createdAt,
  disabledAt,
});

export function prismaUserStore(db: Db, queries: UserQueries): UserStore {
  return {
    // Login's lookup runs on the driver (user-queries.ts).
    findByEmail: (email) => queries.findUserByEmail(email),
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
    async replacePasswordHash(id, expected, passwordHash) {
      const { count } = await db.user.updateMany({ where: { id, passwordHash: expected }, data: { passwordHash } });
      return count === 1;
    },
    async setDisabled(id, at) {
      // Disabling keeps the first time; enabling clears it. The count says whether this call did it.
      const { count } = await db.user.updateMany({ where: at === null ? { id, disabledAt: { not: null } } : { id, disabledAt: null }, data: { disabledAt: at } });
      const r = await db.user.findUnique({ where: { id } });
      return r ? { user: toUser(r), changed: count === 1 } : null;
    },
    async setRoles(id, roles) {
      const { count } = await db.user.updateMany({ where: { id }, data: { roles: joinList(roles) } });
      if (count === 0) return null;
      const r = await db.user.findUnique({ where: { id } });
      return r ? toUser(r) : null;
    },
    async page({ emailContains, after, limit }) {
      const term = emailContains === "" ? undefined : emailContains;
      // `contains` is LIKE, whose "_" and "%" are wildcards, and "\\" an escape on Postgres
      // (Prisma writes no ESCAPE clause): a term with any of them is matched here instead, over
      // the users in email order, until the page is full (rare: such characters are rare in emails).
      const literal = term !== undefined && /[%_\\]/.test(term);
      const read = (from: string | null, take: number) =>
        db.user.findMany({
          where: { ...(from !== null && { email: { gt: from } }), ...(term !== undefined && !literal && { AND: [{ email: { contains: term } }] }) },
          orderBy: { email: "asc" },
          take,
        });
      if (!literal) return (await read(after, limit)).map(toUser);
      const out: UserRecord[] = [];
      const batch = Math.max(limit, 500);
      let from = after;
      for (;;) {
        const rows = await read(from, batch);
        out.push(...rows.map(toUser).filter((u) => u.email.includes(term)));
        if (out.length >= limit || rows.length < batch) return out.slice(0, limit);
        from = rows.at(-1)!.email;
      }
    },
  };
}
