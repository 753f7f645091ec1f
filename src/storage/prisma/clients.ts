// The ClientStore on Prisma.
import { ClientExistsError, type ClientPatch, type ClientRecord, type ClientStore } from "../../domain/clients/client-store.ts";
import type { Db } from "./client.ts";
import { isUniqueViolation } from "./errors.ts";
import { joinList, splitList } from "./lists.ts";

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
  grantTypes: splitList(r.grantTypes),
  scopes: splitList(r.scopes),
  audiences: splitList(r.audiences),
  resources: splitList(r.resources),
});

const clientData = (client: ClientRecord) => ({
  ...client,
  grantTypes: joinList(client.grantTypes),
  scopes: joinList(client.scopes),
  audiences: joinList(client.audiences),
  resources: joinList(client.resources),
});

export function prismaClientStore(db: Db): ClientStore {
  return {
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
    async page(after, limit) {
      const rows = await db.client.findMany({ where: after === null ? {} : { id: { gt: after } }, orderBy: { id: "asc" }, take: limit });
      return rows.map(toClient);
    },
    async update(id, patch: ClientPatch) {
      const data = {
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.grantTypes !== undefined && { grantTypes: joinList(patch.grantTypes) }),
        ...(patch.scopes !== undefined && { scopes: joinList(patch.scopes) }),
        ...(patch.audiences !== undefined && { audiences: joinList(patch.audiences) }),
        ...(patch.resources !== undefined && { resources: joinList(patch.resources) }),
        ...(patch.accessTokenTtl !== undefined && { accessTokenTtl: patch.accessTokenTtl }),
        ...(patch.refreshTokenTtl !== undefined && { refreshTokenTtl: patch.refreshTokenTtl }),
      };
      const { count } = await db.client.updateMany({ where: { id }, data });
      if (count === 0) return null;
      const r = await db.client.findUnique({ where: { id } });
      return r ? toClient(r) : null;
    },
    async enable(id) {
      const { count } = await db.client.updateMany({ where: { id }, data: { disabledAt: null } });
      return count === 1;
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
  };
}
