// POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662). Thin: parse,
// authenticate the client, one domain call.
import type { FastifyInstance } from "fastify";
import { InvalidClient, InvalidRequest } from "../../domain/errors.ts";
import { parseTokenTypeHint, type TokenTypeHint } from "../../domain/tokens/token-type-hint.ts";
import type { Services } from "../../services.ts";
import { authenticateClient } from "../client-auth.ts";
import { readParams } from "../params.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";
import { clientAuth, documentedBodyOnly, errorReplies, noBody, oauthParams } from "../schemas.ts";

const tokenParamsBody = oauthParams(
  {
    token: { description: "The token (access or refresh)" },
    token_type_hint: { description: "access_token or refresh_token" },
    client_id: { description: "The client (public clients; or with client_secret for client_secret_post)" },
    client_secret: { description: "client_secret_post; or use HTTP Basic" },
  },
  ["token"],
);
const consumes = ["application/x-www-form-urlencoded", "application/json"];

const revokeSchema = {
  tags: ["oauth"],
  summary: "Revoke a token (RFC 7009)",
  consumes,
  security: clientAuth,
  body: tokenParamsBody,
  response: { 200: noBody("Revoked, or the token was not valid (RFC 7009 §2.2); no body."), ...errorReplies },
} as const;

const introspectSchema = {
  tags: ["oauth"],
  summary: "Introspect a token (RFC 7662; confidential clients)",
  consumes,
  security: clientAuth,
  body: tokenParamsBody,
  response: {
    200: {
      type: "object",
      description: "RFC 7662 §2.2: `active`, and for an active token its claims.",
      required: ["active"],
      additionalProperties: true,
      properties: { active: { type: "boolean" } },
    },
    ...errorReplies,
  },
} as const;

function tokenParams(body: unknown): { params: Record<string, string>; token: string; hint: TokenTypeHint } {
  const params = readParams(body);
  if (!params.token) throw new InvalidRequest("The token parameter is missing.");
  return { params, token: params.token, hint: parseTokenTypeHint(params.token_type_hint) };
}

export function revocationIntrospectionRoutes(app: FastifyInstance, services: Services, limits: RateLimits): void {
  app.post("/oauth/revoke", { schema: revokeSchema, ...documentedBodyOnly }, async (request, reply) => {
    const { params, token, hint } = tokenParams(request.body);
    // Public clients may revoke their own tokens (RFC 7009 §5) with just their client_id.
    const client = await authenticateClient(request, params, services, limits.clientAuthFailures);
    await services.revocation.revoke(client, token, hint);
    // §2.2: 200 whether or not the token was valid; the body is ignored.
    return reply.status(200).header("cache-control", "no-store").send();
  });

  app.post("/oauth/introspect", { schema: introspectSchema, ...documentedBodyOnly }, async (request, reply) => {
    const { params, token, hint } = tokenParams(request.body);
    const client = await authenticateClient(request, params, services, limits.clientAuthFailures);
    // §2.1: the endpoint requires authorisation; a public client proves nothing.
    if (client.type !== "confidential") {
      await limits.clientAuthFailures.count(request);
      const basic = /^Basic\s/i.test(request.headers.authorization ?? "");
      throw new InvalidClient("Introspection requires a confidential client.", basic ? { "www-authenticate": 'Basic realm="tessera"' } : {});
    }
    const result = await services.introspection.introspect(client, token, hint);
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(result);
  });
}
