// The user's own account: POST /account/password, GET/DELETE /account/sessions[/{id}].
// Authenticated by the user's access token in the Authorization header only (RFC 6750 §2.1; not
// a query or form parameter, no cookies: nothing a cross-site page can make a browser send, so
// no CSRF surface). Thin: authenticate (domain/account.ts), one domain call, reply.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AccountCaller } from "../../domain/account.ts";
import { InvalidToken } from "../../domain/tokens/bearer-access.ts";
import { OAuthError } from "../../domain/errors.ts";
import type { Services } from "../../services.ts";
import { addressKey } from "../client-address.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";
import { bearerAuth, errorReplies, noBody } from "../schemas.ts";
import { bearerToken } from "../bearer-token.ts";

const account = <S extends object>(summary: string, schema: S) => ({ tags: ["account"], summary, security: bearerAuth, ...schema });

const passwordBody = {
  type: "object",
  required: ["current_password", "new_password"],
  additionalProperties: false,
  properties: {
    current_password: { type: "string", minLength: 1, maxLength: 4096 },
    new_password: { type: "string", minLength: 1, maxLength: 4096 },
  },
} as const;

const sessionParams = {
  type: "object",
  required: ["id"],
  additionalProperties: false,
  properties: { id: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } },
} as const;

const sessionsReply = {
  ...errorReplies,
  200: {
    type: "object",
    required: ["sessions"],
    properties: {
      sessions: {
        type: "array",
        items: {
          type: "object",
          required: ["id", "client_id", "created_at", "last_used_at", "expires_at", "current"],
          properties: {
            id: { type: "string" },
            client_id: { type: "string" },
            created_at: { type: "string", format: "date-time" },
            last_used_at: { type: "string", format: "date-time" },
            expires_at: {
              type: "object",
              required: ["idle", "absolute"],
              properties: { idle: { type: "string", format: "date-time" }, absolute: { type: "string", format: "date-time" } },
            },
            current: { type: "boolean" },
            user_agent: { type: "string" },
            address: { type: "string" },
          },
        },
      },
    },
  },
} as const;

export function accountRoutes(app: FastifyInstance, services: Services, limits: RateLimits): void {
  const callers = new WeakMap<FastifyRequest, AccountCaller>();

  // onRequest: before the body is read or validated, an unauthenticated request gets its 401.
  async function authenticate(request: FastifyRequest): Promise<void> {
    callers.set(request, await services.account.authenticate(bearerToken(request)));
  }
  const callerOf = (request: FastifyRequest): AccountCaller => {
    const caller = callers.get(request);
    if (!caller) throw new InvalidToken("An access token is required (Authorization: Bearer).", false);
    return caller;
  };
  async function jsonOnly(request: FastifyRequest): Promise<void> {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (contentType !== "application/json") {
      throw new OAuthError("invalid_request", 415, "This endpoint accepts only application/json requests.");
    }
  }

  app.post("/account/password", { schema: account("Change the password; ends the user's other sessions", { body: passwordBody, response: { 204: noBody("Changed."), ...errorReplies } }), onRequest: [authenticate, jsonOnly] }, async (request, reply) => {
    const caller = callerOf(request);
    // The same per-address limit as the password grant: a wrong current password is a guess.
    await limits.password.hit(request);
    const { current_password, new_password } = request.body as { current_password: string; new_password: string };
    await services.account.changePassword(caller, current_password, new_password, addressKey(request.ip));
    return reply.status(204).header("cache-control", "no-store").send();
  });

  app.get("/account/sessions", { schema: account("The user's live sessions", { response: sessionsReply }), onRequest: authenticate }, async (request, reply) => {
    const sessions = await services.account.listSessions(callerOf(request));
    return reply.header("cache-control", "no-store").send({
      sessions: sessions.map(({ session, lastUsedAt, idleExpiresAt, current }) => ({
        id: session.id,
        client_id: session.clientId,
        created_at: session.createdAt.toISOString(),
        last_used_at: lastUsedAt.toISOString(),
        expires_at: { idle: idleExpiresAt.toISOString(), absolute: session.expiresAt.toISOString() },
        current,
        ...(session.userAgent ? { user_agent: session.userAgent } : {}),
        ...(session.address ? { address: session.address } : {}),
      })),
    });
  });

  app.delete("/account/sessions/:id", { schema: account("End one of the user's sessions", { params: sessionParams, response: { 204: noBody("Ended."), ...errorReplies } }), onRequest: authenticate }, async (request, reply) => {
    await services.account.endSession(callerOf(request), (request.params as { id: string }).id);
    return reply.status(204).header("cache-control", "no-store").send();
  });

  app.delete("/account/sessions", { schema: account("End all of the user's sessions", { response: { 204: noBody("Ended."), ...errorReplies } }), onRequest: authenticate }, async (request, reply) => {
    await services.account.endAllSessions(callerOf(request));
    return reply.status(204).header("cache-control", "no-store").send();
  });
}
