// Browser endpoints for the first-party web client. The refresh token lives only in an
// HttpOnly, Secure, SameSite=Strict cookie scoped to /auth; JavaScript never sees it.
// CSRF: SameSite=Strict, plus a JSON content type (a plain HTML form cannot send one and a
// cross-origin fetch with one needs a CORS preflight we do not grant), plus an Origin check.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Forbidden, InvalidGrant, OAuthError, Unauthorized } from "../../domain/errors.ts";
import { passwordGrant } from "../../grants/password.ts";
import { refreshTokenGrant } from "../../grants/refresh-token.ts";
import type { GrantResult } from "../../grants/grant.ts";
import type { Services } from "../../services.ts";

export const REFRESH_COOKIE = "refresh_token";
const COOKIE_PATH = "/auth";

const credentialsBody = {
  type: "object",
  required: ["email", "password"],
  properties: {
    email: { type: "string", minLength: 1, maxLength: 320 },
    password: { type: "string", minLength: 1, maxLength: 4096 },
  },
} as const;

export function browserRoutes(app: FastifyInstance, s: Services): void {
  const { config } = s;
  const allowedOrigins = new Set(config.allowedOrigins);

  async function csrfGuard(request: FastifyRequest): Promise<void> {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (contentType !== "application/json") {
      throw new OAuthError("invalid_request", 415, "This endpoint accepts only application/json requests.");
    }
    const origin = request.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) {
      throw new Forbidden("invalid_origin", "Requests from this origin are not allowed.");
    }
    // Fetch Metadata: a cross-site request without an Origin header is still cross-site.
    if (origin === undefined && request.headers["sec-fetch-site"] === "cross-site") {
      throw new Forbidden("invalid_origin", "Cross-site requests are not allowed.");
    }
  }

  const cookieOptions = { httpOnly: true, secure: config.cookieSecure, sameSite: "strict", path: COOKIE_PATH } as const;

  function setRefreshCookie(reply: FastifyReply, result: GrantResult): void {
    const token = result.response.refresh_token;
    if (!token || !result.session) return;
    // The cookie lives exactly as long as the session can (absolute lifetime).
    const maxAge = Math.max(0, Math.floor((result.session.expiresAt.getTime() - s.clock.now().getTime()) / 1000));
    reply.setCookie(REFRESH_COOKIE, token, { ...cookieOptions, maxAge });
  }

  function clearRefreshCookie(reply: FastifyReply): void {
    reply.clearCookie(REFRESH_COOKIE, cookieOptions);
  }

  async function webClient() {
    // The first-party client is public: identified, not authenticated.
    return s.clients.authenticate({ clientId: config.webClientId, method: "none" });
  }

  const browserReply = (reply: FastifyReply, result: GrantResult) => {
    setRefreshCookie(reply, result);
    const { access_token, token_type, expires_in, scope } = result.response;
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send({ access_token, token_type, expires_in, scope });
  };

  app.post("/auth/register", { schema: { body: credentialsBody } }, async (request, reply) => {
    if (!config.allowRegistration) throw new Forbidden("registration_disabled", "Registration is disabled.");
    const { email, password } = request.body as { email: string; password: string };
    const user = await s.users.register(email, password);
    return reply.status(201).header("cache-control", "no-store").send({ id: user.id, email: user.email });
  });

  app.post("/auth/login", { schema: { body: credentialsBody }, onRequest: csrfGuard }, async (request, reply) => {
    const { email, password } = request.body as { email: string; password: string };
    const client = await webClient();
    const result = await passwordGrant.handle({ params: { username: email, password }, client, address: request.ip }, s);
    return browserReply(reply, result);
  });

  app.post("/auth/refresh", { onRequest: csrfGuard }, async (request, reply) => {
    const presented = request.cookies[REFRESH_COOKIE];
    if (!presented) throw new Unauthorized("invalid_grant", "No refresh token cookie was sent.");
    const client = await webClient();
    try {
      const result = await refreshTokenGrant.handle({ params: { refresh_token: presented }, client, address: request.ip }, s);
      return browserReply(reply, result);
    } catch (err) {
      // A dead refresh token is of no use to the browser: drop the cookie with the error.
      if (!(err instanceof InvalidGrant)) throw err;
      clearRefreshCookie(reply);
      throw new Unauthorized("invalid_grant", err.description);
    }
  });

  app.post("/auth/logout", { onRequest: csrfGuard }, async (request, reply) => {
    const presented = request.cookies[REFRESH_COOKIE];
    if (presented) await s.families.revokeByToken(presented, "logout");
    clearRefreshCookie(reply);
    return reply.status(204).header("cache-control", "no-store").send();
  });
}
