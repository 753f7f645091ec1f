// POST /oauth/token: RFC 6749 §3.2. Thin: parse, authenticate the client, run one grant.
import type { FastifyInstance } from "fastify";
import { assertRequired, grantFor } from "../../grants/index.ts";
import type { Services } from "../../services.ts";
import { clientCredentials } from "../client-auth.ts";
import { readParams } from "../params.ts";

export function tokenRoutes(app: FastifyInstance, s: Services): void {
  app.post("/oauth/token", async (request, reply) => {
    const params = readParams(request.body);
    const grant = grantFor(params.grant_type);
    let client;
    try {
      client = await s.clients.authenticate(clientCredentials(request, params));
    } catch (err) {
      await grant.onClientRejected?.(params, s);
      throw err;
    }
    assertRequired(grant, params);
    const { response } = await grant.handle({ params, client, address: request.ip }, s);
    // RFC 6749 §5.1: responses with tokens must not be cached.
    return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(response);
  });
}
