// POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662). Thin: parse,
// authenticate the client, one domain call.
import type { FastifyInstance } from "fastify";
import { InvalidClient, InvalidRequest } from "../../domain/errors.ts";
import { parseTokenTypeHint, type TokenTypeHint } from "../../domain/tokens/token-type-hint.ts";
import type { Services } from "../../services.ts";
import { authenticateClient } from "../client-auth.ts";
import { readParams } from "../params.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";

function tokenParams(body: unknown): { params: Record<string, string>; token: string; hint: TokenTypeHint } {
  const params = readParams(body);
  if (!params.token) throw new InvalidRequest("The token parameter is missing.");
  return { params, token: params.token, hint: parseTokenTypeHint(params.token_type_hint) };
}

export function revocationIntrospectionRoutes(app: FastifyInstance, services: Services, limits: RateLimits): void {
  app.post("/oauth/revoke", async (request, reply) => {
    const { params, token, hint } = tokenParams(request.body);
    // Public clients may revoke their own tokens (RFC 7009 §5) with just their client_id.
    const client = await authenticateClient(request, params, services, limits.clientAuthFailures);
    await services.revocation.revoke(client, token, hint);
    // §2.2: 200 whether or not the token was valid; the body is ignored.
    return reply.status(200).header("cache-control", "no-store").send();
  });

  app.post("/oauth/introspect", async (request, reply) => {
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
