// Browser endpoints for the first-party web client. The refresh token lives only in an
// HttpOnly, Secure, SameSite=Strict cookie (REFRESH_COOKIE_NAME, scoped to REFRESH_COOKIE_PATH:
// /auth by default, / for a __Host- name); JavaScript never sees it.
// CSRF: SameSite=Strict, plus a JSON content type (a plain HTML form cannot send one and a
// cross-origin fetch with one needs a CORS preflight we do not grant), plus an Origin check.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Forbidden, InvalidGrant, OAuthError, Unauthorized } from "../../domain/errors.ts";
import { passwordGrant } from "../../grants/password.ts";
import { refreshTokenGrant } from "../../grants/refresh-token.ts";
import { issueTokens, type GrantResult } from "../../grants/index.ts";
import type { Services } from "../../services.ts";
import { addressKey, loginMetadata } from "../client-address.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";
import { crossOriginRefusal } from "../origin.ts";
import { errorReplies, noBody, tokenBody } from "../schemas.ts";

/** The browser endpoints answer the access token only; the refresh token is in the cookie. */
const browserTokenBody = {
  ...tokenBody,
  description: "The access token; the refresh token is set in the HttpOnly refresh cookie.",
  properties: { access_token: tokenBody.properties.access_token, token_type: tokenBody.properties.token_type, expires_in: tokenBody.properties.expires_in, scope: tokenBody.properties.scope },
} as const;

const browser = (summary: string, response: Record<string, unknown>, body?: unknown) => ({
  tags: ["browser"],
  summary,
  description: "Requires Content-Type: application/json and an Origin in ALLOWED_ORIGINS (or none); cross-site requests are refused.",
  ...(body ? { body } : {}),
  response: { ...response, ...errorReplies },
});

const credentialsBody = {
  type: "object",
  required: ["email", "password"],
  properties: {
    email: { type: "string", minLength: 1, maxLength: 320 },
    password: { type: "string", minLength: 1, maxLength: 4096 },
  },
} as const;

export function browserRoutes(app: FastifyInstance, services: Services, limits: RateLimits): void {
  const { config } = services;
  const allowedOrigins = new Set(config.allowedOrigins);

  async function csrfGuard(request: FastifyRequest): Promise<void> {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (contentType !== "application/json") {
      throw new OAuthError("invalid_request", 415, "This endpoint accepts only application/json requests.");
    }
    const refused = crossOriginRefusal(request.headers, allowedOrigins);
    if (refused !== null) throw new Forbidden("invalid_origin", refused);
  }

  const cookieName = config.refreshCookieName;
  const cookieOptions = { httpOnly: true, secure: config.cookieSecure, sameSite: "strict", path: config.refreshCookiePath } as const;

  function setRefreshCookie(reply: FastifyReply, result: GrantResult): void {
    const token = result.response.refresh_token;
    if (!token || !result.session) return;
    // The cookie lives exactly as long as the session can (absolute lifetime).
    const maxAge = Math.max(0, Math.floor((result.session.expiresAt.getTime() - services.clock.now().getTime()) / 1000));
    reply.setCookie(cookieName, token, { ...cookieOptions, maxAge });
  }

  function clearRefreshCookie(reply: FastifyReply): void {
    reply.clearCookie(cookieName, cookieOptions);
  }

  async function webClient() {
    // The first-party client is public: identified, not authenticated.
    return services.clients.authenticate({ clientId: config.webClientId, method: "none" });
  }

  const browserReply = (reply: FastifyReply, result: GrantResult) => {
    setRefreshCookie(reply, result);
    const { access_token, token_type, expires_in, scope } = result.response;
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send({ access_token, token_type, expires_in, scope });
  };

  // The same CSRF guard as the cookie endpoints: a cross-site form or script must not create
  // accounts in a victim's browser (login CSRF's cousin), and a per-address limit.
  app.post("/auth/register", {
    schema: browser(
      "Register a user",
      { 201: { type: "object", required: ["id", "email"], properties: { id: { type: "string" }, email: { type: "string" } } } },
      credentialsBody,
    ), onRequest: csrfGuard }, async (request, reply) => {
    if (!config.allowRegistration) throw new Forbidden("registration_disabled", "Registration is disabled.");
    await limits.register.hit(request);
    const { email, password } = request.body as { email: string; password: string };
    const user = await services.users.register(email, password);
    return reply.status(201).header("cache-control", "no-store").send({ id: user.id, email: user.email });
  });

  app.post("/auth/login", { schema: browser("Log in: access token in the body, refresh token in the cookie", { 200: browserTokenBody }, credentialsBody), onRequest: csrfGuard }, async (request, reply) => {
    const { email, password } = request.body as { email: string; password: string };
    await limits.password.hit(request);
    const client = await webClient();
    const result = await issueTokens(passwordGrant, { params: { username: email, password }, client, address: addressKey(request.ip), metadata: loginMetadata(request) }, services);
    return browserReply(reply, result);
  });

  app.post("/auth/refresh", { schema: browser("Rotate the refresh cookie and return a new access token", { 200: browserTokenBody }), onRequest: csrfGuard }, async (request, reply) => {
    const presented = request.cookies[cookieName];
    if (!presented) throw new Unauthorized("invalid_grant", "No refresh token cookie was sent.");
    await limits.refresh.hit(request);
    const client = await webClient();
    try {
      const result = await issueTokens(refreshTokenGrant, { params: { refresh_token: presented }, client, address: addressKey(request.ip) }, services);
      return browserReply(reply, result);
    } catch (err) {
      // A dead refresh token is of no use to the browser: drop the cookie with the error.
      if (!(err instanceof InvalidGrant)) throw err;
      clearRefreshCookie(reply);
      throw new Unauthorized("invalid_grant", err.description);
    }
  });

  app.post("/auth/logout", { schema: browser("Revoke the session and clear the cookie", { 204: noBody("Logged out.") }), onRequest: csrfGuard }, async (request, reply) => {
    const presented = request.cookies[cookieName];
    if (presented) await services.sessions.revokeByToken(presented, "logout");
    clearRefreshCookie(reply);
    return reply.status(204).header("cache-control", "no-store").send();
  });
}
