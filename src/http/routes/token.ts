// POST /oauth/token: RFC 6749 §3.2. Thin: parse, authenticate the client, run one grant.
import type { FastifyInstance } from "fastify";
import { assertRequired, grantFor } from "../../grants/index.ts";
import type { Services } from "../../services.ts";
import { authenticateClient } from "../client-auth.ts";
import { readParams } from "../params.ts";
import type { RateLimits } from "../plugins/rate-limits.ts";

export function tokenRoutes(app: FastifyInstance, s: Services, limits: RateLimits): void {
  app.post("/oauth/token", async (request, reply) => {
    const params = readParams(request.body);
    const grant = grantFor(params.grant_type);
    let client;
    try {
      client = await authenticateClient(request, params, s, limits.clientAuthFailures);
    } catch (err) {
      // Even a request refused for its client (or its address) is judged for refresh token reuse.
      await grant.onClientRejected?.(params, s);
      throw err;
    }
    assertRequired(grant, params);
    // Per-address limits on the grants an attacker would repeat: password guesses, refreshes.
    if (grant.grantType === "password") await limits.password.hit(request);
    else if (grant.grantType === "refresh_token") await limits.refresh.hit(request);
    const { response } = await grant.handle({ params, client, address: request.ip }, s);
    // RFC 6749 §5.1: responses with tokens must not be cached.
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(response);
  });
}
