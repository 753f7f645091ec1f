// Client administration for `npm run cli -- clients ...`.
import { randomBytes } from "node:crypto";
import { hashClientSecret } from "../domain/clients/clients.ts";
import { ClientExistsError, type ClientRecord } from "../domain/clients/client-store.ts";
import { GRANT_TYPES, isGrantType } from "../domain/clients/grant-types.ts";
import { isScopeToken } from "../domain/scope.ts";
import type { AdminContext } from "./context.ts";
import { listArg, UsageError, type CommandResult } from "./command.ts";


/** 256 bits from the CSPRNG; only its SHA-256 is stored (RFC 6749 §2.3.1 client password). */
const newSecret = () => randomBytes(32).toString("base64url");

const clientJson = (c: ClientRecord) => ({
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

export interface CreateClientArgs {
  name?: string;
  confidential: boolean;
  grantTypes?: string;
  scopes?: string;
  /** audiences the client may request tokens for (client_credentials `resource`) */
  audience?: string;
  /** resource identifiers the client *is*: it may introspect tokens meant for them */
  resource?: string;
  accessTokenTtl?: string;
  refreshTokenTtl?: string;
}

export async function createClient(ctx: AdminContext, a: CreateClientArgs): Promise<CommandResult> {
  if (!a.name) throw new UsageError("--name is required");
  const grantTypes = listArg(a.grantTypes);
  if (grantTypes.length === 0) throw new UsageError(`--grant-types is required (${GRANT_TYPES.join(", ")})`);
  const unknown = grantTypes.filter((g) => !isGrantType(g));
  if (unknown.length > 0) throw new UsageError(`unknown grant type(s): ${unknown.join(", ")}; expected ${GRANT_TYPES.join(", ")}`);
  if (grantTypes.includes("client_credentials") && !a.confidential) {
    throw new UsageError("client_credentials needs a confidential client (add --confidential)");
  }
  const scopes = listArg(a.scopes);
  const bad = scopes.filter((s) => !isScopeToken(s));
  if (bad.length > 0) throw new UsageError(`invalid scope name(s): ${bad.join(", ")}`);
  const ttl = (v: string | undefined, flag: string): number | null => {
    if (v === undefined) return null;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${flag} expects a number of seconds`);
    return Number(v);
  };
  const secret = a.confidential ? newSecret() : null;
  const client: ClientRecord = {
    id: `c_${randomBytes(12).toString("base64url")}`,
    name: a.name,
    type: a.confidential ? "confidential" : "public",
    secretHash: secret ? hashClientSecret(secret) : null,
    grantTypes,
    scopes,
    audiences: listArg(a.audience),
    resources: listArg(a.resource),
    accessTokenTtl: ttl(a.accessTokenTtl, "--access-token-ttl"),
    refreshTokenTtl: ttl(a.refreshTokenTtl, "--refresh-token-ttl"),
    createdAt: ctx.clock.now(),
    disabledAt: null,
  };
  try {
    await ctx.storage.clients.create(client);
  } catch (err) {
    if (err instanceof ClientExistsError) throw new Error("client id collision; run the command again");
    throw err;
  }
  await ctx.audit.record("client.created", { clientId: client.id, details: { type: client.type, grantTypes } });
  const lines = [
    `client_id:     ${client.id}`,
    ...(secret ? [`client_secret: ${secret}`, "", "The secret is shown only now and stored only as a hash: keep it somewhere safe."] : []),
    `type: ${client.type}; grant types: ${grantTypes.join(" ")}; scopes: ${scopes.join(" ") || "(none)"}${client.audiences.length ? `; audience: ${client.audiences.join(" ")}` : ""}${client.resources.length ? `; resource server for: ${client.resources.join(" ")}` : ""}`,
  ];
  return { text: lines.join("\n"), json: { ...clientJson(client), ...(secret ? { client_secret: secret } : {}) } };
}

export async function listClients(ctx: AdminContext): Promise<CommandResult> {
  const clients = await ctx.storage.clients.list();
  const rows = clients.map((c) =>
    [c.id, c.type, c.disabledAt ? "disabled" : "enabled", c.grantTypes.join(","), c.scopes.join(",") || "-", c.name].join("  "),
  );
  return { text: rows.length ? ["CLIENT_ID  TYPE  STATUS  GRANT_TYPES  SCOPES  NAME", ...rows].join("\n") : "no clients", json: { clients: clients.map(clientJson) } };
}

export async function disableClient(ctx: AdminContext, id: string): Promise<CommandResult & { found: boolean }> {
  const found = await ctx.storage.clients.disable(id, ctx.clock.now());
  if (!found) return { found, text: `no client with id ${id}`, json: { disabled: null } };
  await ctx.audit.record("client.disabled", { clientId: id });
  return {
    found,
    text: `client ${id} disabled: its credentials stop working within CLIENT_CACHE_TTL (${ctx.config.clientCacheTtl}s); access tokens it already holds stay valid until they expire (at most ${ctx.config.accessTokenTtl}s) unless revoked.`,
    json: { disabled: id },
  };
}

export async function rotateClientSecret(ctx: AdminContext, id: string): Promise<CommandResult & { found: boolean }> {
  const client = await ctx.storage.clients.findById(id);
  if (!client) return { found: false, text: `no client with id ${id}`, json: { client_id: null } };
  if (client.type !== "confidential") throw new UsageError(`client ${id} is public and has no secret`);
  const secret = newSecret();
  await ctx.storage.clients.setSecretHash(id, hashClientSecret(secret));
  await ctx.audit.record("client.secret_rotated", { clientId: id });
  return {
    found: true,
    text: [`client_id:     ${id}`, `client_secret: ${secret}`, "", `The old secret stops working within CLIENT_CACHE_TTL (${ctx.config.clientCacheTtl}s).`].join("\n"),
    json: { client_id: id, client_secret: secret },
  };
}
