// Client administration: the rules behind `npm run cli -- clients ...` and /admin/v1/clients.
import { randomBytes } from "node:crypto";
import { hashClientSecret } from "../domain/clients/clients.ts";
import { ClientExistsError, type ClientPatch, type ClientRecord } from "../domain/clients/client-store.ts";
import { Conflict, InvalidField, NotFound } from "../domain/errors.ts";
import type { CommandResult } from "./command.ts";
import type { AdminContext } from "./context.ts";
import { decodeCursor, encodeCursor, pageLimit, paged, type PageRequest } from "./paging.ts";
import * as valid from "./validate.ts";

/** 256 bits from the CSPRNG; only its SHA-256 is stored (RFC 6749 §2.3.1 client password). */
const newSecret = () => randomBytes(32).toString("base64url");

export const clientJson = (c: ClientRecord) => ({
  client_id: c.id,
  name: c.name,
  type: c.type,
  grant_types: c.grantTypes,
  scopes: c.scopes,
  audiences: c.audiences,
  resources: c.resources,
  access_token_ttl: c.accessTokenTtl,
  refresh_token_ttl: c.refreshTokenTtl,
  created_at: c.createdAt.toISOString(),
  disabled_at: c.disabledAt?.toISOString() ?? null,
});

const summary = (c: ClientRecord) =>
  `type: ${c.type}; grant types: ${c.grantTypes.join(" ")}; scopes: ${c.scopes.join(" ") || "(none)"}` +
  `${c.audiences.length ? `; audience: ${c.audiences.join(" ")}` : ""}${c.resources.length ? `; resource server for: ${c.resources.join(" ")}` : ""}` +
  `${c.disabledAt ? "; disabled" : ""}`;

export interface ClientInput {
  name: string;
  type: "confidential" | "public";
  grantTypes: string[];
  scopes?: string[];
  /** audiences the client may request tokens for (client_credentials `resource`) */
  audiences?: string[];
  /** resource identifiers the client *is*: it may introspect tokens meant for them */
  resources?: string[];
  accessTokenTtl?: number | null;
  refreshTokenTtl?: number | null;
}

/** client_credentials needs a client that can prove who it is (RFC 6749 §4.4). */
function checkGrantTypesFor(type: ClientRecord["type"], grantTypes: readonly string[]): void {
  if (grantTypes.includes("client_credentials") && type !== "confidential") {
    throw new InvalidField("grant_types", "client_credentials needs a confidential client.");
  }
}

async function found(ctx: AdminContext, id: string): Promise<ClientRecord> {
  const client = await ctx.storage.clients.findById(id);
  if (!client) throw new NotFound(`No client with id ${id.slice(0, 100)}.`);
  return client;
}

/** The first-party web client is written from the configuration at every start. */
function assertNotConfigOwned(ctx: AdminContext, id: string): void {
  if (id === ctx.config.webClientId) {
    throw new Conflict(`Client ${id} is the first-party web client; it is set from the configuration (WEB_CLIENT_ID, WEB_CLIENT_SCOPES).`);
  }
}

export async function createClient(ctx: AdminContext, input: ClientInput): Promise<CommandResult> {
  const name = valid.clientName(input.name);
  if (input.type !== "confidential" && input.type !== "public") throw new InvalidField("type", "type is confidential or public.");
  const grantTypes = valid.grantTypes(input.grantTypes);
  checkGrantTypesFor(input.type, grantTypes);
  const secret = input.type === "confidential" ? newSecret() : null;
  const client: ClientRecord = {
    id: `c_${randomBytes(12).toString("base64url")}`,
    name,
    type: input.type,
    secretHash: secret ? hashClientSecret(secret) : null,
    grantTypes,
    scopes: valid.scopes(input.scopes ?? []),
    audiences: valid.words("audiences", input.audiences ?? []),
    resources: valid.words("resources", input.resources ?? []),
    accessTokenTtl: valid.ttl("access_token_ttl", input.accessTokenTtl ?? null),
    refreshTokenTtl: valid.ttl("refresh_token_ttl", input.refreshTokenTtl ?? null),
    createdAt: ctx.clock.now(),
    disabledAt: null,
  };
  try {
    await ctx.storage.clients.create(client);
  } catch (err) {
    // 96 random bits: a collision is a broken random source, not a conflict to report.
    if (err instanceof ClientExistsError) throw new Error("client id collision");
    throw err;
  }
  await ctx.audit.record("client.created", { clientId: client.id, details: { type: client.type, grantTypes } });
  const lines = [
    `client_id:     ${client.id}`,
    ...(secret ? [`client_secret: ${secret}`, "", "The secret is shown only now and stored only as a hash: keep it somewhere safe."] : []),
    summary(client),
  ];
  return { text: lines.join("\n"), json: { ...clientJson(client), ...(secret ? { client_secret: secret } : {}) } };
}

export async function listClients(ctx: AdminContext, request: PageRequest = {}): Promise<CommandResult> {
  const limit = pageLimit(request.limit);
  const after = decodeCursor("clients", request.cursor, ["id"]);
  const page = await paged(limit, (take) => ctx.storage.clients.page(after?.id ?? null, take), (c) => encodeCursor("clients", { id: c.id }));
  const rows = page.items.map((c) => [c.id, c.type, c.disabledAt ? "disabled" : "enabled", c.grantTypes.join(","), c.scopes.join(",") || "-", c.name].join("  "));
  const text = rows.length ? ["CLIENT_ID  TYPE  STATUS  GRANT_TYPES  SCOPES  NAME", ...rows, ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : [])].join("\n") : "no clients";
  return { text, json: { clients: page.items.map(clientJson), next_cursor: page.nextCursor } };
}

export async function getClient(ctx: AdminContext, id: string): Promise<CommandResult> {
  const client = await found(ctx, id);
  return { text: `client_id: ${client.id}\nname: ${client.name}\n${summary(client)}`, json: clientJson(client) };
}

export interface ClientUpdate {
  name?: string;
  grantTypes?: string[];
  scopes?: string[];
  audiences?: string[];
  resources?: string[];
  accessTokenTtl?: number | null;
  refreshTokenTtl?: number | null;
}

/** Changes what the client may do; takes effect within CLIENT_CACHE_TTL on every instance. */
export async function updateClient(ctx: AdminContext, id: string, update: ClientUpdate): Promise<CommandResult> {
  const patch: ClientPatch = {
    ...(update.name !== undefined && { name: valid.clientName(update.name) }),
    ...(update.grantTypes !== undefined && { grantTypes: valid.grantTypes(update.grantTypes) }),
    ...(update.scopes !== undefined && { scopes: valid.scopes(update.scopes) }),
    ...(update.audiences !== undefined && { audiences: valid.words("audiences", update.audiences) }),
    ...(update.resources !== undefined && { resources: valid.words("resources", update.resources) }),
    ...(update.accessTokenTtl !== undefined && { accessTokenTtl: valid.ttl("access_token_ttl", update.accessTokenTtl) }),
    ...(update.refreshTokenTtl !== undefined && { refreshTokenTtl: valid.ttl("refresh_token_ttl", update.refreshTokenTtl) }),
  };
  const before = await found(ctx, id);
  assertNotConfigOwned(ctx, id);
  if (patch.grantTypes) checkGrantTypesFor(before.type, patch.grantTypes);
  const after = await ctx.storage.clients.update(id, patch);
  if (!after) throw new NotFound(`No client with id ${id.slice(0, 100)}.`);
  ctx.clientChanged(id);
  await ctx.audit.record("client.updated", { clientId: id, details: { changed: Object.keys(update).filter((k) => update[k as keyof ClientUpdate] !== undefined) } });
  return {
    text: `client ${id} updated (${summary(after)}); other instances apply it within CLIENT_CACHE_TTL (${ctx.config.clientCacheTtl}s).`,
    json: clientJson(after),
  };
}

export async function disableClient(ctx: AdminContext, id: string): Promise<CommandResult> {
  if (!(await ctx.storage.clients.disable(id, ctx.clock.now()))) throw new NotFound(`No client with id ${id.slice(0, 100)}.`);
  ctx.clientChanged(id);
  await ctx.audit.record("client.disabled", { clientId: id });
  return {
    text: `client ${id} disabled: its credentials stop working within CLIENT_CACHE_TTL (${ctx.config.clientCacheTtl}s); its access tokens are refused by introspection and the issuer's own APIs from then on, and by other verifiers when they expire (at most ${ctx.config.accessTokenTtl}s) unless revoked.`,
    json: clientJson(await found(ctx, id)),
  };
}

export async function enableClient(ctx: AdminContext, id: string): Promise<CommandResult> {
  if (!(await ctx.storage.clients.enable(id))) throw new NotFound(`No client with id ${id.slice(0, 100)}.`);
  ctx.clientChanged(id);
  await ctx.audit.record("client.enabled", { clientId: id });
  return { text: `client ${id} enabled (within CLIENT_CACHE_TTL, ${ctx.config.clientCacheTtl}s, on other instances).`, json: clientJson(await found(ctx, id)) };
}

export async function rotateClientSecret(ctx: AdminContext, id: string): Promise<CommandResult> {
  const client = await found(ctx, id);
  if (client.type !== "confidential") throw new Conflict(`Client ${id} is public and has no secret.`);
  const secret = newSecret();
  if (!(await ctx.storage.clients.setSecretHash(id, hashClientSecret(secret)))) throw new NotFound(`No client with id ${id.slice(0, 100)}.`);
  ctx.clientChanged(id);
  await ctx.audit.record("client.secret_rotated", { clientId: id });
  return {
    text: [`client_id:     ${id}`, `client_secret: ${secret}`, "", `The old secret stops working within CLIENT_CACHE_TTL (${ctx.config.clientCacheTtl}s).`].join("\n"),
    json: { client_id: id, client_secret: secret },
  };
}
