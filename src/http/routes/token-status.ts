// POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662). Thin: parse,
// authenticate the client, one domain call.
import type { FastifyInstance } from "fastify";
import { InvalidClient, InvalidRequest } from "../../domain/errors.ts";
import type { TokenTypeHint } from "../../domain/tokens/token-status.ts";
import type { Services } from "../../services.ts";
import { authenticateClient } from "../client-auth.ts";
import { readParams } from "../params.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";

function tokenParams(body: unknown): { params: Record<string, string>; token: string; hint: TokenTypeHint } {
  const params = readParams(body);
  if (!params.token) throw new InvalidRequest("The token parameter is missing.");
  // Unknown hints are ignored (RFC 7009 §2.1, RFC 7662 §2.1): the server looks the token up anyway.
  const hint = params.token_type_hint === "access_token" || params.token_type_hint === "refresh_token" ? params.token_type_hint : undefined;
  return { params, token: params.token, hint };
}

export function tokenStatusRoutes(app: FastifyInstance, s: Services, limits: RateLimits): void {
  app.post("/oauth/revoke", async (request, reply) => {
    const { params, token, hint } = tokenParams(request.body);
    // Public clients may revoke their own tokens (RFC 7009 §5) with just their client_id.
    const client = await authenticateClient(request, params, s, limits.clientAuthFailures);
    await s.tokenStatus.revoke(client, token, hint);
    // §2.2: 200 whether or not the token was valid; the body is ignored.
    return reply.status(200).header("cache-control", "no-store").send();
  });

  app.post("/oauth/introspect", async (request, reply) => {
    const { params, token, hint } = tokenParams(request.body);
    const client = await authenticateClient(request, params, s, limits.clientAuthFailures);
    // §2.1: the endpoint requires authorisation; a public client proves nothing.
    if (client.type !== "confidential") {
      await limits.clientAuthFailures.count(request);
      const basic = /^Basic\s/i.test(request.headers.authorization ?? "");
      throw new InvalidClient("Introspection requires a confidential client.", basic ? { "www-authenticate": 'Basic realm="tessera"' } : {});
    }
    const result = await s.tokenStatus.introspect(client, token, hint);
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(result);
  });
}
