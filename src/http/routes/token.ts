// POST /oauth/token: RFC 6749 §3.2. Thin: parse, authenticate the client, run one grant.
import type { FastifyInstance } from "fastify";
import { assertRequired, grantFor, issueTokens } from "../../grants/index.ts";
import type { Services } from "../../services.ts";
import { InvalidClient, InvalidRequest } from "../../domain/errors.ts";
import { addressKey, loginMetadata } from "../client-address.ts";
import { crossOriginRefusal } from "../origin.ts";
import { authenticateClient, claimedClientId } from "../client-auth.ts";
import { readParams } from "../params.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";
import { clientAuth, documentedBodyOnly, errorReplies, oauthParams, tokenBody } from "../schemas.ts";

const tokenSchema = {
  tags: ["oauth"],
  summary: "Token endpoint (RFC 6749 §3.2): password, refresh_token, client_credentials grants",
  consumes: ["application/x-www-form-urlencoded", "application/json"],
  security: clientAuth,
  body: oauthParams(
    {
      grant_type: { description: "password, refresh_token or client_credentials" },
      client_id: { description: "The client (public clients; or with client_secret for client_secret_post)" },
      client_secret: { description: "client_secret_post; or use HTTP Basic" },
      username: { description: "password grant" },
      password: { description: "password grant" },
      refresh_token: { description: "refresh_token grant" },
      scope: { description: "Space-separated scopes requested" },
    },
    ["grant_type"],
  ),
  response: { 200: tokenBody, ...errorReplies },
} as const;

export function tokenRoutes(app: FastifyInstance, services: Services, limits: RateLimits): void {
  const allowedOrigins = new Set(services.config.allowedOrigins);
  app.post("/oauth/token", { schema: tokenSchema, ...documentedBodyOnly }, async (request, reply) => {
    // A web page on another site (a form it posts through its visitor's browser) is refused
    // before anything: its password guesses would count against the visitor's own address.
    const refused = crossOriginRefusal(request.headers, allowedOrigins, true);
    if (refused !== null) throw new InvalidRequest(refused);
    const params = readParams(request.body);
    const grant = grantFor(params.grant_type);
    let client;
    try {
      client = await authenticateClient(request, params, services, limits.clientAuthFailures);
    } catch (err) {
      // A request whose client failed authentication is still judged for refresh token reuse
      // (not one refused by a rate limit: that says nothing about the token, and a legitimate
      // retry from a busy shared address must not revoke its session).
      if (err instanceof InvalidClient || err instanceof InvalidRequest) await grant.onClientRejected?.(params, services, claimedClientId(request, params));
      throw err;
    }
    assertRequired(grant, params);
    // Per-address limits on the grants an attacker would repeat: password guesses, refreshes.
    if (grant.grantType === "password") await limits.password.hit(request);
    else if (grant.grantType === "refresh_token") await limits.refresh.hit(request);
    const { response } = await issueTokens(grant, { params, client, address: addressKey(request.ip), metadata: loginMetadata(request) }, services);
    // RFC 6749 §5.1: responses with tokens must not be cached.
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(response);
  });
}
