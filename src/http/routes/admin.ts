// The admin API (/admin/v1): the operator's CLI over HTTP, for automation. Every handler is one
// call to the same admin function the CLI runs (src/admin/), as the calling client (its audit
// events name it). Authenticated by client_credentials access tokens meant for the admin API
// (ADMIN_API_AUDIENCE) and judged like any resource server judges a token (RFC 6750, 9068 §4):
// reads need admin:read (or admin:write), writes need admin:write (RFC 6750 §3.1
// insufficient_scope otherwise).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { listAuditEvents } from "../../admin/audit.ts";
import { createClient, disableClient, enableClient, getClient, listClients, rotateClientSecret, updateClient } from "../../admin/clients.ts";
import type { CommandResult } from "../../admin/command.ts";
import { adminContextOf, type AdminContext } from "../../admin/context.ts";
import { listKeys, revokeKey, rotateKeys, rotateKeysNow } from "../../admin/keys.ts";
import {
  createUser,
  disableUser,
  enableUser,
  getUser,
  listUsers,
  listUserSessions,
  revokeSession,
  revokeUserSessions,
  setUserPassword,
  setUserRoles,
} from "../../admin/users.ts";
import { asActor } from "../../domain/audit.ts";
import { authenticateBearer, InsufficientScope, InvalidToken, scopesOf } from "../../domain/tokens/bearer-access.ts";
import type { Services } from "../../services.ts";
import { bearerToken } from "../bearer-token.ts";
import { acceptEmptyJson } from "../empty-json.ts";
import * as s from "./admin-schemas.ts";

export const ADMIN_PREFIX = "/admin/v1";
export const ADMIN_READ = "admin:read";
export const ADMIN_WRITE = "admin:write";

type Access = "read" | "write";

declare module "fastify" {
  interface FastifyContextConfig {
    /** admin routes: the scope a request needs (read: admin:read or admin:write; write: admin:write) */
    access?: Access;
  }
}

const admin = <S extends object>(tag: string, summary: string, access: Access, schema: S) => ({
  tags: [`admin: ${tag}`],
  summary,
  description: access === "read" ? `Needs ${ADMIN_READ} (or ${ADMIN_WRITE}).` : `Needs ${ADMIN_WRITE}.`,
  security: [{ adminToken: [access === "read" ? ADMIN_READ : ADMIN_WRITE] }],
  ...schema,
});

/** A list query's page: `limit` arrives as digits (query strings are strings). */
const pageOf = (q: { cursor?: string; limit?: string }) => ({ cursor: q.cursor, limit: q.limit === undefined ? undefined : Number(q.limit) });

export async function adminRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const ctx: AdminContext = adminContextOf(services);
  const { config, keys, clock, storage, clients, sessions } = services;
  const callers = new WeakMap<FastifyRequest, string>();

  /** The calling client, or 401 / 403. Runs at onRequest: before any body is read. */
  async function authenticate(request: FastifyRequest): Promise<void> {
    // A route without its own (the 404 handler in this context) needs the most.
    const access = request.routeOptions.config.access ?? "write";
    const claims = await authenticateBearer(
      { keys, clock, issuer: config.issuer, liveness: { revocations: storage.revocations, clients, sessions, users: storage.users } },
      bearerToken(request),
      config.adminApiAudience,
    );
    // An operator's automation, not a user: a client_credentials token (sub = client_id, no session).
    if (claims.sid !== undefined || typeof claims.client_id !== "string" || claims.client_id !== claims.sub) {
      throw new InvalidToken("The admin API accepts only client_credentials access tokens.");
    }
    // The token's scopes, as far as its client may still get them: an operator who takes
    // admin:write, the admin audience or client_credentials away from a client ends its admin
    // access now, not when its tokens expire.
    const client = await clients.find(claims.client_id);
    const stillAllowed = client !== null && client.grantTypes.includes("client_credentials") && client.audiences.includes(config.adminApiAudience);
    const scopes = stillAllowed ? scopesOf(claims).filter((scope) => client.scopes.includes(scope)) : [];
    const allowed = access === "read" ? scopes.includes(ADMIN_READ) || scopes.includes(ADMIN_WRITE) : scopes.includes(ADMIN_WRITE);
    if (!allowed) {
      const needed = access === "read" ? ADMIN_READ : ADMIN_WRITE;
      throw new InsufficientScope(needed, `This request needs the ${needed} scope.`);
    }
    callers.set(request, claims.client_id);
  }

  /** Runs an admin function as the calling client and sends its JSON (never cached: it may hold a secret). */
  async function run(request: FastifyRequest, reply: FastifyReply, fn: (ctx: AdminContext) => Promise<CommandResult>, status = 200) {
    const clientId = callers.get(request);
    if (!clientId) throw new InvalidToken("An access token is required (Authorization: Bearer).", false);
    const result = await asActor({ via: "admin_api", clientId }, () => fn(ctx));
    reply.status(status).header("cache-control", "no-store");
    return status === 204 ? reply.send() : reply.send(result.json);
  }

  acceptEmptyJson(app);
  app.addHook("onRequest", authenticate);

  const read = { config: { access: "read" } } as const;
  const write = { config: { access: "write" } } as const;
  type Id = { Params: { id: string } };

  // ---- clients
  app.get<{ Querystring: { cursor?: string; limit?: string } }>(
    `${ADMIN_PREFIX}/clients`,
    { ...read, schema: admin("clients", "List clients (by client_id)", "read", { querystring: s.clientsQuery, response: s.clientsReply }) },
    (request, reply) => run(request, reply, (c) => listClients(c, pageOf(request.query))),
  );
  app.post<{ Body: { name: string; type: "confidential" | "public"; grant_types: string[]; scopes?: string[]; audiences?: string[]; resources?: string[]; access_token_ttl?: number | null; refresh_token_ttl?: number | null } }>(
    `${ADMIN_PREFIX}/clients`,
    { ...write, schema: admin("clients", "Create a client (its secret is shown only in this response)", "write", { body: s.createClientBody, response: s.createdClientReply }) },
    (request, reply) => {
      const b = request.body;
      return run(
        request,
        reply,
        (c) =>
          createClient(c, {
            name: b.name,
            type: b.type,
            grantTypes: b.grant_types,
            scopes: b.scopes,
            audiences: b.audiences,
            resources: b.resources,
            accessTokenTtl: b.access_token_ttl,
            refreshTokenTtl: b.refresh_token_ttl,
          }),
        201,
      );
    },
  );
  app.get<Id>(`${ADMIN_PREFIX}/clients/:id`, { ...read, schema: admin("clients", "Read a client", "read", { params: s.clientIdParams, response: s.clientReply }) }, (request, reply) =>
    run(request, reply, (c) => getClient(c, request.params.id)),
  );
  app.patch<Id & { Body: { name?: string; grant_types?: string[]; scopes?: string[]; audiences?: string[]; resources?: string[]; access_token_ttl?: number | null; refresh_token_ttl?: number | null } }>(
    `${ADMIN_PREFIX}/clients/:id`,
    { ...write, schema: admin("clients", "Change a client's name, grant types, scopes, audiences, resources or lifetimes", "write", { params: s.clientIdParams, body: s.updateClientBody, response: s.clientReply }) },
    (request, reply) => {
      const b = request.body;
      return run(request, reply, (c) =>
        updateClient(c, request.params.id, {
          name: b.name,
          grantTypes: b.grant_types,
          scopes: b.scopes,
          audiences: b.audiences,
          resources: b.resources,
          accessTokenTtl: b.access_token_ttl,
          refreshTokenTtl: b.refresh_token_ttl,
        }),
      );
    },
  );
  app.post<Id>(`${ADMIN_PREFIX}/clients/:id/disable`, { ...write, schema: admin("clients", "Disable a client", "write", { params: s.clientIdParams, response: s.clientReply }) }, (request, reply) =>
    run(request, reply, (c) => disableClient(c, request.params.id)),
  );
  app.post<Id>(`${ADMIN_PREFIX}/clients/:id/enable`, { ...write, schema: admin("clients", "Enable a client", "write", { params: s.clientIdParams, response: s.clientReply }) }, (request, reply) =>
    run(request, reply, (c) => enableClient(c, request.params.id)),
  );
  app.post<Id>(
    `${ADMIN_PREFIX}/clients/:id/secret`,
    { ...write, schema: admin("clients", "Rotate a confidential client's secret", "write", { params: s.clientIdParams, response: s.secretReply }) },
    (request, reply) => run(request, reply, (c) => rotateClientSecret(c, request.params.id)),
  );

  // ---- users
  app.get<{ Querystring: { cursor?: string; limit?: string; email?: string } }>(
    `${ADMIN_PREFIX}/users`,
    { ...read, schema: admin("users", "List users (by email), optionally those whose email contains a string", "read", { querystring: s.usersQuery, response: s.usersReply }) },
    (request, reply) => run(request, reply, (c) => listUsers(c, { ...pageOf(request.query), email: request.query.email })),
  );
  app.post<{ Body: { email: string; password: string; roles?: string[] } }>(
    `${ADMIN_PREFIX}/users`,
    { ...write, schema: admin("users", "Create a user", "write", { body: s.createUserBody, response: s.createdUserReply }) },
    (request, reply) => run(request, reply, (c) => createUser(c, request.body), 201),
  );
  app.get<Id>(`${ADMIN_PREFIX}/users/:id`, { ...read, schema: admin("users", "Read a user", "read", { params: s.userIdParams, response: s.userReply }) }, (request, reply) =>
    run(request, reply, (c) => getUser(c, { id: request.params.id })),
  );
  app.put<Id & { Body: { roles: string[] } }>(
    `${ADMIN_PREFIX}/users/:id/roles`,
    { ...write, schema: admin("users", "Set a user's roles", "write", { params: s.userIdParams, body: s.rolesBody, response: s.userReply }) },
    (request, reply) => run(request, reply, (c) => setUserRoles(c, { id: request.params.id }, request.body.roles)),
  );
  app.post<Id>(
    `${ADMIN_PREFIX}/users/:id/disable`,
    { ...write, schema: admin("users", "Disable a user: every session ends", "write", { params: s.userIdParams, response: s.userSessionsRevokedReply }) },
    (request, reply) => run(request, reply, (c) => disableUser(c, { id: request.params.id })),
  );
  app.post<Id>(`${ADMIN_PREFIX}/users/:id/enable`, { ...write, schema: admin("users", "Enable a user", "write", { params: s.userIdParams, response: s.userReply }) }, (request, reply) =>
    run(request, reply, (c) => enableUser(c, { id: request.params.id })),
  );
  app.put<Id & { Body: { password: string } }>(
    `${ADMIN_PREFIX}/users/:id/password`,
    { ...write, schema: admin("users", "Set a user's password: every session ends", "write", { params: s.userIdParams, body: s.passwordBody, response: s.userSessionsRevokedReply }) },
    (request, reply) => run(request, reply, (c) => setUserPassword(c, { id: request.params.id }, request.body.password)),
  );

  // ---- sessions
  app.get<Id>(
    `${ADMIN_PREFIX}/users/:id/sessions`,
    { ...read, schema: admin("sessions", "A user's live sessions", "read", { params: s.userIdParams, response: s.sessionsReply }) },
    (request, reply) => run(request, reply, (c) => listUserSessions(c, { id: request.params.id })),
  );
  app.delete<Id>(
    `${ADMIN_PREFIX}/users/:id/sessions`,
    { ...write, schema: admin("sessions", "Revoke every session of a user", "write", { params: s.userIdParams, response: s.sessionsRevokedReply }) },
    (request, reply) => run(request, reply, (c) => revokeUserSessions(c, { id: request.params.id })),
  );
  app.delete<Id>(
    `${ADMIN_PREFIX}/sessions/:id`,
    { ...write, schema: admin("sessions", "Revoke one session", "write", { params: s.sessionIdParams, response: s.sessionRevokedReply }) },
    (request, reply) => run(request, reply, (c) => revokeSession(c, request.params.id), 204),
  );

  // ---- keys
  app.get(`${ADMIN_PREFIX}/keys`, { ...read, schema: admin("keys", "List signing keys", "read", { response: s.keysReply }) }, (request, reply) => run(request, reply, (c) => listKeys(c)));
  app.post(
    `${ADMIN_PREFIX}/keys/rotate`,
    { ...write, schema: admin("keys", "Do the scheduled rotation's due step now (and prune)", "write", { response: s.keyActionsReply }) },
    (request, reply) =>
      run(request, reply, async (c) => {
        const result = await rotateKeys(c);
        if (result.ok) return result;
        // The key steps are done; the prune failed. Its cause (a database message) goes to the log only.
        request.log.error({ pruneError: (result.json as { pruneError?: string }).pruneError }, "admin API: prune after key rotation failed");
        return { ...result, json: { ...(result.json as object), pruneError: "pruning failed; see the issuer's log" } };
      }),
  );
  app.post(
    `${ADMIN_PREFIX}/keys/rotate-now`,
    { ...write, schema: admin("keys", "Emergency rotation: a new key signs at once", "write", { response: s.keyActionsReply }) },
    (request, reply) => run(request, reply, (c) => rotateKeysNow(c)),
  );
  app.post<{ Params: { kid: string } }>(
    `${ADMIN_PREFIX}/keys/:kid/revoke`,
    { ...write, schema: admin("keys", "Revoke a (compromised) key: out of the JWKS at once", "write", { params: s.kidParams, response: s.keyRevokedReply }) },
    (request, reply) => run(request, reply, (c) => revokeKey(c, request.params.kid)),
  );

  // ---- audit
  app.get<{ Querystring: { cursor?: string; limit?: string; type?: string; user_id?: string; client_id?: string; from?: string; to?: string } }>(
    `${ADMIN_PREFIX}/audit-events`,
    { ...read, schema: admin("audit", "Audit events, newest first", "read", { querystring: s.auditQuery, response: s.auditReply }) },
    (request, reply) => {
      const q = request.query;
      return run(request, reply, (c) => listAuditEvents(c, { ...pageOf(q), type: q.type, userId: q.user_id, clientId: q.client_id, from: q.from, to: q.to }));
    },
  );
}
